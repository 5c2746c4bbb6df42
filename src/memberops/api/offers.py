"""``/coupons``, ``/rewards`` and ``/members/{person}/coupons|plan``: coupons, the points mall, paid plans.

``{person}`` is a person id or any reference (``phone:13800138000``, ``member_no:M1``). Writes take
an ``Idempotency-Key`` header: the first call answers 201, a replay 200 with the first result and
no change, the key reused for something else 409. Money is yuan as a string.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from memberops.access.rules import Permission
from memberops.access.service import Caller
from memberops.api.deps import PersonReader, ServicesDep, reading, require, writing
from memberops.api.schemas import MAX_ID, RowId, Text, Token, Yuan, error_responses, safe_text
from memberops.identity import repository
from memberops.identity.queries import resolve_reference
from memberops.kit.clock import utc_now
from memberops.kit.errors import NotFound, ValidationFailed
from memberops.kit.money import fen_to_yuan, yuan_to_fen
from memberops.loyalty import coupon_service, offer_views, plan_service, reward_service
from memberops.loyalty.coupon_service import IssueRequest
from memberops.loyalty.holdings import KEY_LENGTH
from memberops.models import RewardRedemption
from memberops.wiring import Services

router = APIRouter(responses=error_responses(401, 403, 422))

OfferManager = Annotated[Caller, Depends(require(Permission.MANAGE_OFFERS))]
Cashier = Annotated[Caller, Depends(require(Permission.CHECKOUT))]

PersonPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="a person id (`42`) or a reference: `member_no:M1`, `phone:13800138000`, `person:42`",
        examples=["42"],
    ),
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_LENGTH,
        pattern=r"^[^|]+$",
        description="makes the write safe to retry: a replay returns the first result and changes nothing",
    ),
]
#: A person as a request body names them: an id or any reference.
PersonReference = Annotated[
    str, Field(min_length=1, max_length=200, examples=["phone:13800138000"]), AfterValidator(safe_text)
]
MAX_PERSONS = 10_000


def clean(text: str) -> str:
    """Return ``text`` from a path or query, refusing control characters (422, never a 500)."""
    try:
        return safe_text(text)
    except ValueError as error:
        raise ValidationFailed(str(error)) from None


def person_of(session: Session, services: Services, reference: str) -> int:
    """Return the live person a reference names (a bare number is a person id)."""
    text = clean(reference.strip())
    if text.isascii() and text.isdigit() and int(text) < MAX_ID:
        found = repository.current_person_id(session, int(text))
    else:
        found = resolve_reference(session, services.identity, text)
    if found is None:
        raise NotFound(f"no person is known by {reference!r}")
    return found


def _answer(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


# --- Coupons -------------------------------------------------------------------------------------


class CouponView(BaseModel):
    """One coupon; ``code`` of ours is shown in groups of four (type it any way)."""

    id: int
    code: str
    template: str
    person_id: int
    status: Literal["issued", "redeemed", "expired", "void"]
    valid_from: str
    valid_until: str = Field(description="exclusive: the instant the last valid business day ends")
    source: str
    pack: str | None
    external: bool
    reason: str
    issued_at: str
    issued_by: str
    redeemed_at: str | None
    programme_version_id: int


class IssueBody(BaseModel):
    """Coupons of one template (``count`` each), or one pack, for each person named."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"template": "welcome_5", "persons": ["phone:13800138000", "42"], "reason": "spring"}
            ]
        },
    )

    template: Token | None = None
    pack: Token | None = None
    count: int = Field(default=1, ge=1, le=100)
    persons: list[PersonReference] = Field(min_length=1, max_length=MAX_PERSONS)
    reason: Text

    @model_validator(mode="after")
    def _one_of(self) -> IssueBody:
        if (self.template is None) == (self.pack is None):
            raise ValueError("give either a template or a pack")
        return self


class IssueResult(BaseModel):
    """The coupons the request stands for (made now and found on a replay), and who was not found."""

    created: int
    replayed: int
    coupons: list[CouponView]
    unknown_persons: list[str]


