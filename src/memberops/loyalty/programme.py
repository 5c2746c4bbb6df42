"""The programme document: a brand's whole membership programme as one versioned, validated value.

Tiers, growth, tier evaluation, earn rules, expiry, refunds, benefits, coupons, rewards and paid
plans live in one document (TOML for people, JSON for the API) so that one ``version`` and one
``digest()`` name everything a ledger entry was produced under. A ``Programme`` object is always
consistent: construction runs every cross-reference check and raises ``ProgrammeInvalid`` listing
every problem with its path in the document (``earn.multipliers.tier["platinum"]: unknown tier
"platinum"``). Money is written in yuan and held in fen (see ``units``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
import types
import typing
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator

from memberops.kit.errors import NotFound, ValidationFailed
from memberops.loyalty.offers import Benefits, CouponPack, CouponTemplate, Gift, PaidPlan, Reward
from memberops.loyalty.policies import (
    EarnRules,
    ExpiryPolicy,
    GrowthRules,
    GrowthTask,
    RefundPolicy,
    Tier,
    TierEvaluation,
)
from memberops.loyalty.units import DocumentModel, Fen, Name

DocumentFormat = Literal["toml", "json"]
_DOCUMENT = "(document)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (``coupon_packs[0].coupons["x"]``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ProgrammeInvalid(ValidationFailed):
    """The programme document is malformed or inconsistent; ``problems`` lists every finding."""

    code = "invalid_programme"

    def __init__(self, problems: Sequence[Problem]) -> None:
        count = len(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"the programme document has {count} problem{'s' if count != 1 else ''}:\n{lines}",
            problems=[{"path": problem.path, "message": problem.message} for problem in problems],
        )
        self.problems = tuple(problems)


class Programme(DocumentModel):
    """A brand's membership programme; always internally consistent once constructed."""

    version: typing.Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    name: Name
    currency: Literal["CNY"] = "CNY"
    point_value_fen: Fen = Field(default=100, alias="point_value")
    tiers: tuple[Tier, ...]
    growth: GrowthRules = GrowthRules()
    evaluation: TierEvaluation = TierEvaluation()
    earn: EarnRules = EarnRules()
    expiry: ExpiryPolicy = ExpiryPolicy()
    refunds: RefundPolicy = RefundPolicy()
    coupon_templates: tuple[CouponTemplate, ...] = ()
    coupon_packs: tuple[CouponPack, ...] = ()
    rewards: tuple[Reward, ...] = ()
    paid_plans: tuple[PaidPlan, ...] = ()

    @model_validator(mode="after")
    def _check_consistency(self) -> Programme:
        # ProgrammeInvalid is not a ValueError, so pydantic lets it through with every problem intact.
        problems = programme_problems(self)
        if problems:
            raise ProgrammeInvalid(problems)
        return self

    @functools.cached_property
    def tier_ranks(self) -> dict[str, int]:
        """Each tier's position, 0 for the lowest (asked for per order, so computed once)."""
        return {tier.code: position for position, tier in enumerate(self.tiers)}

    def rank(self, tier_code: str) -> int:
        """Return the position of a tier, 0 for the lowest; tiers compare by rank."""
        position = self.tier_ranks.get(tier_code)
        if position is not None:
            return position
        raise NotFound(f'the programme {self.version} has no tier "{tier_code}"')

    def tier(self, code: str) -> Tier:
        """Return the tier with this code."""
        return self.tiers[self.rank(code)]

    def coupon_template(self, code: str) -> CouponTemplate:
        """Return the coupon template with this code."""
        return _find(self.coupon_templates, code, "coupon template", self.version)

    def coupon_pack(self, code: str) -> CouponPack:
        """Return the coupon pack with this code."""
        return _find(self.coupon_packs, code, "coupon pack", self.version)

    def reward(self, code: str) -> Reward:
        """Return the reward with this code."""
        return _find(self.rewards, code, "reward", self.version)

    def paid_plan(self, code: str) -> PaidPlan:
        """Return the paid plan with this code."""
        return _find(self.paid_plans, code, "paid plan", self.version)

    def growth_task(self, code: str) -> GrowthTask:
        """Return the growth task with this code."""
        return _find(self.growth.tasks, code, "growth task", self.version)

    def canonical_json(self) -> str:
        """Return the document as JSON with sorted keys and no spacing: one text per programme.

        It loads back with ``load_programme(text, "json")`` into an equal programme.
        """
        content = self.model_dump(mode="json", by_alias=True)
        return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def digest(self) -> str:
        """Return the SHA-256 of the canonical JSON, in hex.

        Defaults are part of it, so the digest names the rules that actually ran; the same content
        written in TOML or JSON, in any key order, has the same digest.
        """
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def load_programme(text: str, format: DocumentFormat) -> Programme:
    """Parse and validate a programme document, raising ``ProgrammeInvalid`` with every problem."""
    try:
        if format == "toml":
            return Programme.model_validate(tomllib.loads(text))
        if format == "json":
            return Programme.model_validate_json(text)
    except tomllib.TOMLDecodeError as error:
        raise ProgrammeInvalid([Problem(_DOCUMENT, f"not valid TOML: {error}")]) from None
    except ValidationError as error:
        raise ProgrammeInvalid([_problem(detail) for detail in error.errors()]) from None
    raise ValueError(f"unknown document format {format!r}: use toml or json")


