import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memberops.identity.identifiers import (
    IdentifierKey,
    IdentifierKind,
    InvalidIdentifier,
    mask,
    normalize,
    normalize_phone,
)
from memberops.identity.lookup import parse_person_reference


@pytest.mark.parametrize(
    "raw",
    [
        "+86 138 0013 8000",
        "138-0013-8000",
        "13800138000",
        "86 13800138000",
        "0086 138 0013 8000",
        "(138) 0013 8000",
        "１３８００１３８０００",  # full-width digits, as Chinese input methods type them
    ],
)
def test_every_common_way_of_writing_a_mobile_is_one_phone(raw: str) -> None:
    assert normalize_phone(raw) == "+8613800138000"


@pytest.mark.parametrize("raw", ["1380013800", "12345678901", "abc", "+86 138 0013 80001", "", "¹³⁸⁰⁰¹³⁸⁰⁰⁰"])
def test_invalid_phones_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize(IdentifierKind.PHONE, raw)


def test_foreign_numbers_keep_their_country() -> None:
    assert normalize_phone("+1 650 253 0000") == "+16502530000"


def test_openids_belong_to_their_app() -> None:
    mini = normalize(IdentifierKind.OPENID, "oX1", "mini_program")
    official = normalize(IdentifierKind.OPENID, "oX1", "official_account")
    assert mini != official
    with pytest.raises(InvalidIdentifier, match="needs the app or platform"):
        normalize(IdentifierKind.OPENID, "oX1")


def test_emails_are_lower_cased_and_checked() -> None:
    assert normalize(IdentifierKind.EMAIL, " Li.Lei@Example.COM ").value == "li.lei@example.com"
    with pytest.raises(InvalidIdentifier):
        normalize(IdentifierKind.EMAIL, "not-an-email")


def test_ids_with_odd_characters_are_rejected() -> None:
    with pytest.raises(InvalidIdentifier, match="characters"):
        normalize(IdentifierKind.UNIONID, "o U 1")


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        (IdentifierKind.PHONE, "+8613800138000", "138****8000"),
        (IdentifierKind.EMAIL, "lilei@example.com", "l***@example.com"),
        (IdentifierKind.UNIONID, "oU_abcdef123", "oU_***123"),
        (IdentifierKind.MEMBER_NO, "M001", "M***"),
    ],
)
def test_masks(kind: IdentifierKind, value: str, shown: str) -> None:
    assert mask(kind, value) == shown


def test_person_references() -> None:
    assert parse_person_reference("person:42").person_id == 42
    assert parse_person_reference("openid:mini_program:oX1").candidates == (
        IdentifierKey(IdentifierKind.OPENID, "mini_program", "oX1"),
    )
    bare = parse_person_reference("13800138000").candidates
    assert bare[0] == IdentifierKey(IdentifierKind.PHONE, "", "+8613800138000")
    assert IdentifierKey(IdentifierKind.MEMBER_NO, "", "13800138000") in bare
    with pytest.raises(InvalidIdentifier):
        parse_person_reference("person:abc")
    with pytest.raises(InvalidIdentifier):
        parse_person_reference("openid:oX1")


def test_masks_fit_their_column_and_huge_person_ids_are_invalid() -> None:
    assert len(mask(IdentifierKind.EMAIL, "a@" + "d" * 80 + ".com")) == 64
    with pytest.raises(InvalidIdentifier, match="not a valid id"):
        parse_person_reference("person:" + "9" * 30)


@given(st.text(alphabet="0123456789", min_size=9, max_size=12))
def test_the_fast_mobile_path_agrees_with_libphonenumber(digits: str) -> None:
    try:
        number = phonenumbers.parse(digits, "CN")
        expected = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    try:
        ours: str | None = normalize_phone(digits)
    except InvalidIdentifier:
        ours = None
    assert ours == expected


@pytest.mark.parametrize("text", ["person:¹", "person:١٢", "person:４２"])
def test_a_person_id_is_written_in_ascii_digits(text: str) -> None:
    with pytest.raises(InvalidIdentifier, match="is not a valid id"):
        parse_person_reference(text)
