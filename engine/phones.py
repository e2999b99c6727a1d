"""Phone numbers: one canonical form (E.164) for everything we store and send.

SMS providers and WhatsApp want E.164 (`+14155552671`); shops send whatever their
admins typed (`+32 2 555 01 23`, `(415) 555-2671`). Normalizing on the way in means a
contact has one number, suppressions match it, and STOP replies find the contact.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

# A shop's form may allow long free text; a real number never needs more than this.
MAX_INPUT_LENGTH = 64


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Return `raw` as E.164, or raise ValueError saying why it is not a phone number.

    Without `default_region` (an ISO 3166 code such as "DE") the number must carry its
    country code (`+49…` or `0049…`): guessing a country would text a stranger.
    """
    text = raw.strip()
    if not text:
        raise ValueError("not a phone number: it is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise ValueError(f"not a phone number: longer than {MAX_INPUT_LENGTH} characters")
    if text.startswith("00"):  # the international prefix most of the world dials
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region.upper() if default_region else None)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError(
                f"not a phone number: {raw!r} needs a country code such as +1 or +49"
            ) from None
        raise ValueError(f"not a phone number: {raw!r} ({exc._msg})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a phone number: {raw!r} is not a valid number in its country")
    return str(phonenumbers.format_number(parsed, PhoneNumberFormat.E164))


def is_phone_number(raw: str, default_region: str | None = None) -> bool:
    try:
        normalize_phone(raw, default_region)
    except ValueError:
        return False
    return True
