"""Dispatch: claim each message, render it, hand it to its channel, record what happened.

A batch of ids is read once; messages are claimed in chunks (scheduled -> claimed, under
the job's token and lease), rendered and sent with no transaction open. Each one is marked
`sending` only at the moment its body is handed over (the adapter calls back: after the
SMTP server's 354, right before an HTTP request), in the same commit that records the
previous one as sent (engine/delivery/handover.py). A worker that dies therefore leaves at
most one message per lane in doubt; its other claims, even rendered or mid MAIL/RCPT, go
back to be sent when its lease runs out (seconds), or at once when it stops gracefully
(`stopping`). What is truly in doubt is settled by the workspace's policy
(engine/delivery/in_doubt.py).

A message that may not go now, or whose send fails, gets its outcome from
engine/delivery/outcomes.py. The job answers what became of each message it claimed
(`Dispatched`): the worker logs it, tests read it.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.batches import dead_letters
from engine.contacts.journal import JournalKind, record_message
from engine.delivery import channel_health, routing
from engine.delivery.handover import MESSAGES, Handover, Lease, SentRecord, handover, release_claims
from engine.delivery.outcomes import (
    DispatchBatch,
    DispatchOutcome,
    Recording,
    ended,
    failed_for_good,
    hold_reason,
    in_doubt_after,
    later,
    transient,
    unexpected,
)
from engine.delivery.outgoing import build
from engine.delivery.ports import Channels
from engine.delivery.templates import Templates
from engine.errors import (
    ChannelUnavailable,
    ClaimLost,
    PermanentSendError,
    SendInDoubt,
    TemplateError,
    TransientSendError,
)
from engine.reasons import Reason
from engine.store.models import Contact, Message, MessageStatus, Suppression, Workspace

CHUNK = 50  # messages claimed with one statement; a dead worker's unstarted ones go back after a while
MAX_INLINE_WAIT = 1.0  # a rate-limit wait up to this is slept; longer ones reschedule the message


def _not_stopping() -> bool:
    return False


@dataclass
class Dispatched:
    """What became of each message the job claimed; one it did not win (sent by another worker,
    not due) is not in it."""

    outcomes: dict[int, DispatchOutcome] = field(default_factory=dict)

    def counts(self) -> Counter[DispatchOutcome]:
        return Counter(self.outcomes.values())

    def __str__(self) -> str:
        return ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.counts().items())) or "nothing due"


def dispatch_messages(sessions: sessionmaker[Session], message_ids: list[int], *, channels: Channels,
                      templates: Templates, clock: Callable[[], datetime], pause_after: int = 10, lanes: int = 1,
                      sleep: Callable[[float], None] = time.sleep,
                      stopping: Callable[[], bool] = _not_stopping) -> Dispatched:
    """Send the due ones among `message_ids`. `stopping()` true (a graceful stop): each lane finishes
    the message it is handing over and the job's other claims are released at once."""
    return DispatchJob(sessions, message_ids, channels=channels, templates=templates, clock=clock,
                       pause_after=pause_after, sleep=sleep, stopping=stopping).run(lanes=lanes)


