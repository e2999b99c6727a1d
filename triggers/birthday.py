"""Birthday greeting: N days before or on the day, at 10:00 in the contact's time zone.

Starts from the scheduler's date scan over contacts' birthdays, keyed by year: once a
year, however often the scan runs. An optional coupon code is written to the contact
first (attribute `birthday_coupon`), so the email and the shop's checkout agree on it.
"""

from __future__ import annotations

from typing import Any

NAME = "Birthday greeting"


def recipe(*, days_before: int = 0, at: str = "10:00", coupon_code: str | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    if coupon_code:
        steps.append({"type": "update_contact", "id": "set-coupon", "set": {"birthday_coupon": coupon_code}})
    steps.append({"type": "send", "id": "greeting", "channel": "email", "template": "birthday_greeting"})
    return {"trigger": {"date": "birthday", "offset_days": -days_before, "at": at}, "steps": steps}
