"""How many SMS a text costs: GSM-7 vs UCS-2 encoding and the segment count (3GPP TS 23.038).

A text that fits the GSM 03.38 alphabet goes as 7-bit septets: 160 in one SMS, 153 per
part once it is split (the concatenation header takes 7). One character outside it
(an emoji, Cyrillic, "ç"...) switches the whole text to UCS-2: 70 UTF-16 units in one
SMS, 67 per part. Characters of the extension table ("€", "{", "[", "~"...) cost two
septets (an escape plus the character), and neither an escape pair nor a UTF-16
surrogate pair may be split across parts, so parts are packed greedily unit by unit.
Providers bill per segment: this is the cost shown and stored with each message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SmsEncoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 default alphabet, in code order (0x1B, the escape, is left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The default extension table: each is sent as ESC + character, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_LIMIT: dict[SmsEncoding, int] = {"GSM-7": 160, "UCS-2": 70}
PART_LIMIT: dict[SmsEncoding, int] = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SmsSegments:
    encoding: SmsEncoding
    segments: int  # 0 for an empty text
    characters: int  # as a person counts them (code points)
    units: int = 0  # what the encoding counts: septets (GSM-7) or UTF-16 code units (UCS-2)

    def as_meta(self) -> dict[str, object]:
        """The fields adapters put into Receipt.meta."""
        return {"segments": self.segments, "encoding": self.encoding}


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _units(text: str, encoding: SmsEncoding) -> list[int]:
    """The cost of each character in its encoding's units; a character's units stay together."""
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # astral characters are surrogate pairs


def _count_parts(units: list[int], limit: int) -> int:
    parts, used = 1, 0
    for cost in units:
        if used + cost > limit:
            parts, used = parts + 1, 0
        used += cost
    return parts


def sms_segments(text: str) -> SmsSegments:
    encoding: SmsEncoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    units = _units(text, encoding)
    total = sum(units)
    if total == 0:
        segments = 0
    elif total <= SINGLE_LIMIT[encoding]:
        segments = 1
    else:
        segments = _count_parts(units, PART_LIMIT[encoding])
    return SmsSegments(encoding=encoding, segments=segments, characters=len(text), units=total)
