"""The pure OneID rules, by hand-worked cases and by properties over random states."""

from hypothesis import given
from hypothesis import strategies as st

from memberops.identity.identifiers import IdentifierKey, IdentifierKind
from memberops.identity.rules import MergePolicy, PlannedMerge, attribution_key, plan_record

POLICY = MergePolicy(merge_kinds=frozenset({"phone", "unionid", "member_no"}))
PHONE = IdentifierKey(IdentifierKind.PHONE, "", "+8613800138000")
PHONE_2 = IdentifierKey(IdentifierKind.PHONE, "", "+8613900139000")
UNION = IdentifierKey(IdentifierKind.UNIONID, "", "oU1")
OPENID = IdentifierKey(IdentifierKind.OPENID, "mini_program", "oX1")
TMALL = IdentifierKey(IdentifierKind.PLATFORM_USER_ID, "tmall", "t1")


def never(_a: int, _b: int = 0) -> bool:
    return False


def plan(keys, owners, strong=(), separated=(), policy=POLICY, held=None):  # type: ignore[no-untyped-def]
    """Plan with persons in ``strong`` holding a phone, or with the kinds in ``held``."""
    pairs = {frozenset(pair) for pair in separated}

    def kinds(person: int) -> frozenset[tuple[str, str]]:
        if held is not None:
            return frozenset(held.get(person, ()))
        return frozenset({("phone", "")}) if person in strong else frozenset()

    return plan_record(keys, owners, kinds, lambda a, b: frozenset((a, b)) in pairs, policy)


def test_a_record_nobody_knows_makes_a_new_person() -> None:
    result = plan([PHONE, OPENID], {})
    assert result.person is None
    assert result.attach == (PHONE, OPENID)
    assert result.merges == ()


def test_known_identifier_attaches_the_new_ones() -> None:
    result = plan([PHONE, OPENID], {PHONE: 7}, strong={7})
    assert result.person == 7
    assert result.attach == (OPENID,)


def test_two_persons_sharing_a_merging_identifier_merge_into_the_oldest() -> None:
    result = plan([PHONE, UNION], {PHONE: 9, UNION: 4}, strong={9, 4})
    assert result.person == 4
    assert result.merges == (PlannedMerge(9, "phone"),)


def test_an_anonymous_person_known_by_openid_is_absorbed() -> None:
    result = plan([PHONE, OPENID], {PHONE: 3, OPENID: 8}, strong={3})
    assert result.person == 3
    assert result.merges == (PlannedMerge(8, "openid"),)


def test_a_weak_link_never_merges_a_person_with_a_phone_of_its_own() -> None:
    result = plan([PHONE, OPENID], {PHONE: 3, OPENID: 8}, strong={3, 8})
    assert result.person == 3
    assert result.merges == ()
    assert result.conflicts == (OPENID,)


def test_weak_links_alone_choose_the_oldest_known_person() -> None:
    result = plan([OPENID, TMALL], {OPENID: 5, TMALL: 2}, strong={5, 2})
    assert result.person == 2
    assert result.merges == ()
    assert result.conflicts == (OPENID,)


MP = ("openid", "mini_program")
OA = ("openid", "official_account")


def test_a_compatible_known_person_joins_on_a_weak_link() -> None:
    # the openid's person registered with a phone; the unionid's person followed the official account
    held = {3: {("phone", ""), MP}, 5: {("unionid", ""), OA}}
    result = plan([OPENID, UNION], {OPENID: 3, UNION: 5}, held=held)
    assert result.person == 3
    assert result.merges == (PlannedMerge(5, "unionid"),)


def test_a_known_person_with_a_clashing_slot_does_not_join() -> None:
    # a Tmall account shared by two people who each have a phone
    held = {3: {("phone", ""), ("platform_user_id", "tmall")}, 5: {("phone", "")}}
    result = plan([TMALL, PHONE_2], {TMALL: 3, PHONE_2: 5}, held=held)
    assert result.person == 5
    assert result.merges == ()
    assert result.conflicts == (TMALL,)
    # the record's own new identifiers count as the other side too
    held = {3: {("phone", ""), MP}}
    result = plan([OPENID, PHONE_2], {OPENID: 3}, held=held)
    assert result.person == 3
    assert result.attach == (PHONE_2,)


