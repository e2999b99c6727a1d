"""SMS cost: GSM-7 fits 160 septets in one SMS and 153 per part; UCS-2 fits 70 and 67."""

from __future__ import annotations

import pytest

from engine.delivery.sms_segments import SmsSegments, sms_segments


@pytest.mark.parametrize("text,segments", [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("a" * 459, 3), ("a" * 460, 4),
])
def test_gsm7_text_fits_160_in_one_sms_and_153_per_part(text: str, segments: int) -> None:
    """The exact boundaries: 160/161 and the multiples of 153."""
    assert sms_segments(text) == SmsSegments("GSM-7", segments, characters=len(text), units=len(text))


@pytest.mark.parametrize("text,segments", [("я" * 70, 1), ("я" * 71, 2), ("я" * 134, 2), ("я" * 135, 3)])
def test_cyrillic_is_ucs2_with_70_in_one_sms_and_67_per_part(text: str, segments: int) -> None:
    """Привет-style text goes as UCS-2: boundaries 70/71 and multiples of 67."""
    result = sms_segments(text)
    assert (result.encoding, result.segments) == ("UCS-2", segments)


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2() -> None:
    """159 Latin letters plus one 'ç' (not in GSM 03.38) is UCS-2: 160 units, three segments."""
    result = sms_segments("a" * 159 + "ç")
    assert (result.encoding, result.segments, result.units) == ("UCS-2", 3, 160)


def test_extension_characters_cost_two_septets() -> None:
    """'€' and '{' are GSM-7 but take an escape: 80 '€' fill one SMS, 81 need two."""
    assert sms_segments("€" * 80) == SmsSegments("GSM-7", 1, characters=80, units=160)
    assert sms_segments("€" * 81).segments == 2
    assert sms_segments("{}[]~|^\\").units == 16


def test_an_escape_pair_is_not_split_across_parts() -> None:
    """152 letters then '€': the pair cannot start at septet 153, so it moves to part two."""
    result = sms_segments("a" * 152 + "€" + "a" * 152)
    assert (result.units, result.segments) == (306, 3)  # 306 septets would fit two parts if the pair could split


def test_an_emoji_is_two_utf16_units_and_is_not_split() -> None:
    """'😀' is a surrogate pair: 35 fit one SMS (70 units), 36 need two; 33 per part (66 of 67 units)."""
    assert sms_segments("😀" * 35) == SmsSegments("UCS-2", 1, characters=35, units=70)
    assert sms_segments("😀" * 36).segments == 2
    assert sms_segments("😀" * 67).segments == 3  # 134 units would be two parts of 67 if pairs could split


def test_gsm7_letters_with_accents_stay_gsm7() -> None:
    """'é', 'ü', 'Ñ', 'Å' and Greek capitals are in GSM 03.38 (but 'ú' is not)."""
    assert sms_segments("Café Müller, Ñoño, Åse, ΔΦΓ").encoding == "GSM-7"
    assert sms_segments("Ñandú").encoding == "UCS-2"


def test_an_empty_text_costs_nothing() -> None:
    """No text, no segment."""
    assert sms_segments("").segments == 0


def test_the_receipt_meta_names_segments_and_encoding() -> None:
    """Adapters store {'segments', 'encoding'} with each SMS."""
    assert sms_segments("Hi").as_meta() == {"segments": 1, "encoding": "GSM-7"}
