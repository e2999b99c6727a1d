"""Send policies: pure functions that return why a message must not go, or None.

A skip is a value: the reason is stored on the message and shown on the timeline.
"""

from __future__ import annotations

from typing import Any


def email_skip_reason(email: str | None, consent: dict[str, Any], *, suppressed: bool) -> str | None:
    if not email:
        return "skipped: contact has no email address"
    state = consent.get("email")
    if state == "opted_out":
        return "skipped: contact opted out of email"
    if state == "pending":
        return "skipped: email consent pending (double opt-in not confirmed)"
    if suppressed:
        return "skipped: email address is suppressed"
    return None
