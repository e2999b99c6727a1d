"""A journey's status after it is published: pause, resume, archive.

A status change reaches into the runs (archiving ends the live ones), so it sits above
both versions (drafts and published definitions, which evaluation reads) and runs (which
read the versions): each of those imports downward only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.journeys.runs import exit_live_runs
from engine.journeys.versions import JourneyStateError, get_journey
from engine.reasons import Reason
from engine.store.models import Journey, JourneyStatus

TRANSITIONS: dict[str, tuple[set[JourneyStatus], JourneyStatus]] = {  # action: (statuses it applies to, its result)
    "pause": ({JourneyStatus.LIVE}, JourneyStatus.PAUSED),
    "resume": ({JourneyStatus.PAUSED}, JourneyStatus.LIVE),
    "archive": ({JourneyStatus.DRAFT, JourneyStatus.LIVE, JourneyStatus.PAUSED}, JourneyStatus.ARCHIVED),
}


def change_status(session: Session, workspace_id: str, journey_id: int, action: str, *, now: datetime) -> Journey:
    """pause (timers hold, nobody enters), resume (due timers fire), archive (live runs exit)."""
    allowed, target = TRANSITIONS[action]
    journey = get_journey(session, workspace_id, journey_id, lock=True)
    if journey.status not in allowed:
        raise JourneyStateError(f"cannot {action} a journey that is {journey.status}")
    if action == "resume" and journey.live_version_id is None:
        raise JourneyStateError("publish the journey first")
    journey.status, journey.updated_at = target.value, now
    if action == "archive":
        exit_live_runs(session, journey.id, "journey archived", now=now, code=Reason.JOURNEY_ARCHIVED)
    return journey
