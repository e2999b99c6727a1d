"""RQ job entry points: each takes a list of ids, opens a session, calls one service.

Every job can run twice with the same ids and nothing is done twice (see the services).
A job that raises is split and its halves run again at once, so that one bad id never
holds back the others; the id that fails alone becomes a dead letter after a few
failures (engine/batches/dead_letters.py). A Redis outage is not an id's fault.

RQ calls the functions below by their path (`workers.jobs.<name>`, stored in Redis with
the ids, so neither changes); each finds the runtime of the worker performing it once
(workers/worker.py) and hands it to `Jobs`, which does the work with it. Tests give
`Jobs` their own runtime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from engine.batches import dead_letters
from engine.contacts import metrics
from engine.delivery import dispatch
from engine.journeys import runs
from engine.store.db import JobName
from engine.tracking import attribution
from workers.runtime import Runtime, job_runtime

log = logging.getLogger(__name__)

dead_letters.treat_as_outage(RedisError)


def evaluate_events(event_ids: list[int]) -> None:
    Jobs(job_runtime()).evaluate_events(event_ids)


def advance_runs(run_ids: list[int]) -> None:
    Jobs(job_runtime()).advance_runs(run_ids)


def dispatch_messages(message_ids: list[int]) -> None:
    Jobs(job_runtime()).dispatch_messages(message_ids)


@dataclass(frozen=True)
class Jobs:
    """The jobs' work, done with the runtime given (settings, sessions, senders, clock)."""

    runtime: Runtime

    def evaluate_events(self, event_ids: list[int]) -> None:
        rt = self.runtime
        dead_letters.run_isolating(rt.sessions, JobName.EVALUATE_EVENTS, event_ids, self._evaluate, clock=rt.clock)

    def _evaluate(self, event_ids: list[int]) -> None:
        """Count the events into contact metrics, then into journeys, in one transaction.

        Only the ids metrics claimed go on to the journeys, which stamp them evaluated:
        so each event is counted exactly once (engine/contacts/metrics.py says why).
        """
        rt = self.runtime
        now = rt.clock()
        with rt.sessions.begin() as session:
            claimed = metrics.apply_events(session, event_ids, now=now)
            attribution.attribute_orders(session, claimed, now=now)  # claimed only: each order once
            runs.evaluate_events(session, claimed, templates=rt.templates, now=now)

    def advance_runs(self, run_ids: list[int]) -> None:
        rt = self.runtime
        dead_letters.run_isolating(rt.sessions, JobName.ADVANCE_RUNS, run_ids, self._advance, clock=rt.clock)

    def _advance(self, run_ids: list[int]) -> None:
        rt = self.runtime
        with rt.sessions.begin() as session:
            runs.advance_runs(session, run_ids, templates=rt.templates, now=rt.clock())

    def dispatch_messages(self, message_ids: list[int]) -> None:
        rt = self.runtime
        dead_letters.run_isolating(rt.sessions, JobName.DISPATCH_MESSAGES, message_ids, self._dispatch, clock=rt.clock)

    def _dispatch(self, message_ids: list[int]) -> None:
        """A message whose send raises unexpectedly is charged inside (dispatch); this catches the rest."""
        rt = self.runtime
        done = dispatch.dispatch_messages(rt.sessions, message_ids, channels=rt.channels, templates=rt.templates,
                                          clock=rt.clock, pause_after=rt.settings.channel_pause_after,
                                          lanes=rt.settings.dispatch_lanes, stopping=rt.stopping.is_set)
        log.info("dispatched %d ids: %s", len(message_ids), done)
