"""``memberops coupon|reward|plan|checkout|benefit …``: coupons, the points mall, paid plans, checkout.

PERSON is a person id (``person:42``) or any identifier. Writes take ``--key``: running a command
again with the same key changes nothing (without one a fresh key is made up, so a retry would do
it again). Refused actions print the reason and exit 2 with nothing changed.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from memberops.cli.common import (
    CLI_ACTOR,
    OutputFormat,
    errors,
    person_of,
    print_json,
    print_table,
    reports_errors,
    services,
    transaction,
)
from memberops.cli.persons import PERSON_HELP
from memberops.kit.clock import parse_instant, utc_now
from memberops.kit.errors import NotFound, ValidationFailed
from memberops.kit.money import yuan_to_fen
from memberops.loyalty import (
    benefit_service,
    checkout_service,
    coupon_service,
    offer_views,
    plan_service,
    reward_service,
)
from memberops.loyalty.cart import Cart, CartLine
from memberops.loyalty.coupon_service import IssueRequest

coupon_app = typer.Typer(
    help="Coupons: issue, import marketplace codes, list, redeem, void, expire.", no_args_is_help=True
)
reward_app = typer.Typer(
    help="The rewards catalogue (积分商城): list, redeem with points, cancel.", no_args_is_help=True
)
plan_app = typer.Typer(
    help="Paid plans (付费会员): buy, renew, refund, status, expire.", no_args_is_help=True
)
checkout_app = typer.Typer(
    help="Checkout: quote a cart, settle an order, cancel, refund.", no_args_is_help=True
)
benefit_app = typer.Typer(help="Benefits given by jobs: birthdays and birthday gifts.", no_args_is_help=True)

#: Exit status of an import that rejected rows (the others were imported), as ``import orders``.
EXIT_REJECTED_ROWS = 3
#: Persons resolved and issued to per transaction in a bulk issue.
ISSUE_CHUNK = 1000

PersonArgument = Annotated[str, typer.Argument(help=PERSON_HELP)]
FormatOption = Annotated[OutputFormat, typer.Option("--format")]
KeyOption = Annotated[
    str | None, typer.Option(help="idempotency key: running again with it changes nothing (no | in it)")
]
OperatorOption = Annotated[str, typer.Option("--operator", help="who is doing this (kept with the change)")]
AtOption = Annotated[str | None, typer.Option(help="as of this instant (ISO 8601; default now)")]


def _key(key: str | None) -> str:
    return key or uuid.uuid4().hex


def _zone() -> Any:
    return services().loyalty.time_zone


# --- coupon --------------------------------------------------------------------------------------


@coupon_app.command("issue")
@reports_errors
def coupon_issue(
    persons: Annotated[list[str] | None, typer.Argument(help=f"who gets it: {PERSON_HELP}")] = None,
    template: Annotated[str | None, typer.Option(help="the coupon template's code")] = None,
    pack: Annotated[str | None, typer.Option(help="a coupon pack's code (instead of a template)")] = None,
    count: Annotated[int, typer.Option(help="coupons of the template per person")] = 1,
    file: Annotated[Path | None, typer.Option(help="a file of persons, one per line (a segment)")] = None,
    reason: Annotated[str, typer.Option(help="why (kept on every coupon)")] = "issued by an operator",
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Issue a template (or a pack) to persons named here and/or in FILE; resumable with the same --key."""
    if (template is None) == (pack is None):
        raise ValidationFailed("give --template or --pack")
    references = list(persons or [])
    if file is not None:
        if not file.is_file():
            raise NotFound(f"{file} does not exist")
        references += [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not references:
        raise ValidationFailed("name at least one person, or give --file")
    key = _key(key)
    created = replayed = 0
    unknown: list[str] = []
    issued: list[dict[str, Any]] = []
    with Progress(
        TextColumn("[bold]issue[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
    ) as bar:
        task = bar.add_task("persons", total=len(references))
        for start in range(0, len(references), ISSUE_CHUNK):
            chunk = references[start : start + ISSUE_CHUNK]
            with transaction() as session:
                ids: list[int] = []
                for reference in chunk:
                    try:
                        ids.append(person_of(session, reference))
                    except (NotFound, ValidationFailed):
                        unknown.append(reference)
                options: dict[str, Any] = {
                    "key": key,
                    "reason": reason,
                    "actor": operator,
                    "time_zone": _zone(),
                }
                if pack is not None:
                    outcome = coupon_service.issue_pack(session, ids, pack, **options)
                else:
                    assert template is not None
                    outcome = coupon_service.issue_coupons(
                        session, ids, [IssueRequest(template, count)], **options
                    )
                created += len(outcome.created)
                replayed += len(outcome.replayed)
                if len(references) <= 50:
                    issued += [offer_views.coupon_view(coupon) for coupon in outcome.coupons]
            bar.update(task, advance=len(chunk))
    summary = {
        "key": key,
        "created": created,
        "replayed": replayed,
        "unknown_persons": unknown,
        "coupons": issued,
    }
    if output is OutputFormat.JSON:
        print_json(summary)
        return
    typer.echo(f"{created} coupons issued, {replayed} already issued under key {key}")
    if unknown:
        typer.echo(f"unknown persons: {', '.join(unknown)}")
    if issued:
        print_table(
            "coupons",
            ["id", "code", "template", "person", "valid until"],
            [[c["id"], c["code"], c["template"], c["person_id"], c["valid_until"]] for c in issued],
        )


@coupon_app.command("import")
@reports_errors
def coupon_import(
    file: Annotated[Path, typer.Argument(help="CSV with the columns code,template,phone,buyer_id")],
    channel: Annotated[str, typer.Option(help="the marketplace the codes come from (its buyer ids)")],
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Import marketplace vouchers: each buyer is resolved by OneID and joins the programme.

    Bad rows are reported with their line number and the rest are imported (exit 3 when any was
    rejected); importing the file again imports nothing twice.
    """
    if not file.is_file():
        raise NotFound(f"{file} does not exist")
    text = file.read_text(encoding="utf-8-sig")
    svc = services()
    with transaction() as session:
        outcome = coupon_service.import_external_codes(
            session, svc.ingest, text, channel=channel, actor=operator, time_zone=_zone()
        )
    summary = {
        "rows": outcome.rows,
        "imported": outcome.imported,
        "duplicates": outcome.duplicates,
        "rejected": len(outcome.rejected),
        "rejections": [{"line": r.line, "reason": r.reason} for r in outcome.rejected],
        "coupon_ids": outcome.coupon_ids,
    }
    if output is OutputFormat.JSON:
        print_json(summary)
    else:
        typer.echo(
            f"{outcome.rows} rows: {outcome.imported} imported, {outcome.duplicates} already imported, "
            f"{len(outcome.rejected)} rejected"
        )
        for rejection in outcome.rejected:
            errors.print(f"line {rejection.line}: {rejection.reason}")
    if outcome.rejected:
        raise typer.Exit(EXIT_REJECTED_ROWS)


@coupon_app.command("list")
@reports_errors
def coupon_list(
    person: PersonArgument,
    status: Annotated[str | None, typer.Option(help="issued, redeemed, expired or void")] = None,
    limit: int = 100,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List a member's coupons, newest first."""
    with transaction() as session:
        rows = offer_views.coupons_of(session, person_of(session, person), status=status, limit=limit)
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "coupons",
        ["id", "code", "template", "status", "valid from", "valid until", "source"],
        [
            [r["id"], r["code"], r["template"], r["status"], r["valid_from"], r["valid_until"], r["source"]]
            for r in rows
        ],
    )


@coupon_app.command("redeem")
@reports_errors
def coupon_redeem(
    code: Annotated[str, typer.Argument(help="the coupon's code (any spelling) or #id")],
    person: Annotated[str | None, typer.Option(help=f"check the coupon is theirs: {PERSON_HELP}")] = None,
    channel: Annotated[str | None, typer.Option(help="where it is used (checked against its scope)")] = None,
    store: Annotated[str | None, typer.Option(help="the store code")] = None,
    order: Annotated[str | None, typer.Option(help="the order it was used on")] = None,
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Use a coupon once (a voucher handed over at the till)."""
    with transaction() as session:
        person_id = person_of(session, person) if person else None
        used = coupon_service.redeem_coupon(
            session,
            code,
            key=_key(key),
            actor=operator,
            person_id=person_id,
            channel=channel,
            store=store,
            order_ref=order,
        )
        view = {
            **offer_views.coupon_view(used.coupon),
            "redemption_id": used.redemption.id,
            "created": used.created,
        }
    if output is OutputFormat.JSON:
        print_json(view)
    else:
        state = "redeemed" if used.created else "already redeemed with this key"
        typer.echo(f"coupon {view['id']} ({view['code']}, {view['template']}) {state}")


@coupon_app.command("void")
@reports_errors
def coupon_void(
    code: Annotated[str, typer.Argument(help="the coupon's code or #id")],
    reason: Annotated[str, typer.Option(help="why (kept on the coupon)")],
    operator: OperatorOption = CLI_ACTOR,
) -> None:
    """Withdraw an unused coupon."""
    with transaction() as session:
        coupon = coupon_service.void_coupon(session, code, reason=reason, actor=operator)
        typer.echo(f"coupon {coupon.id} is {coupon.status}")


@coupon_app.command("expire")
@reports_errors
def coupon_expire(
    at: AtOption = None,
    notice_days: Annotated[int, typer.Option(help="send coupon.expiring this many days ahead")] = 3,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Mark ended coupons expired and send coupon.expiring notices (one transaction per chunk)."""
    now = parse_instant(at) if at else utc_now()
    expired = notified = 0
    while True:
        with transaction() as session:
            report = coupon_service.expire_coupons(session, now=now, notice_days=notice_days)
        expired, notified = expired + report.expired, notified + report.notified
        if report.expired == 0 and report.notified == 0:
            break
    if output is OutputFormat.JSON:
        print_json({"expired": expired, "notified": notified})
    else:
        typer.echo(f"{expired} coupons expired; {notified} expiring notices sent")


# --- reward --------------------------------------------------------------------------------------


@reward_app.command("list")
@reports_errors
def reward_list(
    person: Annotated[str | None, typer.Option(help=f"show it for a member: {PERSON_HELP}")] = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the rewards catalogue with what is left (and, for a member, what they may redeem)."""
    with transaction() as session:
        member = person_of(session, person) if person else None
        rows = [
            offer_views.catalogue_view(item) for item in reward_service.catalogue(session, person_id=member)
        ]
    if output is OutputFormat.JSON:
        print_json(rows)
        return
    print_table(
        "rewards",
        ["code", "name", "points", "left", "limit", "grants", "why not"],
        [
            [
                r["code"],
                r["name"],
                r["points_price"],
                r["stock_left"],
                r["limit_per_member"],
                r["grants"],
                r["rejection"],
            ]
            for r in rows
        ],
    )


@reward_app.command("redeem")
@reports_errors
def reward_redeem(
    person: PersonArgument,
    reward: Annotated[str, typer.Argument(help="the reward's code")],
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Redeem a reward with the member's points."""
    with transaction() as session:
        outcome = reward_service.redeem_reward(
            session, person_of(session, person), reward, key=_key(key), actor=operator, time_zone=_zone()
        )
        view = offer_views.redemption_view(
            outcome.redemption, reward_service.granted_coupon(session, outcome.redemption)
        )
    if output is OutputFormat.JSON:
        print_json({**view, "created": outcome.created})
    else:
        granted = f", coupon {view['coupon']['code']}" if view["coupon"] else ""
        typer.echo(f"redemption {view['id']}: {view['reward']} for {view['points']} points{granted}")


@reward_app.command("cancel")
@reports_errors
def reward_cancel(
    redemption: Annotated[int, typer.Argument(help="the redemption's id")],
    reason: Annotated[str, typer.Option(help="why (kept on the redemption)")],
    operator: OperatorOption = CLI_ACTOR,
) -> None:
    """Cancel a redemption: the points come back, the stock goes up, a granted coupon is voided."""
    with transaction() as session:
        outcome = reward_service.cancel_redemption(session, redemption, reason=reason, actor=operator)
    state = "cancelled" if outcome.created else "was already cancelled"
    typer.echo(f"redemption {redemption} {state}; {outcome.redemption.points_price} points back")


# --- plan ----------------------------------------------------------------------------------------


def _plan_output(session: Session, outcome: plan_service.TermOutcome, output: OutputFormat) -> None:
    term = offer_views.term_view(outcome.term)
    plan = offer_views.plan_of(session, outcome.term.person_id, outcome.status)
    refund = offer_views.plan_refund_view(outcome.refund)
    if output is OutputFormat.JSON:
        print_json({"term": term, "created": outcome.created, "plan": plan, "refund": refund})
        return
    typer.echo(
        f"term {term['id']}: {term['plan']} ({term['kind']}) {term['starts_at']} → {term['ends_at']}, "
        f"{term['price']} yuan, {term['status']}; plan now {plan['status']}"
        + (f"; refunded {refund['amount']} yuan ({refund['rule']})" if refund else "")
    )


def _buy(
    person: str,
    plan: str,
    key: str | None,
    operator: str,
    output: OutputFormat,
    renewal: bool,
    ref: str | None,
) -> None:
    with transaction() as session:
        outcome = plan_service.buy_plan(
            session,
            person_of(session, person),
            plan,
            key=_key(key),
            actor=operator,
            time_zone=_zone(),
            renewal_only=renewal,
            payment_ref=ref,
        )
        _plan_output(session, outcome, output)


PlanArgument = Annotated[str, typer.Argument(help="the paid plan's code (half_year, annual…)")]
PaymentOption = Annotated[str | None, typer.Option("--payment-ref", help="the payment's id in your system")]


@plan_app.command("buy")
@reports_errors
def plan_buy(
    person: PersonArgument,
    plan: PlanArgument,
    key: KeyOption = None,
    payment_ref: PaymentOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Buy a paid plan: it starts now, or follows the member's current one."""
    _buy(person, plan, key, operator, output, False, payment_ref)


@plan_app.command("renew")
@reports_errors
def plan_renew(
    person: PersonArgument,
    plan: PlanArgument,
    key: KeyOption = None,
    payment_ref: PaymentOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Renew: the new term follows the current one (also during its grace)."""
    _buy(person, plan, key, operator, output, True, payment_ref)


@plan_app.command("refund")
@reports_errors
def plan_refund(
    person: PersonArgument,
    reason: Annotated[str, typer.Option(help="why (kept on the term)")],
    term: Annotated[int | None, typer.Option(help="the term's id (default: the latest)")] = None,
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Refund a term: in full within 7 days of paying, else pro rata to the days left."""
    with transaction() as session:
        outcome = plan_service.refund_plan(
            session,
            person_of(session, person),
            key=_key(key),
            reason=reason,
            actor=operator,
            time_zone=_zone(),
            term_id=term,
        )
        _plan_output(session, outcome, output)


@plan_app.command("status")
@reports_errors
def plan_status(
    person: PersonArgument, at: AtOption = None, output: FormatOption = OutputFormat.TABLE
) -> None:
    """Show a member's plan status (active, expiring, expired, none) and their terms."""
    moment = parse_instant(at) if at else utc_now()
    with transaction() as session:
        member = person_of(session, person)
        status = plan_service.plan_status_of(session, member, time_zone=_zone(), at=moment)
        view = offer_views.plan_of(session, member, status)
    if output is OutputFormat.JSON:
        print_json(view)
        return
    typer.echo(
        f"person {view['person_id']}: {view['status']}"
        + (f" ({view['plan']} until {view['ends_at']})" if view["plan"] else "")
        + (f", renewable until {view['grace_ends_at']}" if view["in_grace"] else "")
    )
    if view["terms"]:
        print_table(
            "terms",
            ["id", "plan", "kind", "starts", "ends", "price", "status"],
            [
                [t["id"], t["plan"], t["kind"], t["starts_at"], t["ends_at"], t["price"], t["status"]]
                for t in view["terms"]
            ],
        )


@plan_app.command("expire")
@reports_errors
def plan_expire(at: AtOption = None) -> None:
    """Send plan.expiring before plans end and plan.expired when they have (run daily)."""
    now = parse_instant(at) if at else utc_now()
    notified = expired = after = 0
    while True:
        with transaction() as session:
            report = plan_service.expire_plans(session, time_zone=_zone(), now=now, after=after)
        notified, expired, after = notified + report.notified, expired + report.expired, report.last_person_id
        if report.members == 0:
            break
    typer.echo(f"{notified} plan.expiring notices, {expired} plans expired")


# --- checkout ------------------------------------------------------------------------------------

LineOption = Annotated[
    list[str] | None,
    typer.Option(
        "--line", help="SKU,CATEGORY,QTY,UNIT_PRICE (yuan), repeat for each line: --line DUR-MST,榴莲,1,128"
    ),
]
CartOption = Annotated[
    Path | None, typer.Option(help="a JSON file with the lines, as the API's checkout body")
]


def _lines(lines: list[str] | None, cart: Path | None) -> tuple[CartLine, ...]:
    parsed: list[CartLine] = []
    if cart is not None:
        if not cart.is_file():
            raise NotFound(f"{cart} does not exist")
        try:
            body = json.loads(cart.read_text(encoding="utf-8"))
            raw_lines = body["lines"] if isinstance(body, dict) else body
            for number, line in enumerate(raw_lines, start=1):
                parsed.append(
                    CartLine(
                        int(line.get("line_no") or number),
                        str(line["sku"]),
                        str(line["category"]),
                        int(line["qty"]),
                        yuan_to_fen(str(line["unit_price"])),
                    )
                )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValidationFailed(
                f"{cart}: lines need sku, category, qty and unit_price ({error})"
            ) from None
    for text in lines or []:
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 4 or not (parts[2].isascii() and parts[2].isdigit()):
            raise ValidationFailed(f"--line {text!r}: write SKU,CATEGORY,QTY,UNIT_PRICE")
        parsed.append(CartLine(len(parsed) + 1, parts[0], parts[1], int(parts[2]), yuan_to_fen(parts[3])))
    if not parsed:
        raise ValidationFailed("give the cart with --line or --cart")
    return tuple(parsed)


def _print_quote(view: dict[str, Any]) -> None:
    print_table(
        "lines",
        ["#", "sku", "qty", "list", "member", "by", "coupon", "points", "pay"],
        [
            [
                line["line_no"],
                line["sku"],
                line["quantity"],
                line["list_price"],
                line["member_price"],
                line["member_price_source"],
                line["coupon"],
                line["points"],
                line["payable"],
            ]
            for line in view["lines"]
        ],
    )
    if view["coupons"]:
        print_table(
            "coupons",
            ["id", "template", "alone", "applied", "why not"],
            [
                [c["coupon_id"], c["template"], c["alone"], c["applied"], c["rejection"]]
                for c in view["coupons"]
            ],
        )
    points = view["points"]
    typer.echo(
        f"list {view['list_price']} − member {view['member_discount']} − coupons {view['coupon_discount']} "
        f"− points {points['value']} ({points['used']} of {points['usable']} usable, "
        f"balance {points['balance']}) "
        f"+ delivery {view['delivery']} = pay {view['payable']} yuan"
    )


@checkout_app.command("quote")
@reports_errors
def checkout_quote(
    person: PersonArgument,
    line: LineOption = None,
    cart: CartOption = None,
    channel: Annotated[str, typer.Option(help="where the member buys")] = "pos",
    store: Annotated[str | None, typer.Option(help="the store code")] = None,
    delivery: Annotated[str, typer.Option(help="the delivery fee in yuan")] = "0",
    coupon: Annotated[
        list[int] | None, typer.Option("--coupon", help="use this coupon id (repeat); default: the best")
    ] = None,
    no_coupon: Annotated[bool, typer.Option("--no-coupon", help="use no coupon")] = False,
    points: Annotated[int, typer.Option(help="points to pay with")] = 0,
    at: AtOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Price a cart for a member: member prices, the best (or given) coupons, points usable, final price."""
    moment = parse_instant(at) if at else utc_now()
    basket = Cart(_lines(line, cart), channel, moment, store, yuan_to_fen(delivery))
    selected: list[int] | None = [] if no_coupon else (list(coupon) if coupon else None)
    with transaction() as session:
        priced = checkout_service.quote_for(
            session, person_of(session, person), basket, selected=selected, points=points, time_zone=_zone()
        )
    view = offer_views.quote_view(priced)
    if output is OutputFormat.JSON:
        print_json(view)
    else:
        _print_quote(view)


@checkout_app.command("settle")
@reports_errors
def checkout_settle(
    person: PersonArgument,
    order: Annotated[str, typer.Option(help="the order's id in the source (external order id)")],
    line: LineOption = None,
    cart: CartOption = None,
    source: Annotated[str, typer.Option(help="the channel the order comes from")] = "pos",
    store: Annotated[str | None, typer.Option(help="the store code")] = None,
    delivery: Annotated[str, typer.Option(help="the delivery fee in yuan")] = "0",
    coupon: Annotated[list[int] | None, typer.Option("--coupon", help="a coupon id to use (repeat)")] = None,
    points: Annotated[int, typer.Option(help="points to pay with")] = 0,
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Settle an order: its coupons and points are consumed at once (again with the same order: no change)."""
    with transaction() as session:
        request = checkout_service.SettleRequest(
            source=source,
            external_order_id=order,
            person_id=person_of(session, person),
            lines=_lines(line, cart),
            store=store,
            delivery_fen=yuan_to_fen(delivery),
            coupon_ids=tuple(coupon or ()),
            points=points,
        )
        outcome = checkout_service.settle(
            session, request, key=key or f"cli:{source}:{order}", actor=operator, time_zone=_zone()
        )
        view = offer_views.settlement_view(outcome.settlement)
    _print_settlement(view, outcome.created, output)


def _print_settlement(view: dict[str, Any], created: bool, output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        print_json({**view, "created": created})
        return
    state = "" if created else " (already settled: nothing changed)"
    typer.echo(
        f"settlement {view['id']} for {view['source']}/{view['external_order_id']}: {view['status']}{state}; "
        f"coupons {view['coupon_ids'] or '-'}, {view['points_spent']} points, pay {view['payable']} yuan"
        + (f", refunded {view['refunded']}" if view["refunded"] != "0.00" else "")
    )


@checkout_app.command("cancel")
@reports_errors
def checkout_cancel(
    settlement: Annotated[int, typer.Argument(help="the settlement's id")],
    reason: Annotated[str, typer.Option(help="why")],
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Cancel a settlement: its coupons and points come back."""
    with transaction() as session:
        outcome = checkout_service.cancel_settlement(session, settlement, reason=reason, actor=operator)
        view = offer_views.settlement_view(outcome.settlement)
    _print_settlement(view, outcome.created, output)


@checkout_app.command("refund")
@reports_errors
def checkout_refund(
    settlement: Annotated[int, typer.Argument(help="the settlement's id")],
    amount: Annotated[str | None, typer.Option(help="yuan given back (default: all that is left)")] = None,
    reason: Annotated[str | None, typer.Option(help="why")] = None,
    key: KeyOption = None,
    operator: OperatorOption = CLI_ACTOR,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Record a refund; the one completing the order gives its coupons and points back."""
    with transaction() as session:
        outcome = checkout_service.refund_settlement(
            session,
            settlement,
            key=_key(key),
            amount_fen=yuan_to_fen(amount) if amount is not None else None,
            reason=reason,
            actor=operator,
        )
        view = offer_views.settlement_view(outcome.settlement)
        refund = offer_views.refund_view(outcome.refund)
    if output is OutputFormat.JSON:
        print_json({"refund": refund, "settlement": view, "created": outcome.created})
    else:
        typer.echo(
            f"refund {refund['id']}: {refund['amount']} yuan; settlement {view['id']} {view['status']}, "
            f"refunded {view['refunded']} of {view['payable']}"
            + ("; coupons and points given back" if view["status"] == "refunded" else "")
        )


# --- benefit -------------------------------------------------------------------------------------


@benefit_app.command("birthday")
@reports_errors
def benefit_birthday(
    person: PersonArgument,
    birthday: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
) -> None:
    """Record a member's birthday (the birthday gift comes in that month)."""
    try:
        day = date.fromisoformat(birthday)
    except ValueError:
        raise ValidationFailed(f"{birthday!r} is not a date (YYYY-MM-DD)") from None
    with transaction() as session:
        membership = benefit_service.set_birthday(session, person_of(session, person), day, time_zone=_zone())
        typer.echo(f"person {membership.person_id}: birthday {day.isoformat()}")


@benefit_app.command("birthday-gifts")
@reports_errors
def benefit_birthday_gifts(
    on: Annotated[str | None, typer.Option(help="the business date, YYYY-MM-DD (default today)")] = None,
    operator: OperatorOption = "birthday-job",
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Give this year's birthday gifts to members whose birthday month it is (run daily; gives once)."""
    now = utc_now()
    today = date.fromisoformat(on) if on else now.astimezone(_zone()).date()
    given: list[benefit_service.GiftGiven] = []
    after = 0
    with Progress(
        TextColumn("[bold]birthday gifts[/bold]"), BarColumn(), MofNCompleteColumn(), console=errors
    ) as bar:
        task = bar.add_task("members", total=None)
        seen = 0
        while True:
            with transaction() as session:
                batch = benefit_service.birthday_candidates(session, today, after=after, limit=200)
                if not batch:
                    break
                given += benefit_service.grant_birthday_gifts(
                    session, batch, today=today, actor=operator, time_zone=_zone(), now=now
                )
            after = batch[-1]
            seen += len(batch)
            bar.update(task, completed=seen)
    if output is OutputFormat.JSON:
        print_json([gift.__dict__ | {"coupon_ids": list(gift.coupon_ids)} for gift in given])
    else:
        points = sum(gift.points for gift in given)
        coupons = sum(len(gift.coupon_ids) for gift in given)
        typer.echo(f"{len(given)} birthday gifts given: {points} points, {coupons} coupons")
