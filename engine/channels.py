"""The channels Rapport sends on: the one list every other module reads.

`MESSENGERS` are the chat apps, where a contact is reached by a chat id the messenger
gave us (after /start or a deep link) rather than by an address they typed.
"""

from __future__ import annotations

from typing import Literal

Channel = Literal["email", "sms", "telegram", "whatsapp", "viber"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "telegram", "whatsapp", "viber")
MESSENGERS: tuple[Channel, ...] = ("telegram", "whatsapp", "viber")
