"""Coupon rules: codes, validity windows, scope, discounts, stacking and the best combination."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memberops.loyalty.cart import PricedLine
from memberops.loyalty.coupons import (
    ALPHABET,
    CODE_LENGTH,
    CouponRejected,
    apply_coupons,
    apportion,
    best_combination,
    check_character,
    code_rejection_reason,
    discount_fen,
    expiry_due,
    expiry_notice_due,
    external_code_rejection_reason,
    format_code,
    generate_code,
    issuance_rejection_reason,
    normalize_code,
    stacking_rejection_reason,
    usability_rejection_reason,
    validity_window,
)
from memberops.loyalty.programme import demo_programme

from .offer_builders import NOW, SHANGHAI, held, priced, template

# --- Codes ---------------------------------------------------------------------------------------


def test_a_generated_code_has_twelve_unambiguous_characters_and_passes_its_check() -> None:
    counter = itertools.count()
    code = generate_code(lambda _: next(counter) % 32)

    assert code == "0123456789A" + check_character("0123456789A")
    assert len(code) == CODE_LENGTH
    assert code_rejection_reason(code) is None
    assert not set("ILOU") & set(ALPHABET)


def test_codes_are_read_forgivingly_and_shown_in_groups_of_four() -> None:
    code = generate_code()
    typed = "-".join([code[:4], code[4:8], code[8:]]).lower()

    assert normalize_code(typed) == code
    assert format_code(code) == typed.upper()
    assert normalize_code(" o1l-i ") == "0111"
    assert format_code("TMALL-abc") == "TMALL-abc"


def test_every_single_character_typo_is_caught() -> None:
    code = generate_code()
    for position in range(CODE_LENGTH):
        for character in ALPHABET:
            if character != code[position]:
                typo = code[:position] + character + code[position + 1 :]
                assert code_rejection_reason(typo) is not None


@given(st.text(alphabet=ALPHABET, min_size=11, max_size=11), st.integers(0, 9))
def test_swapping_two_different_neighbours_is_caught_almost_always(body: str, position: int) -> None:
    code = body + check_character(body)
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
    pair = {code[position], code[position + 1]}
    # Luhn mod N misses exactly one swap: the first and last characters of the alphabet.
    if swapped != code and pair != {ALPHABET[0], ALPHABET[-1]}:
        assert code_rejection_reason(swapped) is not None


def test_code_rejections_say_what_is_wrong() -> None:
    assert code_rejection_reason("ABC") == "a coupon code has 12 characters, not 3"
    assert code_rejection_reason("UUUUUUUUUUUU") == "a coupon code has no 'U'"
    assert external_code_rejection_reason("TM 123") == "an external code has no spaces or control characters"
    assert external_code_rejection_reason("") == "an external code has 1 to 64 characters"
    assert external_code_rejection_reason("TB-20260301-0001") is None


# --- Validity ------------------------------------------------------------------------------------


def test_a_relative_window_runs_from_issue_to_the_end_of_the_last_business_day() -> None:
    # issued 2026-03-10 23:30 Shanghai (15:30 UTC), 7 days: valid to the end of 16 March, Shanghai
    issued = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)

    valid_from, valid_until = validity_window(template(validity={"days": 7}), issued, SHANGHAI)

    assert valid_from == issued
    assert valid_until == datetime(2026, 3, 16, 16, 0, tzinfo=UTC)


def test_an_absolute_window_covers_whole_business_days_in_the_brand_zone() -> None:
    coupon = template(validity={"starts_on": "2026-06-01", "ends_on": "2026-06-18"})

    assert validity_window(coupon, NOW, SHANGHAI) == (
        datetime(2026, 5, 31, 16, 0, tzinfo=UTC),
        datetime(2026, 6, 18, 16, 0, tzinfo=UTC),
    )
    assert issuance_rejection_reason(coupon, NOW, SHANGHAI) is None
    assert issuance_rejection_reason(coupon, datetime(2026, 6, 18, 16, 0, tzinfo=UTC), SHANGHAI) == (
        'coupon template "t" was valid until 2026-06-18; it can no longer be issued'
    )


def test_a_coupon_is_usable_only_while_issued_and_inside_its_window() -> None:
    start, end = NOW, NOW + timedelta(days=1)
    coupon = held(7, template(), valid_from=start, valid_until=end)

    assert usability_rejection_reason(coupon, start) is None
    assert usability_rejection_reason(coupon, start - timedelta(seconds=1)) == (
        "coupon 7 is valid from 2026-03-10T02:00:00+00:00"
    )
    assert usability_rejection_reason(coupon, end) == "coupon 7 expired at 2026-03-11T02:00:00+00:00"
    assert usability_rejection_reason(held(7, template(), "redeemed"), start) == "coupon 7 is redeemed"
    assert expiry_due("issued", end, end) is True
    assert expiry_due("redeemed", end, end) is False
    assert expiry_notice_due("issued", end, start, days=1) is True
    assert expiry_notice_due("issued", end, start - timedelta(seconds=1), days=1) is False


# --- Discounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "available", "expected"),
    [
        ({"kind": "fixed_amount", "amount": "10", "min_spend": "59"}, 5900, 1000),
        ({"kind": "no_threshold", "amount": "20"}, 1500, 1500),  # never more than the goods
        ({"kind": "percentage", "percent_off": 15}, 1999, 300),  # 299.85 rounds half up to 300
        ({"kind": "percentage", "percent_off": 15}, 1990, 299),  # 298.5 → 299 (half up)
        ({"kind": "percentage", "percent_off": 15, "max_discount": "30"}, 100000, 3000),
        ({"kind": "percentage", "percent_off": 10}, 0, 0),
    ],
)
def test_discounts_in_exact_fen(fields: dict[str, object], available: int, expected: int) -> None:
    kind = str(fields.pop("kind"))
    assert discount_fen(template(kind=kind, **fields), available) == expected


def test_the_minimum_spend_and_the_scope_decide_whether_a_coupon_applies() -> None:
    cherry = template(
        "cherry",
        amount="30",
        min_spend="199",
        scope={"categories": ["车厘子"], "channels": ["pos"], "stores": ["SH001"]},
    )
    lines = [PricedLine(1, "CHE", "车厘子", 15000), PricedLine(2, "APL", "苹果", 9000)]
    coupon = held(1, cherry)

    with pytest.raises(CouponRejected, match=r"needs 199.00 yuan of eligible goods, the cart has 150.00"):
        apply_coupons([coupon], lines, channel="pos", store="SH001", at=NOW)
    with pytest.raises(CouponRejected, match="only in pos, not in tmall"):
        apply_coupons([coupon], lines, channel="tmall", store="SH001", at=NOW)
    with pytest.raises(CouponRejected, match="only in the stores SH001"):
        apply_coupons([coupon], lines, channel="pos", store=None, at=NOW)

    lines[0] = PricedLine(1, "CHE", "车厘子", 19900)
    applied = apply_coupons([coupon], lines, channel="pos", store="SH001", at=NOW)
    assert applied.discount_fen == 3000
    assert applied.remaining == ((1, 16900), (2, 9000))


def test_skus_and_categories_of_a_scope_combine_with_and() -> None:
    scoped = template("s", kind="no_threshold", amount="5", scope={"skus": ["A"], "categories": ["x"]})
    lines = [PricedLine(1, "A", "y", 1000), PricedLine(2, "B", "x", 1000)]

    with pytest.raises(CouponRejected, match="nothing in the cart is covered by the coupon"):
        apply_coupons([held(1, scoped)], lines, channel="pos", store=None, at=NOW)


def test_a_discount_is_shared_over_its_lines_in_proportion() -> None:
    ten_off = template("ten", kind="no_threshold", amount="10")

    applied = apply_coupons([held(1, ten_off)], priced(100, 200, 700), channel="pos", store=None, at=NOW)

    assert applied.applied[0].lines == ((1, 100), (2, 200), (3, 700))
    assert applied.remaining == ((1, 0), (2, 0), (3, 0))
    three = apply_coupons(
        [held(1, template("three", kind="no_threshold", amount="0.10"))],
        priced(100, 100, 100),
        channel="pos",
        store=None,
        at=NOW,
    )
    assert three.applied[0].lines == ((1, 4), (2, 3), (3, 3))


# --- Stacking ------------------------------------------------------------------------------------


def test_stacking_rules() -> None:
    alone = held(1, template("alone"))
    a = held(2, template("a", kind="no_threshold", stackable=True, stacking_group="g"))
    b = held(3, template("b", kind="no_threshold", stackable=True, stacking_group="g"))
    c = held(4, template("c", kind="no_threshold", stackable=True))
    c_again = held(5, template("c", kind="no_threshold", stackable=True))

    assert stacking_rejection_reason([alone]) is None
    assert stacking_rejection_reason([alone, a]) == 'coupon 1 ("alone") cannot be combined with other coupons'
    assert (
        stacking_rejection_reason([a, b]) == 'coupons 2 and 3 are both in stacking group "g": use one of them'
    )
    assert stacking_rejection_reason([a, c]) is None
    assert stacking_rejection_reason([c, c_again]) == (
        'coupons 4 and 5 are both in stacking group "template:c": use one of them'
    )
    assert stacking_rejection_reason([a, a]) == "the same coupon is named twice"


def test_a_stack_applies_percentage_coupons_first_whatever_the_order_given() -> None:
    percent = held(9, template("p", kind="percentage", percent_off=10, stackable=True, stacking_group="x"))
    fixed = held(1, template("f", kind="no_threshold", amount="10", stackable=True, stacking_group="y"))

    one = apply_coupons([fixed, percent], priced(10000), channel="pos", store=None, at=NOW)
    other = apply_coupons([percent, fixed], priced(10000), channel="pos", store=None, at=NOW)

    assert one == other
    assert [(a.coupon_id, a.discount_fen) for a in one.applied] == [(9, 1000), (1, 1000)]
    assert one.discount_fen == 2000


def test_a_coupon_that_would_take_nothing_is_refused_not_wasted() -> None:
    big = held(1, template("big", kind="no_threshold", amount="50", stackable=True, stacking_group="a"))
    small = held(2, template("small", kind="no_threshold", amount="5", stackable=True, stacking_group="b"))

    with pytest.raises(CouponRejected, match="coupon 2 would take nothing off"):
        apply_coupons([big, small], priced(3000), channel="pos", store=None, at=NOW)


def test_the_best_combination_is_the_largest_discount_then_fewest_coupons_then_lowest_ids() -> None:
    programme = demo_programme()
    durian = held(1, programme.coupon_template("durian_15_off"))  # 15 % of durian, at most 30
    repurchase = held(2, programme.coupon_template("repurchase_10"))  # 10 off 59, alone
    welcome = held(3, programme.coupon_template("welcome_5"))  # 5 off, alone
    lines = [PricedLine(1, "DUR", "榴莲", 7990), PricedLine(2, "APL", "苹果", 2697)]

    best = best_combination([welcome, repurchase, durian], lines, channel="pos", store=None, at=NOW)
    assert (best.coupon_ids, best.discount_fen) == ((1,), 1199)  # 79.90 × 15 % = 11.985 → 11.99

    lines[0] = PricedLine(1, "DUR", "榴莲", 5000)  # 7.50 off now: the 10-off coupon wins
    best = best_combination([durian, welcome, repurchase], lines, channel="pos", store=None, at=NOW)
    assert (best.coupon_ids, best.discount_fen) == ((2,), 1000)

    twin = held(4, programme.coupon_template("repurchase_10"))
    best = best_combination([twin, repurchase], lines, channel="pos", store=None, at=NOW)
    assert best.coupon_ids == (2,)
    assert best_combination([], lines, channel="pos", store=None, at=NOW).discount_fen == 0


def test_the_best_stack_takes_one_coupon_per_group_and_drops_those_that_add_nothing() -> None:
    a10 = held(1, template("a10", kind="no_threshold", amount="10", stackable=True, stacking_group="a"))
    a20 = held(2, template("a20", kind="no_threshold", amount="20", stackable=True, stacking_group="a"))
    b5 = held(3, template("b5", kind="no_threshold", amount="5", stackable=True, stacking_group="b"))
    c5 = held(4, template("c5", kind="no_threshold", amount="5", stackable=True, stacking_group="c"))

    best = best_combination([a10, a20, b5, c5], priced(10000), channel="pos", store=None, at=NOW)
    assert (best.coupon_ids, best.discount_fen) == ((2, 3, 4), 3000)

    best = best_combination([a10, a20, b5, c5], priced(2300), channel="pos", store=None, at=NOW)
    assert (best.coupon_ids, best.discount_fen) == ((2, 3), 2300)


# --- Properties ----------------------------------------------------------------------------------

amounts = st.lists(st.integers(0, 100_000), min_size=1, max_size=6)


@st.composite
def coupon_sets(draw: st.DrawFn) -> list:
    """Up to five coupons of random kinds, scopes and stacking groups."""
    count = draw(st.integers(0, 5))
    coupons = []
    for coupon_id in range(1, count + 1):
        kind = draw(st.sampled_from(["fixed_amount", "percentage", "no_threshold"]))
        fields: dict[str, object] = {
            "stackable": draw(st.booleans()),
            "scope": {"categories": draw(st.sampled_from([[], ["a"], ["b"]]))},
        }
        if fields["stackable"]:
            fields["stacking_group"] = draw(st.sampled_from([None, "g1", "g2"]))
        if kind == "percentage":
            fields["percent_off"] = draw(st.integers(1, 99))
            if draw(st.booleans()):
                fields["max_discount"] = str(draw(st.integers(1, 500)))
        else:
            amount = draw(st.integers(1, 300))
            fields["amount"] = str(amount)
            if kind == "fixed_amount":
                fields["min_spend"] = str(amount + draw(st.integers(0, 300)))
        coupons.append(held(coupon_id, template(f"t{draw(st.integers(0, 3))}", kind=kind, **fields)))
    return coupons


@given(amounts, coupon_sets(), st.randoms(use_true_random=False))
def test_the_best_combination_never_depends_on_the_order_and_never_exceeds_the_goods(
    line_amounts: list[int], coupons: list, random: object
) -> None:
    lines = [PricedLine(n, f"S{n}", "ab"[n % 2], a) for n, a in enumerate(line_amounts, start=1)]
    shuffled = list(coupons)
    random.shuffle(shuffled)  # type: ignore[attr-defined]

    best = best_combination(coupons, lines, channel="pos", store=None, at=NOW)

    assert best == best_combination(shuffled, lines, channel="pos", store=None, at=NOW)
    assert 0 <= best.discount_fen <= sum(line_amounts)
    assert all(left >= 0 for _, left in best.remaining)
    for applied in best.applied:
        assert sum(share for _, share in applied.lines) == applied.discount_fen
    assert sum(left for _, left in best.remaining) == sum(line_amounts) - best.discount_fen
    assert stacking_rejection_reason([c for c in coupons if c.coupon_id in best.coupon_ids]) is None


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=10))
def test_apportion_adds_up_and_never_gives_a_part_more_than_its_weight(
    total: int, weights: list[int]
) -> None:
    total = min(total, sum(weights))
    parts = apportion(total, weights)

    assert sum(parts) == (total if sum(weights) else 0)
    assert all(0 <= part <= weight for part, weight in zip(parts, weights, strict=True))


def test_a_coupon_outside_its_window_is_never_chosen() -> None:
    later = held(1, template(kind="no_threshold"), valid_from=NOW + timedelta(hours=1))
    over = held(2, template(kind="no_threshold"), valid_until=datetime(2026, 3, 10, 2, 0, tzinfo=UTC))

    best = best_combination([later, over], priced(10000), channel="pos", store=None, at=NOW)
    assert best.coupon_ids == ()
