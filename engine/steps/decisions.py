"""What a step can decide. The interpreter matches on these exhaustively."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Proceed:
    """Go on to the next step; `since` is when this step was done, if not just now.

    A wait that fell due at 10:00 but is processed at 10:02 is done as of 10:00, so
    the waits after it are measured from 10:00 and delays do not add up.
    """

    since: datetime | None = None


@dataclass(frozen=True)
class WaitUntil:
    at: datetime


@dataclass(frozen=True)
class Send:
    channel: str
    template: str


@dataclass(frozen=True)
class Exit:
    reason: str


Decision = Proceed | WaitUntil | Send | Exit
