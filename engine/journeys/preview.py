"""What a marketer sees before publishing: the diff of the draft against the live version (or of
any two versions, or draft revisions), and how many runs are still in flight on each version,
step by step ("312 finish on v3"): a run finishes on the version it entered, whatever is
published after it.

The counts are one grouped statement over the journey's versions, which reaches the runs by
the (journey_version_id, …) index, scoped to the workspace like every query.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import DefinitionError, NotFound
from engine.journeys.diff import diff_definitions
from engine.journeys.revisions import revision_row
from engine.journeys.versions import get_journey
from engine.store.models import LIVE_RUN_STATUSES, Journey, JourneyVersion, Run

_REF = re.compile(r"^(?:(draft|live)|v?([1-9][0-9]{0,8})|r([1-9][0-9]{0,8}))$")
REF_HELP = "draft, live, a version number (3 or v3) or a draft revision (r12)"
NOT_STARTED = "(none)"  # runs enrolled whose first step has not been taken yet, as in engine/journeys/stats.py


def diff_refs(session: Session, workspace_id: str, journey_id: int, *, old: str = "live", new: str = "draft"
              ) -> dict[str, Any]:
    """The diff between two of the journey's definitions, each named as REF_HELP says; `from` and `to`
    say which version or revision each was. A journey never published has an empty live side."""
    journey = get_journey(session, workspace_id, journey_id)
    bad = [{"field": field, "message": f"expected {REF_HELP}"} for field, ref in (("from", old), ("to", new))
           if not _REF.match(ref)]
    if bad:
        raise DefinitionError(bad)
    (before, old_side), (after, new_side) = _side(session, journey, old), _side(session, journey, new)
    return {"from": old_side, "to": new_side} | diff_definitions(before, after)


def _side(session: Session, journey: Journey, ref: str) -> tuple[Any, dict[str, Any]]:
    """A definition named by `ref`, and what it is: {"ref", "version", "revision"}."""
    match = _REF.match(ref)
    assert match is not None
    named, version_number, revision_number = match.groups()
    if named == "draft":
        return journey.draft, {"ref": "draft", "version": None, "revision": journey.draft_revision}
    if revision_number is not None:
        row = revision_row(session, journey, int(revision_number))
        if row is None:
            raise NotFound(f"journey {journey.id}'s draft has no revision {revision_number}")
        return row.definition, {"ref": ref, "version": None, "revision": row.revision}
    query = select(JourneyVersion).where(JourneyVersion.workspace_id == journey.workspace_id,
                                         JourneyVersion.journey_id == journey.id)
    if named == "live":
        if journey.live_version_id is None:
            return None, {"ref": "live", "version": None, "revision": None}
        version = session.scalar(query.where(JourneyVersion.id == journey.live_version_id))
    else:
        version = session.scalar(query.where(JourneyVersion.version == int(version_number)))
    if version is None:
        raise NotFound(f"journey {journey.id} has no version {version_number}")
    return version.definition, {"ref": ref, "version": version.version, "revision": version.draft_revision}


def runs_in_flight(session: Session, workspace_id: str, journey_id: int) -> dict[str, Any]:
    """Runs still active or waiting, per version (oldest first) and per step: each will finish on that
    version. `live` marks the version new contacts enter now (which becomes an older one on publishing)."""
    journey = get_journey(session, workspace_id, journey_id)
    rows = session.execute(
        select(JourneyVersion.id, JourneyVersion.version, Run.step_id, func.count())
        .join(Run, Run.journey_version_id == JourneyVersion.id)
        .where(JourneyVersion.workspace_id == workspace_id, JourneyVersion.journey_id == journey.id,
               Run.workspace_id == workspace_id, Run.status.in_(LIVE_RUN_STATUSES))
        .group_by(JourneyVersion.id, JourneyVersion.version, Run.step_id)
        .order_by(JourneyVersion.version, Run.step_id)
    )
    versions: dict[int, dict[str, Any]] = {}
    for version_id, number, step_id, count in rows:
        entry = versions.setdefault(number, {"version": number, "live": version_id == journey.live_version_id,
                                             "runs": 0, "steps": {}})
        entry["runs"] += count
        entry["steps"][step_id or NOT_STARTED] = count
    live = session.scalar(select(JourneyVersion.version).where(
        JourneyVersion.workspace_id == workspace_id, JourneyVersion.id == journey.live_version_id)
    ) if journey.live_version_id is not None else None
    return {"journey_id": journey.id, "live_version": live, "runs": sum(v["runs"] for v in versions.values()),
            "versions": list(versions.values())}
