"""RQ job entry points: each takes a list of ids, opens a session, calls one service.

Every job can run twice with the same ids and nothing is done twice (see the services).
A job that raises is split and its halves run again at once, so that one bad id never
holds back the others; the id that fails alone becomes a dead letter after a few
failures (engine/batches/dead_letters.py). A Redis outage is not an id's fault.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from engine.batches import dead_letters
from engine.contacts import metrics
from engine.delivery import dispatch
from engine.journeys import runs
from engine.tracking import attribution
from workers.runtime import Runtime, current

dead_letters.treat_as_outage(RedisError)


def evaluate_events(event_ids: list[int]) -> None:
    rt = current()
    dead_letters.run_isolating(rt.sessions, dead_letters.EVALUATE, event_ids, lambda ids: _evaluate(rt, ids),
                               clock=rt.clock)


def _evaluate(rt: Runtime, event_ids: list[int]) -> None:
    """Count the events into contact metrics, then into journeys, in one transaction.

    Only the ids metrics claimed go on to the journeys, which stamp them evaluated:
    so each event is counted exactly once (engine/contacts/metrics.py says why).
    """
    now = rt.clock()
    with rt.sessions.begin() as session:
        claimed = metrics.apply_events(session, event_ids, now=now)
        attribution.attribute_orders(session, claimed, now=now)  # claimed only: each order once
        runs.evaluate_events(session, claimed, templates=rt.templates, now=now)


def advance_runs(run_ids: list[int]) -> None:
    rt = current()
    dead_letters.run_isolating(rt.sessions, dead_letters.ADVANCE, run_ids, lambda ids: _advance(rt, ids),
                               clock=rt.clock)


def _advance(rt: Runtime, run_ids: list[int]) -> None:
    with rt.sessions.begin() as session:
        runs.advance_runs(session, run_ids, templates=rt.templates, now=rt.clock())


def dispatch_messages(message_ids: list[int]) -> None:
    rt = current()
    dead_letters.run_isolating(rt.sessions, dead_letters.DISPATCH, message_ids, lambda ids: _dispatch(rt, ids),
                               clock=rt.clock)


def _dispatch(rt: Runtime, message_ids: list[int]) -> None:
    """A message whose send raises unexpectedly is charged inside (dispatch); this catches the rest."""
    dispatch.dispatch_messages(rt.sessions, message_ids, channels=rt.channels, templates=rt.templates,
                               clock=rt.clock, pause_after=rt.settings.channel_pause_after,
                               lanes=rt.settings.dispatch_lanes, stopping=rt.stopping.is_set)
