"""RQ job entry points: each takes a list of ids, opens a session, calls one service.

Every job can run twice with the same ids and nothing is done twice (see the services).
"""

from __future__ import annotations

from engine.services import attribution, dispatch, metrics, runs
from workers.runtime import current


def evaluate_events(event_ids: list[int]) -> None:
    """Count the events into contact metrics, then into journeys, in one transaction.

    Only the ids metrics claimed go on to the journeys, which stamp them evaluated:
    so each event is counted exactly once (engine/services/metrics.py says why).
    """
    rt = current()
    now = rt.clock()
    with rt.sessions.begin() as session:
        claimed = metrics.apply_events(session, event_ids, now=now)
        attribution.attribute_orders(session, claimed, now=now)  # claimed only: each order once
        runs.evaluate_events(session, claimed, now=now)


def advance_runs(run_ids: list[int]) -> None:
    rt = current()
    with rt.sessions.begin() as session:
        runs.advance_runs(session, run_ids, now=rt.clock())


def dispatch_messages(message_ids: list[int]) -> None:
    rt = current()
    dispatch.dispatch_messages(rt.sessions, message_ids, channels=rt.channels, clock=rt.clock,
                               pause_after=rt.settings.channel_pause_after, lanes=rt.settings.dispatch_lanes,
                               stopping=rt.stopping.is_set)