@router.post(
    "/coupons/issue",
    tags=["coupons"],
    response_model=IssueResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": IssueResult, "description": "a replay"}, **error_responses(404, 409)},
    summary="Issue coupons or a pack",
)
def issue_coupons(
    body: IssueBody, key: IdempotencyKey, caller: OfferManager, services: ServicesDep, response: Response
) -> IssueResult:
    """Issue to one person or a list of them; persons nobody knows are listed, the rest get theirs."""
    with writing(services) as session:
        ids: list[int] = []
        unknown: list[str] = []
        for reference in body.persons:
            try:
                ids.append(person_of(session, services, reference))
            except (NotFound, ValidationFailed):
                unknown.append(reference)
        options: dict[str, Any] = {
            "key": key,
            "reason": body.reason,
            "actor": caller.name,
            "time_zone": services.loyalty.time_zone,
        }
        if body.pack is not None:
            outcome = coupon_service.issue_pack(session, ids, body.pack, **options)
        else:
            assert body.template is not None
            outcome = coupon_service.issue_coupons(
                session, ids, [IssueRequest(body.template, body.count)], **options
            )
        result = IssueResult(
            created=len(outcome.created),
            replayed=len(outcome.replayed),
            coupons=[CouponView.model_validate(offer_views.coupon_view(c)) for c in outcome.coupons],
            unknown_persons=unknown,
        )
    _answer(response, bool(outcome.created) or not outcome.replayed)
    return result