@cache
def demo_programme() -> Programme:
    """Return the fruit-chain programme the demo ships (``demo_programme.toml`` in this package)."""
    text = resources.files("memberops.loyalty").joinpath("demo_programme.toml").read_text("utf-8")
    return load_programme(text, "toml")


_Coded = typing.TypeVar("_Coded", CouponTemplate, CouponPack, Reward, PaidPlan, GrowthTask)


def _find(items: Iterable[_Coded], code: str, kind: str, version: str) -> _Coded:
    for item in items:
        if item.code == code:
            return item
    raise NotFound(f'the programme {version} has no {kind} "{code}"')


# --- Cross-reference checks ------------------------------------------------------------------------


def programme_problems(programme: Programme) -> list[Problem]:
    """Return every inconsistency of a structurally valid programme, in document order."""
    problems: list[Problem] = []
    tiers = {tier.code for tier in programme.tiers}
    templates = {template.code for template in programme.coupon_templates}
    packs = {pack.code for pack in programme.coupon_packs}

    def add(path: str, message: str) -> None:
        problems.append(Problem(path, message))

    def check_codes(path: str, codes: Sequence[str], known: set[str], kind: str) -> None:
        for index, code in enumerate(codes):
            if code not in known:
                add(f"{path}[{index}]", f'unknown {kind} "{code}"')

    def check_gift(path: str, gift: Gift | None) -> None:
        if gift is not None:
            check_codes(f"{path}.coupons", gift.coupons, templates, "coupon template")
            check_codes(f"{path}.packs", gift.packs, packs, "coupon pack")

    def check_benefits(path: str, benefits: Benefits) -> None:
        check_gift(f"{path}.birthday_gift", benefits.birthday_gift)
        for sku, price in benefits.member_prices_fen.items():
            if price <= 0:
                add(f'{path}.member_prices["{sku}"]', "a member price must be more than zero")

    if programme.point_value_fen <= 0:
        add("point_value", "a point must be worth more than zero")

    _check_unique(add, "tiers", [tier.code for tier in programme.tiers], "tier")
    if not programme.tiers:
        add("tiers", "a programme needs at least one tier")
    elif programme.tiers[0].threshold != 0:
        add("tiers[0].threshold", f"the first tier must start at 0, not {programme.tiers[0].threshold}")
    for index in range(1, len(programme.tiers)):
        before, tier = programme.tiers[index - 1], programme.tiers[index]
        if tier.threshold <= before.threshold:
            add(
                f"tiers[{index}].threshold",
                f'{tier.threshold} must be above the threshold of "{before.code}" ({before.threshold})',
            )
    for index, tier in enumerate(programme.tiers):
        check_benefits(f"tiers[{index}].benefits", tier.benefits)
        check_gift(f"tiers[{index}].upgrade_gift", tier.upgrade_gift)

    _check_unique(add, "growth.tasks", [task.code for task in programme.growth.tasks], "growth task")
    for index, task in enumerate(programme.growth.tasks):
        if task.growth == 0 and task.points == 0:
            add(f"growth.tasks[{index}]", "a growth task must award growth, points or both")

    earn = programme.earn
    if earn.base.per_fen <= 0:
        add("earn.base.per", "the base rate needs an amount of more than zero")
    for code in earn.multipliers.tier:
        if code not in tiers:
            add(f'earn.multipliers.tier["{code}"]', f'unknown tier "{code}"')
    _check_unique(add, "earn.promotions", [promotion.code for promotion in earn.promotions], "promotion")
    for index, promotion in enumerate(earn.promotions):
        if promotion.ends_on < promotion.starts_on:
            add(f"earn.promotions[{index}].ends_on", f"{promotion.ends_on} is before {promotion.starts_on}")

    expiry = programme.expiry
    if expiry.policy == "fixed_days" and expiry.days is None:
        add("expiry.days", "the fixed_days policy needs a number of days")
    if expiry.policy != "fixed_days" and expiry.days is not None:
        add("expiry.days", f"days only applies to the fixed_days policy, not {expiry.policy}")

    _check_unique(add, "coupon_templates", [t.code for t in programme.coupon_templates], "coupon template")
    for index, template in enumerate(programme.coupon_templates):
        for path, message in _template_problems(template):
            add(f"coupon_templates[{index}]{path}", message)

    _check_unique(add, "coupon_packs", [pack.code for pack in programme.coupon_packs], "coupon pack")
    for index, pack in enumerate(programme.coupon_packs):
        if not pack.coupons:
            add(f"coupon_packs[{index}].coupons", "a coupon pack needs at least one coupon")
        for code, count in pack.coupons.items():
            if code not in templates:
                add(f'coupon_packs[{index}].coupons["{code}"]', f'unknown coupon template "{code}"')
            if count < 1:
                add(f'coupon_packs[{index}].coupons["{code}"]', f"the count must be 1 or more, not {count}")

    _check_unique(add, "rewards", [reward.code for reward in programme.rewards], "reward")
    for index, reward in enumerate(programme.rewards):
        check_codes(f"rewards[{index}].tiers", reward.tiers, tiers, "tier")
        if (reward.coupon is None) == (reward.goods is None):
            add(f"rewards[{index}]", "a reward grants either a coupon or goods (exactly one of the two)")
        if reward.coupon is not None and reward.coupon not in templates:
            add(f"rewards[{index}].coupon", f'unknown coupon template "{reward.coupon}"')

    _check_unique(add, "paid_plans", [plan.code for plan in programme.paid_plans], "paid plan")
    for index, plan in enumerate(programme.paid_plans):
        if plan.price_fen <= 0:
            add(f"paid_plans[{index}].price", "a paid plan must cost more than zero")
        check_benefits(f"paid_plans[{index}].benefits", plan.benefits)
        check_gift(f"paid_plans[{index}].welcome_gift", plan.welcome_gift)
    return problems


