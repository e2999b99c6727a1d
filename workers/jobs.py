"""RQ job entry points: each takes a list of ids, opens a session, calls one service.

Every job can run twice with the same ids and nothing is done twice (see the services).
"""

from __future__ import annotations

from engine.services import dispatch, runs
from workers.runtime import current


def evaluate_events(event_ids: list[int]) -> None:
    rt = current()
    with rt.sessions.begin() as session:
        runs.evaluate_events(session, event_ids, now=rt.clock())


def advance_runs(run_ids: list[int]) -> None:
    rt = current()
    with rt.sessions.begin() as session:
        runs.advance_runs(session, run_ids, now=rt.clock())


def dispatch_messages(message_ids: list[int]) -> None:
    rt = current()
    dispatch.dispatch_messages(rt.sessions, message_ids, channels=rt.channels, clock=rt.clock)