@router.get(
    "/members/{person}/coupons",
    tags=["coupons"],
    response_model=list[CouponView],
    responses=error_responses(404),
    summary="A member's coupons",
)
def list_coupons(
    person: PersonPath,
    caller: PersonReader,
    services: ServicesDep,
    coupon_status: Annotated[
        Literal["issued", "redeemed", "expired", "void"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CouponView]:
    """Return the member's coupons, newest first."""
    with reading(services) as session:
        rows = offer_views.coupons_of(
            session, person_of(session, services, person), status=coupon_status, limit=limit
        )
    return [CouponView.model_validate(row) for row in rows]


CouponPath = Annotated[
    str,
    Path(
        min_length=1, max_length=70, description="a code (ours in any spelling, or an external one) or `#id`"
    ),
]


@router.get("/coupons/{coupon}", tags=["coupons"], response_model=CouponView, responses=error_responses(404))
def get_coupon(coupon: CouponPath, caller: PersonReader, services: ServicesDep) -> CouponView:
    """Return one coupon by its code or ``#id``."""
    with reading(services) as session:
        return CouponView.model_validate(
            offer_views.coupon_view(coupon_service.find_coupon(session, clean(coupon)))
        )


class RedeemBody(BaseModel):
    """Where and for whom a coupon is used outside a checkout (a voucher at the till)."""

    model_config = ConfigDict(extra="forbid")

    person: PersonReference | None = Field(default=None, description="when given, the coupon must be theirs")
    channel: Token | None = None
    store: Token | None = None
    order_ref: Token | None = None
    discount: Yuan | None = Field(default=None, description="what it took off (default: its amount)")


class RedemptionView(BaseModel):
    """A coupon used, and whether this call used it."""

    coupon: CouponView
    redemption_id: int
    discount: str
    created: bool


@router.post(
    "/coupons/{coupon}/redeem",
    tags=["coupons"],
    response_model=RedemptionView,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": RedemptionView, "description": "a replay"}, **error_responses(404, 409)},
    summary="Redeem a coupon",
)
def redeem_coupon(
    coupon: CouponPath,
    body: RedeemBody,
    key: IdempotencyKey,
    caller: Cashier,
    services: ServicesDep,
    response: Response,
) -> RedemptionView:
    """Use a coupon once; a used, void or expired one answers 409 and nothing changes."""
    with writing(services) as session:
        person = person_of(session, services, body.person) if body.person is not None else None
        used = coupon_service.redeem_coupon(
            session,
            clean(coupon),
            key=key,
            actor=caller.name,
            person_id=person,
            channel=body.channel,
            store=body.store,
            order_ref=body.order_ref,
            discount_fen=yuan_to_fen(body.discount) if body.discount is not None else None,
        )
        view = RedemptionView(
            coupon=CouponView.model_validate(offer_views.coupon_view(used.coupon)),
            redemption_id=used.redemption.id,
            discount=fen_to_yuan(used.redemption.discount_fen),
            created=used.created,
        )
    _answer(response, used.created)
    return view


class ReasonBody(BaseModel):
    """Why (kept with the change)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text


@router.post(
    "/coupons/{coupon}/void",
    tags=["coupons"],
    response_model=CouponView,
    responses=error_responses(404, 409),
    summary="Void a coupon",
)
def void_coupon(
    coupon: CouponPath, body: ReasonBody, caller: OfferManager, services: ServicesDep
) -> CouponView:
    """Withdraw an unused coupon; voiding it again changes nothing."""
    with writing(services) as session:
        found = coupon_service.void_coupon(session, clean(coupon), reason=body.reason, actor=caller.name)
        return CouponView.model_validate(offer_views.coupon_view(found))


# --- Rewards -------------------------------------------------------------------------------------


class RewardView(BaseModel):
    """A reward of the catalogue; for a member, ``rejection`` says why they cannot redeem it now."""

    code: str
    name: str
    points_price: int
    stock_left: int | None
    limit_per_member: int | None
    redeemed_by_member: int
    grants: str
    rejection: str | None


@router.get("/rewards", tags=["rewards"], response_model=list[RewardView], responses=error_responses(404))
def list_rewards(
    caller: PersonReader,
    services: ServicesDep,
    person: Annotated[
        str | None, Query(min_length=1, max_length=200, description="show it for a member")
    ] = None,
) -> list[RewardView]:
    """Return the rewards catalogue with what is left of each."""
    with reading(services) as session:
        member = person_of(session, services, person) if person is not None else None
        items = reward_service.catalogue(session, person_id=member)
    return [RewardView.model_validate(offer_views.catalogue_view(item)) for item in items]


class RewardRedemptionView(BaseModel):
    """A reward redeemed with points (and the coupon it granted)."""

    id: int
    person_id: int
    reward: str
    points: int
    status: Literal["redeemed", "cancelled"]
    coupon: CouponView | None
    redeemed_at: str
    cancelled_at: str | None
    cancel_reason: str | None


class PersonBody(BaseModel):
    """The member this is for."""

    model_config = ConfigDict(extra="forbid")

    person: PersonReference


def _redemption(session: Session, redemption: RewardRedemption) -> RewardRedemptionView:
    coupon = reward_service.granted_coupon(session, redemption)
    return RewardRedemptionView.model_validate(offer_views.redemption_view(redemption, coupon))


@router.post(
    "/rewards/{reward}/redeem",
    tags=["rewards"],
    response_model=RewardRedemptionView,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": RewardRedemptionView, "description": "a replay"}, **error_responses(404, 409)},
    summary="Redeem a reward with points",
)
def redeem_reward(
    reward: Annotated[str, Path(min_length=1, max_length=64)],
    body: PersonBody,
    key: IdempotencyKey,
    caller: Cashier,
    services: ServicesDep,
    response: Response,
) -> RewardRedemptionView:
    """Spend the reward's points and take one from stock; 409 ``reward_rejected`` or
    ``insufficient_points`` when it cannot be, with nothing changed."""
    with writing(services) as session:
        outcome = reward_service.redeem_reward(
            session,
            person_of(session, services, body.person),
            clean(reward),
            key=key,
            actor=caller.name,
            time_zone=services.loyalty.time_zone,
        )
        view = _redemption(session, outcome.redemption)
    _answer(response, outcome.created)
    return view


@router.post(
    "/reward-redemptions/{redemption_id}/cancel",
    tags=["rewards"],
    response_model=RewardRedemptionView,
    responses=error_responses(404, 409),
    summary="Cancel a reward redemption",
)
def cancel_reward(
    redemption_id: Annotated[RowId, Path()], body: ReasonBody, caller: OfferManager, services: ServicesDep
) -> RewardRedemptionView:
    """Give the points back into the lots they came from and the reward back to stock (once)."""
    with writing(services) as session:
        outcome = reward_service.cancel_redemption(
            session, redemption_id, reason=body.reason, actor=caller.name
        )
        return _redemption(session, outcome.redemption)


# --- Paid plans ----------------------------------------------------------------------------------


class TermView(BaseModel):
    """One bought term of a paid plan."""

    id: int
    plan: str
    kind: Literal["purchase", "renewal"]
    starts_at: str
    ends_at: str
    price: str
    status: Literal["active", "expired", "refunded"]
    paid_at: str
    payment_ref: str | None
    refund: str | None
    refunded_at: str | None


class PlanView(BaseModel):
    """A member's paid plan now (``active | expiring | expired | none``) and every term they bought."""

    person_id: int
    status: Literal["active", "expiring", "expired", "none"]
    plan: str | None
    ends_at: str | None
    grace_ends_at: str | None
    in_grace: bool
    terms: list[TermView]


class PlanRefundView(BaseModel):
    """What a refund paid back, and by which rule (``full`` within 7 days, else ``pro_rata``)."""

    amount: str
    rule: Literal["not_started", "full", "pro_rata"]
    days_total: int
    days_left: int


class PlanChange(BaseModel):
    """The member's plan after a purchase, renewal or refund."""

    term: TermView
    created: bool
    plan: PlanView
    refund: PlanRefundView | None = None


class PurchaseBody(BaseModel):
    """Which plan, and the payment's reference in the caller's system."""

    model_config = ConfigDict(extra="forbid")

    plan: Token
    payment_ref: Token | None = None


def _plan_change(session: Session, services: Services, outcome: plan_service.TermOutcome) -> PlanChange:
    return PlanChange(
        term=TermView.model_validate(offer_views.term_view(outcome.term)),
        created=outcome.created,
        plan=PlanView.model_validate(offer_views.plan_of(session, outcome.term.person_id, outcome.status)),
        refund=(
            PlanRefundView.model_validate(offer_views.plan_refund_view(outcome.refund))
            if outcome.refund
            else None
        ),
    )


def _buy(
    person: str,
    body: PurchaseBody,
    key: str,
    caller: Caller,
    services: Services,
    response: Response,
    renewal: bool,
) -> PlanChange:
    with writing(services) as session:
        outcome = plan_service.buy_plan(
            session,
            person_of(session, services, person),
            body.plan,
            key=f"{'renew' if renewal else 'buy'}:{key}",
            actor=caller.name,
            time_zone=services.loyalty.time_zone,
            renewal_only=renewal,
            payment_ref=body.payment_ref,
        )
        view = _plan_change(session, services, outcome)
    _answer(response, outcome.created)
    return view


_PLAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PlanChange, "description": "a replay"},
    **error_responses(404, 409),
}


