"""Time, injectable. Decisions take `now`; only the edges ask a clock for it.

A clock is any `Callable[[], datetime]`: this one in production, a hand-moved one in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
