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

Outcomes: sent; retried later with backoff (timeouts, 429, 5xx: TransientSendError);
re-routed to the step's next fallback channel (a permanent failure, a paused or
unconfigured channel, consent withdrawn on this channel); or failed, and where the
address is dead, suppressed.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.batches import dead_letters
from engine.contacts.journal import record_message
from engine.delivery import channel_health, in_doubt, routing
from engine.delivery.handover import MESSAGES, Handover, Lease, SentRecord, handover, release_claims
from engine.delivery.outgoing import build
from engine.delivery.policies import parse_quiet_hours, quiet_until, route
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
from engine.store.db import defer
from engine.store.dialect import upsert
from engine.store.models import Contact, Message, MessageStatus, Suppression, Workspace

MAX_ATTEMPTS = 8
CHUNK = 50  # messages claimed with one statement; a dead worker's unstarted ones go back after a while
# A message for a paused channel with no fallback is held; resuming the channel sends it at
# once (channel_health.release_held), and this recheck only covers a resume that raced the hold.
PAUSED_RECHECK = timedelta(hours=1)
MAX_INLINE_WAIT = 1.0  # a rate-limit wait up to this is slept; longer ones reschedule the message


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: up to 30 s, 1 min, 2 min ... capped at 1 h."""
    ceiling = min(30 * 2 ** (attempt - 1), 3600)
    return timedelta(seconds=max(5.0, (rng or random).uniform(ceiling / 2, ceiling)))


@dataclass
class _Batch:
    messages: dict[int, Message]
    contacts: dict[int, Contact]
    workspaces: dict[str, Workspace]
    templates: Templates  # what its messages render from, and what a fallback channel must have
    paused: dict[str, set[str]] = field(default_factory=dict)
    suppressed: set[tuple[str, str, str]] = field(default_factory=set)  # (workspace, channel, address)
    succeeded: set[tuple[str, str]] = field(default_factory=set)  # (workspace, channel) that sent fine
    probes: dict[tuple[str, str], Message] = field(default_factory=dict)  # the message probing a channel
    quiet: dict[str, dict[str, Any]] = field(default_factory=dict)

    def quiet_hours(self, workspace_id: str) -> dict[str, Any]:
        if workspace_id not in self.quiet:
            self.quiet[workspace_id] = parse_quiet_hours(self.workspaces[workspace_id].settings or {})
        return self.quiet[workspace_id]


def _not_stopping() -> bool:
    return False


def dispatch_messages(sessions: sessionmaker[Session], message_ids: list[int], *, channels: Channels,
                      templates: Templates, clock: Callable[[], datetime], pause_after: int = 10, lanes: int = 1,
                      sleep: Callable[[float], None] = time.sleep,
                      stopping: Callable[[], bool] = _not_stopping) -> None:
    """Send the due ones among `message_ids`. `stopping()` true (a graceful stop): each lane finishes
    the message it is handing over and the job's other claims are released at once."""
    batch = _load(sessions, message_ids, templates, now=clock())
    ids = sorted(batch.messages)
    if not ids:
        return
    token = secrets.token_hex(8)  # the job's claims; its lease renews them while it runs

    def lane(part: list[int]) -> None:
        for start in range(0, len(part), CHUNK):
            if stopping():
                return
            mine = _claim_chunk(sessions, [batch.messages[i] for i in part[start:start + CHUNK]], batch, channels,
                                token, now=clock())
            _send_chunk(sessions, mine, batch, channels, clock, token, pause_after=pause_after, sleep=sleep,
                        stopping=stopping)

    lanes = max(1, min(lanes, len(ids) // CHUNK))
    with Lease(sessions, token, clock):
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
            release_claims(sessions, token, now=clock())  # stopped or failed: what was not handed over goes back
    if batch.succeeded:
        _record_successes(sessions, batch, now=clock())


def _record_successes(sessions: sessionmaker[Session], batch: _Batch, *, now: datetime) -> None:
    """Reset the failure counts; a channel whose probe went through is closed (its held messages released)."""
    with sessions.begin() as session:
        for workspace_id, channel in sorted(batch.succeeded):
            if channel_health.record_success(session, workspace_id, channel, now=now):
                probe = batch.probes.get((workspace_id, channel))
                if probe is not None:
                    record_message(session, probe, "channel_resumed", at=now,
                                   detail=f"{channel} resumed automatically: this probe went through")


def _claim_chunk(sessions: sessionmaker[Session], chunk: list[Message], batch: _Batch, channels: Channels,
                 token: str, *, now: datetime) -> list[Message]:
    """Claim a chunk in one statement; settle at once those that may not go now (the claim
    makes them ours to change); return the rest, to be sent."""
    with sessions.begin() as session:
        won = set(session.scalars(
            update(MESSAGES).where(MESSAGES.c.id.in_([m.id for m in chunk]),
                                MESSAGES.c.status == MessageStatus.SCHEDULED.value, MESSAGES.c.scheduled_at <= now)
            .values(status=MessageStatus.CLAIMED.value, claimed_at=now, claimed_by=token).returning(MESSAGES.c.id)))
        mine = []
        for message in chunk:
            if message.id not in won:
                continue
            hold = _hold_reason(session, message, batch, channels, now=now)
            if hold is None:
                mine.append(message)
            else:
                hold(session)
    return mine


def _send_chunk(sessions: sessionmaker[Session], chunk: list[Message], batch: _Batch, channels: Channels,
                clock: Callable[[], datetime], token: str, *, pause_after: int,
                sleep: Callable[[float], None], stopping: Callable[[], bool] = _not_stopping) -> None:
    """Each message is marked `sending` when the adapter hands its body over, in the same commit
    that records the previous one as sent (engine/delivery/handover.py). A stop request ends the
    chunk between two messages; the rest stay claimed, for dispatch_messages to release."""
    with handover(sessions) as hand:
        lane = _Lane(hand, token, clock)
        for message in chunk:
            if stopping():
                break
            lane.begin(message)
            try:
                outcome = _send(message, batch, channels, clock, on_handover=lane.hand_over,
                                pause_after=pause_after, sleep=sleep)
            except Exception as exc:
                if dead_letters.is_outage(exc):
                    raise
                outcome = _unexpected(message, batch, exc, handed_over=lane.handed_over, now=clock())
            if isinstance(outcome, SentRecord):
                lane.done = outcome
            elif outcome is not None:
                lane.record(sessions, outcome)
        lane.finish()


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

    def record(self, sessions: sessionmaker[Session], outcome: Callable[[Session], None]) -> None:
        """An outcome other than sent, with the sent message still waiting to be recorded (if any)."""
        assert self.message is not None
        with sessions.begin() as session:
            if self.done is not None:
                self.done.record(session)
                self.done = None
            if not self.handed_over:  # it failed before its hand-over, which counts attempts
                session.execute(update(MESSAGES).where(MESSAGES.c.id == self.message.id)
                                .values(attempts=MESSAGES.c.attempts + 1))
            outcome(session)

    def finish(self) -> None:
        if self.done is not None:
            self.hand.step(self.done, None, token=self.token, now=self.clock())
            self.done = None


def _load(sessions: sessionmaker[Session], message_ids: list[int], templates: Templates, *, now: datetime) -> _Batch:
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
    return _Batch(messages, contacts, workspaces, templates, paused, suppressed)


def _hold_reason(session: Session, message: Message, batch: _Batch, channels: Channels, *,
                 now: datetime) -> Callable[[Session], None] | None:
    """Why this message may not go right now, as the change to make instead; None: send it."""
    if message.channel == "webhook":
        return None
    contact = batch.contacts.get(message.contact_id)
    if contact is None:  # erased since it was scheduled
        return _settle(message, MessageStatus.SKIPPED, "skipped: contact erased", now=now)
    if message.channel in batch.paused.get(message.workspace_id, set()) and not _probing(
            session, message, batch, now=now):
        why = f"{message.channel} is paused"
        # Held when no fallback takes it: said on the timeline once, the hourly rechecks are quiet.
        held = _later(message, now + PAUSED_RECHECK, why, now=now, held=True,
                      journal=message.error != channel_health.WAITING_FOR_RESUME)
        return _reroute_or(message, batch, why, now=now, otherwise=held)
    if channels.sender(message.channel) is None:
        return _reroute_or(message, batch, f"{message.channel} is not configured", now=now)
    # Consent may have been withdrawn, or the address suppressed, since the message was made.
    recipient = routing.recipient_of(contact)
    still = route([message.channel], recipient, transactional=message.transactional,
                          suppressed=lambda ch, address: (message.workspace_id, ch, address) in batch.suppressed)
    if still.channel is None:
        return _reroute_or(message, batch, "; ".join(still.passed_over), now=now)
    if not message.transactional:
        zone = routing.contact_zone(contact, batch.workspaces[message.workspace_id])
        window = batch.quiet_hours(message.workspace_id).get(message.channel)
        opens = quiet_until(window, zone, now=now)
        if opens is not None:  # a retry or a cap deferral that landed in the night
            return _later(message, opens, f"quiet hours for {message.channel}", now=now)
    return None


def _probing(session: Session, message: Message, batch: _Batch, *, now: datetime) -> bool:
    """Whether this message goes to a paused channel as its breaker's probe (channel_health)."""
    if not channel_health.start_probe(session, message.workspace_id, message.channel, now=now):
        return False
    batch.probes[(message.workspace_id, message.channel)] = message
    record_message(session, message, "channel_probe", at=now,
                   detail=f"{message.channel} is paused: this message probes whether it works again")
    return True


def _send(message: Message, batch: _Batch, channels: Channels, clock: Callable[[], datetime], *,
          on_handover: Callable[[], None], pause_after: int,
          sleep: Callable[[float], None]) -> SentRecord | Callable[[Session], None] | None:
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
        return _in_doubt(message, batch, exc, now=clock())
    except _Throttled as exc:
        return _later(message, clock() + timedelta(seconds=exc.wait), "rate limited", now=clock(), unclaim=True)
    except TemplateError as exc:
        return _settle(message, MessageStatus.FAILED, str(exc), now=clock())
    except (PermanentSendError, ChannelUnavailable) as exc:
        return _failed_for_good(message, batch, exc, now=clock(), pause_after=pause_after)
    except TransientSendError as exc:
        return _transient(message, batch, exc, now=clock(), pause_after=pause_after)
    batch.succeeded.add((message.workspace_id, message.channel))
    detail = built.summary + (f" ({_describe(meta)})" if meta else "")
    return SentRecord(message, receipt_id, built.subject, built.template_version, meta, detail, clock())


def _unexpected(message: Message, batch: _Batch, exc: Exception, *, handed_over: bool,
                now: datetime) -> Callable[[Session], None]:
    """An exception no adapter should raise (a bug, a surprise in a reply): this message alone pays.

    The failure is counted on it (engine/batches/dead_letters.py): it is tried again later,
    and set aside (failed, saying why) after a few failures. One that was handed over may
    have reached the provider, so it is in doubt and the workspace's policy decides.
    """
    def record(session: Session) -> None:
        letter = dead_letters.record_failure(session, dead_letters.DISPATCH, message.id, exc, now=now)
        if letter is not None and letter.status == dead_letters.DEAD:
            return  # failed, saying why
        error_type, error = dead_letters.describe_error(exc)
        if handed_over:
            _in_doubt(message, batch, SendInDoubt(f"{error_type}: {error}"), now=now)(session)
        else:
            _later(message, now + retry_delay(message.attempts), f"attempt {message.attempts}: {error_type}: {error}",
                   now=now, error=f"{error_type}: {error}")(session)
    return record


def _in_doubt(message: Message, batch: _Batch, exc: SendInDoubt, *, now: datetime) -> Callable[[Session], None]:
    """The body went out and the answer was lost: the workspace's in-doubt policy decides."""
    settings = batch.workspaces[message.workspace_id].settings

    def record(session: Session) -> None:
        in_doubt.settle(session, message, settings=settings, cause=f"the answer was lost after the body went out "
                        f"({exc})", now=now, resend_at=now + retry_delay(message.attempts))
    return record


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


def _settle(message: Message, status: MessageStatus, why: str, *, now: datetime) -> Callable[[Session], None]:
    def record(session: Session) -> None:
        values: dict[str, Any] = {"status": status.value}
        values["skip_reason" if status == MessageStatus.SKIPPED else "error"] = why[:200] if (
            status == MessageStatus.SKIPPED) else why
        session.execute(update(Message).where(Message.id == message.id).values(**values)
                        .execution_options(synchronize_session=False))
        record_message(session, message, "skipped" if status == MessageStatus.SKIPPED else status.value,
                       at=now, detail=why)
    return record


def _later(message: Message, at: datetime, why: str, *, now: datetime, unclaim: bool = False,
           error: str | None = None, held: bool = False, journal: bool = True) -> Callable[[Session], None]:
    """Back to `scheduled` for `at`; the sweeper hands it out when due. `held`: waiting for its
    paused channel, released early when the channel is resumed."""
    def record(session: Session) -> None:
        values: dict[str, Any] = {"status": MessageStatus.SCHEDULED.value, "scheduled_at": at, "enqueued_at": None}
        if unclaim:
            values["attempts"] = Message.attempts - 1  # waiting for a token is not an attempt
        if error is not None or held:
            values["error"] = channel_health.WAITING_FOR_RESUME if held else error
        session.execute(update(Message).where(Message.id == message.id).values(**values)
                        .execution_options(synchronize_session=False))
        if journal:
            kind = "retrying" if error else "message_deferred"
            detail = (f"{why}; held until a probe gets through or a person resumes it" if held
                      else f"{why}; next at {at.isoformat()}")
            record_message(session, message, kind, at=now, detail=detail)
    return record


def _transient(message: Message, batch: _Batch, exc: TransientSendError, *, now: datetime,
               pause_after: int) -> Callable[[Session], None]:
    if message.attempts >= MAX_ATTEMPTS:
        return _failed_for_good(message, batch, PermanentSendError(
            f"gave up after {message.attempts} attempts: {exc}"), now=now, pause_after=pause_after, given_up=True)
    delay = retry_delay(message.attempts)
    if exc.retry_after is not None:
        delay = max(delay, timedelta(seconds=exc.retry_after))
    retry = _later(message, now + delay, f"attempt {message.attempts}: {exc}", now=now, error=str(exc))

    def record(session: Session) -> None:
        retry(session)
        _count_failure(session, message, batch, str(exc), now=now, pause_after=pause_after,
                       counted=channel_health.counts_toward_breaker(attempts=message.attempts, permanent=False))
    return record


def _failed_for_good(message: Message, batch: _Batch, exc: Exception, *, now: datetime, pause_after: int,
                     given_up: bool = False) -> Callable[[Session], None]:
    dead = isinstance(exc, PermanentSendError) and exc.address_dead
    # `given_up`: a transient failure on its last attempt, which the retries did not clear.
    channel_fault = not dead and not isinstance(exc, ChannelUnavailable)
    why = f"{message.channel} rejected: {exc}" if isinstance(exc, PermanentSendError) else str(exc)
    then = _reroute_or(message, batch, why, now=now, otherwise=_settle(message, MessageStatus.FAILED, why, now=now))

    def record(session: Session) -> None:
        if dead and message.to_address:
            session.execute(upsert(session, Suppression).values(
                workspace_id=message.workspace_id, channel=message.channel, address=message.to_address,
                reason=f"address dead: {exc}"[:200], created_at=now,
            ).on_conflict_do_nothing(index_elements=["workspace_id", "channel", "address"]))
            record_message(session, message, "suppressed", at=now, detail=f"{message.channel} {message.to_address}")
        if channel_fault:
            _count_failure(session, message, batch, str(exc), now=now, pause_after=pause_after,
                           counted=channel_health.counts_toward_breaker(attempts=message.attempts,
                                                                        permanent=not given_up))
        then(session)
    return record


def _count_failure(session: Session, message: Message, batch: _Batch, error: str, *, now: datetime,
                   pause_after: int, counted: bool) -> None:
    """Tell the channel's breaker; a failure that does not count only matters while a probe is out
    (then it re-opens the breaker: a half-open channel may look unpaused, so it is always asked)."""
    paused = batch.paused.setdefault(message.workspace_id, set())
    opened = channel_health.record_failure(session, message.workspace_id, message.channel, error, now=now,
                                           pause_after=pause_after, counted=counted)
    if opened is not None:
        paused.add(message.channel)
        record_message(session, message, "channel_paused", at=now, detail=opened.describe())


def _reroute_or(message: Message, batch: _Batch, why: str, *, now: datetime,
                otherwise: Callable[[Session], None] | None = None) -> Callable[[Session], None]:
    """Move the message to the step's next fallback channel that can take it, or do `otherwise`
    (by default: skip it, saying why)."""
    remaining = list((message.fallback or {}).get("channels") or [])
    contact = batch.contacts.get(message.contact_id)
    if remaining and contact is not None:
        workspace = batch.workspaces[message.workspace_id]
        plan = routing.plan_send(
            candidates=remaining, recipient=routing.recipient_of(contact), transactional=message.transactional,
            topic=None, when_capped="defer", template=message.template, templates=batch.templates,
            workspace=workspace, zone=routing.contact_zone(contact, workspace), suppressed=lambda ch, a: False,
            paused=batch.paused.get(message.workspace_id, set()), recent=lambda: [], now=now)
        # From a paused channel to another paused one gains nothing: it is held where it is.
        stay = plan.held and message.channel in batch.paused.get(message.workspace_id, set())
        if plan.channel is not None and not stay:
            def reroute(session: Session) -> None:
                if routing.is_suppressed(session, message.workspace_id, plan.channel or "", plan.address or ""):
                    _settle(message, MessageStatus.SKIPPED, f"skipped: {why}; {plan.channel} address suppressed",
                            now=now)(session)
                    return
                session.execute(update(Message).where(Message.id == message.id).values(
                    status=MessageStatus.SCHEDULED.value, channel=plan.channel, to_address=plan.address,
                    scheduled_at=plan.send_at, enqueued_at=None if plan.deferred else now, attempts=0, error=why,
                    fallback={"channels": list(plan.remaining)} if plan.remaining else {},
                ).execution_options(synchronize_session=False))
                record_message(session, message, "fallback", at=now,
                               detail=f"{message.channel}: {why}; falling back to {plan.detail}")
                if not plan.deferred:
                    defer(session, "dispatch_messages", [message.id])
            return reroute
        why = f"{why}; fallback {plan.channel} is paused too" if stay else (
            f"{why}; fallback {(plan.skip_reason or '').removeprefix('skipped: ')}")
    if otherwise is not None:
        return otherwise
    return _settle(message, MessageStatus.SKIPPED, f"skipped: {why}", now=now)