def _check_unique(add: typing.Callable[[str, str], None], path: str, codes: Sequence[str], kind: str) -> None:
    seen = Counter[str]()
    for index, code in enumerate(codes):
        seen[code] += 1
        if seen[code] == 2:
            add(f"{path}[{index}].code", f'duplicate {kind} code "{code}"')


def _template_problems(template: CouponTemplate) -> list[tuple[str, str]]:
    """Problems of one coupon template, as (path below the template, message)."""
    found: list[tuple[str, str]] = []
    kind = template.kind
    if kind == "percentage":
        if template.percent_off is None:
            found.append((".percent_off", "a percentage coupon needs percent_off"))
        if template.amount_fen is not None:
            found.append((".amount", "a percentage coupon takes percent_off, not an amount"))
    else:
        if template.amount_fen is None or template.amount_fen <= 0:
            found.append((".amount", f"a {kind} coupon needs an amount of more than zero"))
        if template.percent_off is not None:
            found.append((".percent_off", f"percent_off only applies to percentage coupons, not {kind}"))
        if template.max_discount_fen is not None:
            found.append((".max_discount", f"max_discount only applies to percentage coupons, not {kind}"))
    if kind == "no_threshold" and template.min_spend_fen:
        found.append((".min_spend", "a no_threshold coupon has no minimum spend"))
    if kind == "fixed_amount" and template.amount_fen and template.min_spend_fen < template.amount_fen:
        found.append(
            (
                ".min_spend",
                "a fixed_amount coupon needs a minimum spend of at least its amount (else no_threshold)",
            )
        )
    if template.stacking_group is not None and not template.stackable:
        found.append((".stacking_group", "only a stackable coupon belongs to a stacking group"))
    validity = template.validity
    absolute = validity.starts_on is not None or validity.ends_on is not None
    if absolute == (validity.days is not None):
        found.append((".validity", "give either starts_on and ends_on, or days"))
    elif absolute:
        if validity.starts_on is None or validity.ends_on is None:
            found.append((".validity", "an absolute validity needs both starts_on and ends_on"))
        elif validity.ends_on < validity.starts_on:
            found.append((".validity.ends_on", f"{validity.ends_on} is before {validity.starts_on}"))
    return found


# --- Pydantic error locations as document paths ----------------------------------------------------


def _problem(detail: Mapping[str, Any]) -> Problem:
    message = str(detail["msg"]).removeprefix("Value error, ")
    return Problem(_location(tuple(detail["loc"])), message)


def _location(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a document path, walking the model to tell keys from fields."""
    path = ""
    current: Any = Programme
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            found = next(
                ((name, info) for name, info in current.model_fields.items() if (info.alias or name) == part),
                None,
            )
            path += f".{part}"
            current = found[1].annotation if found else None
        elif origin in (tuple, list) and isinstance(part, int):
            path += f"[{part}]"
            current = typing.get_args(current)[0]
        elif origin in (dict, Mapping) and part != "[key]":
            path += f'["{part}"]'
            current = typing.get_args(current)[1]
        elif part != "[key]":
            path += f".{part}" if isinstance(part, str) else f"[{part}]"
            current = None
    return path.lstrip(".") or _DOCUMENT


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` so the walk sees the model, tuple or mapping underneath."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
