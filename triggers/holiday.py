"""Holiday greeting: on listed dates ("12-25" every year, "2026-11-27" once), at a local time.

Keyed by the local date, so each contact is greeted once per holiday.
"""

from __future__ import annotations

from typing import Any

NAME = "Holiday greeting"


def recipe(*, dates: list[str], name: str | None = None, at: str = "10:00") -> dict[str, Any]:
    trigger: dict[str, Any] = {"dates": dates, "at": at}
    if name:
        trigger["name"] = name
    return {"trigger": trigger,
            "steps": [{"type": "send", "id": "greeting", "channel": "email", "template": "holiday_greeting"}]}