@router.post(
    "/members/{person}/plan/purchases",
    tags=["plans"],
    response_model=PlanChange,
    status_code=status.HTTP_201_CREATED,
    responses=_PLAN_RESPONSES,
    summary="Buy a paid plan",
)
def buy_plan(
    person: PersonPath,
    body: PurchaseBody,
    key: IdempotencyKey,
    caller: Cashier,
    services: ServicesDep,
    response: Response,
) -> PlanChange:
    """Buy a plan: it starts now, or follows the member's current plan (a renewal)."""
    return _buy(person, body, key, caller, services, response, renewal=False)


@router.post(
    "/members/{person}/plan/renewals",
    tags=["plans"],
    response_model=PlanChange,
    status_code=status.HTTP_201_CREATED,
    responses=_PLAN_RESPONSES,
    summary="Renew a paid plan",
)
def renew_plan(
    person: PersonPath,
    body: PurchaseBody,
    key: IdempotencyKey,
    caller: Cashier,
    services: ServicesDep,
    response: Response,
) -> PlanChange:
    """Renew: the new term follows the current one (also in its grace); 409 for a member who never had one."""
    return _buy(person, body, key, caller, services, response, renewal=True)


class PlanRefundBody(BaseModel):
    """Which term to refund (default: the latest) and why."""

    model_config = ConfigDict(extra="forbid")

    term_id: RowId | None = None
    reason: Text


@router.post(
    "/members/{person}/plan/refunds",
    tags=["plans"],
    response_model=PlanChange,
    status_code=status.HTTP_201_CREATED,
    responses=_PLAN_RESPONSES,
    summary="Refund a paid plan",
)
def refund_plan(
    person: PersonPath,
    body: PlanRefundBody,
    key: IdempotencyKey,
    caller: OfferManager,
    services: ServicesDep,
    response: Response,
) -> PlanChange:
    """Refund the latest term: in full within 7 days of paying, else pro rata to the days left."""
    with writing(services) as session:
        outcome = plan_service.refund_plan(
            session,
            person_of(session, services, person),
            key=f"refund:{key}",
            reason=body.reason,
            actor=caller.name,
            time_zone=services.loyalty.time_zone,
            term_id=body.term_id,
        )
        view = _plan_change(session, services, outcome)
    _answer(response, outcome.created)
    return view


@router.get(
    "/members/{person}/plan",
    tags=["plans"],
    response_model=PlanView,
    responses=error_responses(404),
    summary="Plan",
)
def get_plan(person: PersonPath, caller: PersonReader, services: ServicesDep) -> PlanView:
    """Return the member's plan status now and the terms they bought."""
    with reading(services) as session:
        member = person_of(session, services, person)
        status_now = plan_service.plan_status_of(
            session, member, time_zone=services.loyalty.time_zone, at=utc_now()
        )
        return PlanView.model_validate(offer_views.plan_of(session, member, status_now))