def test_compatible_merging_can_be_switched_off() -> None:
    policy = MergePolicy(merge_kinds=POLICY.merge_kinds, merge_compatible=False)
    held = {3: {("phone", ""), MP}, 5: {("unionid", ""), OA}}
    result = plan([OPENID, UNION], {OPENID: 3, UNION: 5}, held=held, policy=policy)
    assert result.merges == ()


def test_absorbing_anonymous_persons_can_be_switched_off() -> None:
    policy = MergePolicy(merge_kinds=POLICY.merge_kinds, absorb_anonymous=False)
    result = plan([PHONE, OPENID], {PHONE: 3, OPENID: 8}, strong={3}, policy=policy)
    assert result.merges == ()
    assert result.conflicts == (OPENID,)


def test_separated_persons_are_never_merged() -> None:
    result = plan([PHONE, UNION], {PHONE: 1, UNION: 2}, strong={1, 2}, separated=[(1, 2)])
    assert result.person == 1
    assert result.merges == ()
    assert result.conflicts == (UNION,)


def test_stored_persons_survive_over_ones_planned_in_the_batch() -> None:
    result = plan([PHONE, UNION], {PHONE: -1, UNION: 12}, strong={-1, 12})
    assert result.person == 12
    assert result.merges == (PlannedMerge(-1, "phone"),)


def test_records_are_attributed_by_their_strongest_identifier() -> None:
    member_no = IdentifierKey(IdentifierKind.MEMBER_NO, "", "M1")
    assert attribution_key([OPENID, PHONE, member_no]) == member_no
    assert attribution_key([TMALL, OPENID]) == OPENID


KEYS = [PHONE, PHONE_2, UNION, OPENID, TMALL]


@given(
    record=st.lists(st.sampled_from(KEYS), min_size=1, max_size=5, unique=True),
    owners=st.dictionaries(st.sampled_from(KEYS), st.integers(min_value=1, max_value=6)),
    strong=st.sets(st.integers(min_value=1, max_value=6)),
    separated=st.sets(st.tuples(st.integers(1, 6), st.integers(1, 6))),
)
def test_plans_are_consistent(record, owners, strong, separated) -> None:  # type: ignore[no-untyped-def]
    result = plan(record, owners, strong=strong, separated=separated)
    reached = {owners[key] for key in record if key in owners}
    absorbed = [merge.absorbed for merge in result.merges]
    # every identifier of the record is attached, owned by the group, or a named conflict
    group = {result.person, *absorbed}
    for key in record:
        assert key in result.attach or owners[key] in group or key in result.conflicts
    assert set(result.attach) == {key for key in record if key not in owners}
    if not reached:
        assert result.person is None and not absorbed
        return
    assert result.person in reached
    strongly_reached = {owners[key] for key in record if key in owners and key.kind in POLICY.merge_kinds}
    if strongly_reached:
        assert result.person == min(group)
    assert len(set(absorbed)) == len(absorbed)
    pairs = {frozenset(pair) for pair in separated}
    assert not any(frozenset((a, b)) in pairs for a in group for b in group if a != b)
    # a person with a phone joins through a weak link only when no other phone is on the other side
    strongly = {owners[key] for key in record if key in owners and key.kind in POLICY.merge_kinds}
    anchor = None if strongly else result.person
    for person in group:
        if person in strong and person not in strongly and person != anchor:
            assert not any(other in strong for other in group if other != person)
            assert not any(key.kind == "phone" and owners.get(key) != person for key in record)


def test_a_known_person_is_not_absorbed_by_an_older_anonymous_one() -> None:
    result = plan([OPENID, TMALL], {OPENID: 1, TMALL: 2}, strong={2})
    assert result.person == 2
    assert result.merges == (PlannedMerge(1, "openid"),)
