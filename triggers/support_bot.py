"""Support bot: answer "status" with the last order's status, hand anything else to the shop.

Starts on `message_received`: an SMS reply or a Telegram, WhatsApp or Viber message
(engine/tracking/inbound.py records them), keyed by the provider's message id, so every
message gets one answer however often the provider repeats its webhook. Commands are
not questions and start nothing: STOP/START keywords and /start, /stop (the event's
`command` property is set for those).
- A message that is just "status" or "статус" (`keywords`; compared with the event's
  `keyword` property: trimmed, case-folded, a final ?!. dropped, so " Status? " counts)
  is answered at once, on the channel it came in on (send channel "reply"), with the
  template `order_status_reply`: the contact's latest order and its status
  (`last_order` in the render context), or a note that there is none. The answer is
  transactional: the customer asked for it, so it needs no marketing consent, but it
  never goes to a suppressed address.
- Anything else is posted to the shop's support webhook (`support_url`), signed like
  Rapport's own API, with the contact and the event (text, channel, sender), so a
  person can answer. Without a `support_url` the run ends, and the message stays on
  the contact's timeline.
Stops after that one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NAME = "Support bot"
TEMPLATE = "order_status_reply"
DEFAULT_KEYWORDS = ("status", "статус")


def recipe(*, support_url: str | None = None, keywords: Sequence[str] = DEFAULT_KEYWORDS) -> dict[str, Any]:
    words = sorted({" ".join(word.split()).casefold() for word in keywords} - {""})
    if not words:
        raise ValueError("keywords must name at least one word that asks for the order status")
    if support_url is not None and not support_url.startswith(("https://", "http://")):
        raise ValueError("support_url must be an http(s) URL")
    other: list[dict[str, Any]]
    if support_url:
        other = [{"type": "webhook", "id": "hand-to-support", "url": support_url,
                  "payload": {"reason": "customer_message"}}]
    else:
        other = [{"type": "exit", "id": "no-support-webhook", "reason": "not a status question; no support webhook"}]
    return {
        "trigger": {"event": "message_received", "key": "provider_message_id",
                    "filter": {"property": "command", "op": "not_exists"}},
        "steps": [{
            "type": "condition", "id": "asks-for-status",
            "condition": {"property": "keyword", "op": "in", "value": words},
            "yes": [{"type": "send", "id": "status-reply", "channel": "reply", "template": TEMPLATE,
                     "transactional": True}],
            "no": other,
        }],
    }
