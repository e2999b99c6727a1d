"""The channels Rapport sends on: the one list every other module reads.

`MESSENGERS` are the chat apps, where a contact is reached by a chat id the messenger
gave us (after /start or a deep link) rather than by an address they typed.
"""

from __future__ import annotations

from typing import Literal

Channel = Literal["email", "sms", "telegram", "whatsapp", "viber"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "telegram", "whatsapp", "viber")
MESSENGERS: tuple[Channel, ...] = ("telegram", "whatsapp", "viber")
# Short texts through a provider's API (SMS and the messengers): what is not email. They have
# text templates, quiet hours by default, and providers that post replies and receipts back.
TEXT_CHANNELS: tuple[Channel, ...] = tuple(channel for channel in CHANNELS if channel != "email")