class DispatchJob:
    """One dispatch job: its messages read once, claimed chunk by chunk under its token, then sent.

    `run` does it all; `claim` and `send` are its two halves, for a caller that plays a worker
    stopping between them (one that dies holding claims, or stalls until they are handed on).
    """

    def __init__(self, sessions: sessionmaker[Session], message_ids: list[int], *, channels: Channels,
                 templates: Templates, clock: Callable[[], datetime], token: str | None = None, pause_after: int = 10,
                 sleep: Callable[[float], None] = time.sleep, stopping: Callable[[], bool] = _not_stopping):
        self.sessions, self.channels, self.clock = sessions, channels, clock
        self.pause_after, self.sleep, self.stopping = pause_after, sleep, stopping
        self.token = token or secrets.token_hex(8)  # the job's claims; its lease renews them while it runs
        self.batch = _load(sessions, message_ids, templates, now=clock())
        self.result = Dispatched()

    @property
    def messages(self) -> dict[int, Message]:
        """The due ones among the ids given, by id."""
        return self.batch.messages

    def run(self, *, lanes: int = 1) -> Dispatched:
        ids = sorted(self.messages)
        if not ids:
            return self.result
        claimed: set[int] = set()

        def lane(part: list[int]) -> None:
            for start in range(0, len(part), CHUNK):
                if self.stopping():
                    return
                mine = self.claim(part[start:start + CHUNK])
                claimed.update(m.id for m in mine)
                self.send(mine)

        lanes = max(1, min(lanes, len(ids) // CHUNK))
        with Lease(self.sessions, self.token, self.clock):
            try:
                if lanes == 1:
                    lane(ids)
                else:
                    # Each lane sends on its own provider connection: while one waits for the provider's
                    # answer (most of a send), another renders and records (sockets release the GIL).
                    with ThreadPoolExecutor(lanes, thread_name_prefix="dispatch") as pool:
                        for finished in [pool.submit(lane, ids[n::lanes]) for n in range(lanes)]:
                            finished.result()
            finally:
                # Stopped or failed: what was not handed over goes back.
                release_claims(self.sessions, self.token, now=self.clock())
        for message_id in claimed:
            self.result.outcomes.setdefault(message_id, "released")
        if self.batch.succeeded:
            _record_successes(self.sessions, self.batch, now=self.clock())
        return self.result

    def claim(self, ids: list[int] | None = None) -> list[Message]:
        """Claim these messages (all the due ones by default) in one statement; settle at once those that
        may not go now (the claim makes them ours to change); return the rest, to be sent."""
        chunk = [self.messages[i] for i in (sorted(self.messages) if ids is None else ids)]
        now = self.clock()
        with self.sessions.begin() as session:
            won = set(session.scalars(
                update(MESSAGES).where(MESSAGES.c.id.in_([m.id for m in chunk]),
                                    MESSAGES.c.status == MessageStatus.SCHEDULED.value,
                                    MESSAGES.c.scheduled_at <= now)
                .values(status=MessageStatus.CLAIMED.value, claimed_at=now, claimed_by=self.token)
                .returning(MESSAGES.c.id)))
            mine = []
            for message in chunk:
                if message.id not in won:
                    continue
                hold = hold_reason(session, message, self.batch, self.channels, now=now)
                if hold is None:
                    mine.append(message)
                else:
                    self.result.outcomes[message.id] = hold(session)
        return mine

    def send(self, claimed: list[Message]) -> None:
        """Each message is marked `sending` when the adapter hands its body over, in the same commit
        that records the previous one as sent (engine/delivery/handover.py). A stop request ends the
        chunk between two messages; the rest stay claimed, for `run` to release."""
        with handover(self.sessions) as hand:
            lane = _Lane(hand, self.token, self.clock)
            for message in claimed:
                if self.stopping():
                    break
                lane.begin(message)
                try:
                    outcome = _send(message, self.batch, self.channels, self.clock, on_handover=lane.hand_over,
                                    pause_after=self.pause_after, sleep=self.sleep)
                except Exception as exc:
                    if dead_letters.is_outage(exc):
                        raise
                    outcome = unexpected(message, self.batch, exc, handed_over=lane.handed_over, now=self.clock())
                if isinstance(outcome, SentRecord):
                    lane.done = outcome
                    self.result.outcomes[message.id] = "sent"
                elif outcome is None:
                    self.result.outcomes[message.id] = "lost"
                else:
                    self.result.outcomes[message.id] = lane.record(self.sessions, outcome)
            lane.finish()


def _record_successes(sessions: sessionmaker[Session], batch: DispatchBatch, *, now: datetime) -> None:
    """Reset the failure counts; a channel whose probe went through is closed (its held messages released)."""
    with sessions.begin() as session:
        for workspace_id, channel in sorted(batch.succeeded):
            if channel_health.record_success(session, workspace_id, channel, now=now):
                probe = batch.probes.get((workspace_id, channel))
                if probe is not None:
                    record_message(session, probe, JournalKind.CHANNEL_RESUMED, at=now,
                                   detail=f"{channel} resumed automatically: this probe went through")


class _Lane:
    """One lane's hand-over state: the message sent but not yet recorded (it is recorded with the
    next hand-over, one commit per message), and whether the current one was handed over."""

    def __init__(self, hand: Handover, token: str, clock: Callable[[], datetime]):
        self.hand, self.token, self.clock = hand, token, clock
        self.done: SentRecord | None = None
        self.message: Message | None = None
        self.handed_over = False

    def begin(self, message: Message) -> None:
        self.message, self.handed_over = message, False
        message.attempts += 1  # this attempt's number; the hand-over reads it back from the database

    def hand_over(self) -> None:
        """The adapter's on_handover: the body is about to be written. Raises ClaimLost (the adapter
        then sends nothing) when our claim went stale and was handed to another worker."""
        assert self.message is not None
        attempts = self.hand.step(self.done, self.message.id, token=self.token, now=self.clock())
        self.done = None
        if attempts is None:
            raise ClaimLost(f"message {self.message.id} was handed to another worker")
        self.message.attempts = attempts
        self.handed_over = True

    def record(self, sessions: sessionmaker[Session], outcome: Recording) -> DispatchOutcome:
        """An outcome other than sent, with the sent message still waiting to be recorded (if any)."""
        assert self.message is not None
        with sessions.begin() as session:
            if self.done is not None:
                self.done.record(session)
                self.done = None
            if not self.handed_over:  # it failed before its hand-over, which counts attempts
                session.execute(update(MESSAGES).where(MESSAGES.c.id == self.message.id)
                                .values(attempts=MESSAGES.c.attempts + 1))
            return outcome(session)

    def finish(self) -> None:
        if self.done is not None:
            self.hand.step(self.done, None, token=self.token, now=self.clock())
            self.done = None


def _load(sessions: sessionmaker[Session], message_ids: list[int], templates: Templates, *,
          now: datetime) -> DispatchBatch:
    with sessions() as session:
        messages = {m.id: m for m in session.scalars(select(Message).where(
            Message.id.in_(message_ids), Message.status == MessageStatus.SCHEDULED.value,
            Message.scheduled_at <= now))}
        contact_ids = sorted({m.contact_id for m in messages.values()})
        contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        workspace_ids = sorted({m.workspace_id for m in messages.values()})
        workspaces = {w.id: w for w in session.scalars(select(Workspace).where(Workspace.id.in_(workspace_ids)))}
        paused = {w: routing.paused_channels(session, w) for w in workspace_ids}
        addresses = sorted({m.to_address for m in messages.values() if m.to_address})
        suppressed = {(w, ch, a) for w, ch, a in session.execute(
            select(Suppression.workspace_id, Suppression.channel, Suppression.address).where(
                Suppression.workspace_id.in_(workspace_ids), Suppression.address.in_(addresses)))}
        session.expunge_all()
    return DispatchBatch(messages, contacts, workspaces, templates, paused, suppressed)


def _send(message: Message, batch: DispatchBatch, channels: Channels, clock: Callable[[], datetime], *,
          on_handover: Callable[[], None], pause_after: int,
          sleep: Callable[[float], None]) -> SentRecord | Recording | None:
    """Send with no transaction open; return the change that records the outcome (None: the claim
    was lost before anything was sent, and the message is another worker's now)."""
    workspace = batch.workspaces[message.workspace_id]
    contact = batch.contacts.get(message.contact_id)
    try:
        built = build(message, channels, batch.templates, signing_secret=workspace.signing_secret,
                      last_inbound=contact.last_inbound_at if contact else {}, now=clock())
        _wait_for_token(message, channels, sleep)
        if message.channel == "webhook":
            receipt_id, meta = channels.webhook.post(message.to_address or "", built.outgoing.text.encode(),
                                                     built.outgoing.headers, on_handover=on_handover), {}
        else:
            sender = channels.sender(message.channel)
            if sender is None:
                raise ChannelUnavailable(f"{message.channel} is not configured")
            receipt = sender.send(built.outgoing, on_handover=on_handover)
            receipt_id, meta = receipt.provider_id, receipt.meta
    except ClaimLost:
        return None
    except SendInDoubt as exc:
        return in_doubt_after(message, batch, exc, now=clock())
    except _Throttled as exc:
        return later(message, clock() + timedelta(seconds=exc.wait), "rate limited", now=clock(), unclaim=True,
                     reason=Reason.RATE_LIMITED)
    except TemplateError as exc:
        return ended(message, MessageStatus.FAILED, str(exc), now=clock())
    except (PermanentSendError, ChannelUnavailable) as exc:
        return failed_for_good(message, batch, exc, now=clock(), pause_after=pause_after)
    except TransientSendError as exc:
        return transient(message, batch, exc, now=clock(), pause_after=pause_after)
    batch.succeeded.add((message.workspace_id, message.channel))
    detail = built.summary + (f" ({_describe(meta)})" if meta else "")
    return SentRecord(message, receipt_id, built.subject, built.template_version, meta, detail, clock())


class _Throttled(Exception):
    def __init__(self, wait: float):
        self.wait = wait


def _wait_for_token(message: Message, channels: Channels, sleep: Callable[[float], None]) -> None:
    if channels.limiter is None:
        return
    while (wait := channels.limiter.acquire(message.channel)) > 0:
        if wait > MAX_INLINE_WAIT:
            raise _Throttled(wait)
        sleep(wait)


def _describe(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta.items() if isinstance(v, str | int | float))
