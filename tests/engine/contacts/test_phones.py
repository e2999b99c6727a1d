"""Phone numbers are stored and sent in one form, E.164; what is not a number says why."""

from __future__ import annotations

import pytest

from engine.contacts.phones import is_phone_number, normalize_phone


@pytest.mark.parametrize("raw,expected", [
    ("+32 2 555 01 23", "+3225550123"),  # Belgium, as WooCommerce billing forms send it
    ("+1 (415) 555-2671", "+14155552671"),
    ("+49 151 12345678", "+4915112345678"),
    ("0049 151 12345678", "+4915112345678"),  # the international 00 prefix
    ("+7 916 123-45-67", "+79161234567"),
    ("  +14155552671 ", "+14155552671"),
])
def test_international_numbers_are_normalized_to_e164(raw: str, expected: str) -> None:
    """Spaces, dashes, brackets and a 00 prefix are dropped: +<country><number>."""
    assert normalize_phone(raw) == expected


def test_a_national_number_needs_a_default_region() -> None:
    """'030 1234567' is Berlin only when the region DE is given; without it the error asks for a country code."""
    assert normalize_phone("030 1234567", "de") == "+49301234567"
    with pytest.raises(ValueError, match="needs a known country code"):
        normalize_phone("030 1234567")


@pytest.mark.parametrize("raw", ["call after 6pm", "", "+1 555", "+999 1234567", "+49 1" + "2" * 20, "+1" * 40])
def test_what_is_not_a_phone_number_is_refused_with_a_clear_message(raw: str) -> None:
    """Words, too few digits, an unknown country code, too long: ValueError starting 'not a phone number'."""
    with pytest.raises(ValueError, match="^not a phone number"):
        normalize_phone(raw)
    assert not is_phone_number(raw)


def test_a_number_of_the_wrong_length_for_its_country_is_refused() -> None:
    """Eleven digits after +1 is refused; a number merely outside today's plan is kept."""
    with pytest.raises(ValueError, match="wrong length for its country"):
        normalize_phone("+1 415 555 01234")
    assert normalize_phone("+44 7700 900123") == "+447700900123"  # the provider will say if it is dead
