"""What becomes of a message that dispatch did not simply send: the decision, and the change that records it.

`hold_reason` says why a claimed message may not go right now; the others, what a failed
send leads to. Each decides from what the dispatch job read once (`DispatchBatch`) and
returns a `Recording`: the change to make in the transaction that records it, which
answers the outcome it recorded. Decided with no transaction open, recorded later: a
send's answer is recorded together with the next hand-over (engine/delivery/handover.py).

Outcomes: retried later with backoff (timeouts, 429, 5xx: TransientSendError); deferred
(quiet hours, rate limits); held (its channel is paused and no fallback takes it);
re-routed to the step's next fallback channel (a permanent failure, a paused or
unconfigured channel, consent withdrawn on this channel); failed, and where the address
is dead, suppressed; skipped; or in doubt, settled by the workspace's policy.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.batches import dead_letters
from engine.contacts.journal import JournalKind, record_message
from engine.delivery import channel_health, in_doubt, routing
from engine.delivery.policies import parse_quiet_hours, quiet_until, route
from engine.delivery.ports import Channels
from engine.delivery.templates import Templates
from engine.errors import ChannelUnavailable, PermanentSendError, SendInDoubt, TransientSendError
from engine.reasons import Reason
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import Contact, Message, MessageStatus, Suppression, Workspace
from engine.timezones import contact_zone

MAX_ATTEMPTS = 8
# A message for a paused channel with no fallback is held; resuming the channel sends it at
# once (channel_health.release_held), and this recheck only covers a resume that raced the hold.
PAUSED_RECHECK = timedelta(hours=1)

# What became of a message a dispatch job claimed. "lost": its claim went to another worker
# before the hand-over, nothing sent; "released": given back unsent at a graceful stop.
DispatchOutcome = Literal["sent", "deferred", "retrying", "held", "rerouted", "skipped", "failed", "in_doubt",
                          "lost", "released"]
Recording = Callable[[Session], DispatchOutcome]


@dataclass
class DispatchBatch:
    """What a dispatch job reads once for its messages; a channel the job's failures pause is added to `paused`."""

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


def retry_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: up to 30 s, 1 min, 2 min ... capped at 1 h."""
    ceiling = min(30 * 2 ** (attempt - 1), 3600)
    return timedelta(seconds=max(5.0, (rng or random).uniform(ceiling / 2, ceiling)))


def ended(message: Message, status: MessageStatus, why: str, *, now: datetime,
          reason: Reason | None = None) -> Recording:
    """Skipped or failed for good, saying why (and, for a skip, why as a code)."""
    outcome: DispatchOutcome = "skipped" if status == MessageStatus.SKIPPED else "failed"

    def record(session: Session) -> DispatchOutcome:
        values: dict[str, Any] = {"status": status.value}
        values["skip_reason" if status == MessageStatus.SKIPPED else "error"] = why[:200] if (
            status == MessageStatus.SKIPPED) else why
        session.execute(update(Message).where(Message.id == message.id).values(**values)
                        .execution_options(synchronize_session=False))
        record_message(session, message, JournalKind(status.value), at=now, detail=why, reason=reason)
        return outcome
    return record


def later(message: Message, at: datetime, why: str, *, now: datetime, unclaim: bool = False,
          error: str | None = None, held: bool = False, journal: bool = True,
          reason: Reason | None = None) -> Recording:
    """Back to `scheduled` for `at`; the sweeper hands it out when due. `held`: waiting for its
    paused channel, released early when the channel is resumed. `error`: a retry after it;
    otherwise a deferral, `reason` saying why."""
    outcome: DispatchOutcome = "held" if held else "retrying" if error else "deferred"

    def record(session: Session) -> DispatchOutcome:
        values: dict[str, Any] = {"status": MessageStatus.SCHEDULED.value, "scheduled_at": at, "enqueued_at": None}
        if unclaim:
            values["attempts"] = Message.attempts - 1  # waiting for a token is not an attempt
        if error is not None or held:
            values["error"] = channel_health.WAITING_FOR_RESUME if held else error
        session.execute(update(Message).where(Message.id == message.id).values(**values)
                        .execution_options(synchronize_session=False))
        if journal:
            kind = JournalKind.RETRYING if error else JournalKind.MESSAGE_DEFERRED
            detail = (f"{why}; held until a probe gets through or a person resumes it" if held
                      else f"{why}; next at {at.isoformat()}")
            record_message(session, message, kind, at=now, detail=detail, reason=None if error else reason)
        return outcome
    return record


def in_doubt_after(message: Message, batch: DispatchBatch, exc: SendInDoubt, *, now: datetime) -> Recording:
    """The body went out and the answer was lost: the workspace's in-doubt policy decides."""
    settings = batch.workspaces[message.workspace_id].settings

    def record(session: Session) -> DispatchOutcome:
        in_doubt.settle(session, message, settings=settings, cause=f"the answer was lost after the body went out "
                        f"({exc})", now=now, resend_at=now + retry_delay(message.attempts))
        return "in_doubt"
    return record


def unexpected(message: Message, batch: DispatchBatch, exc: Exception, *, handed_over: bool,
               now: datetime) -> Recording:
    """An exception no adapter should raise (a bug, a surprise in a reply): this message alone pays.

    The failure is counted on it (engine/batches/dead_letters.py): it is tried again later,
    and set aside (failed, saying why) after a few failures. One that was handed over may
    have reached the provider, so it is in doubt and the workspace's policy decides.
    """
    def record(session: Session) -> DispatchOutcome:
        letter = dead_letters.record_failure(session, JobName.DISPATCH_MESSAGES, message.id, exc, now=now)
        if letter is not None and letter.status == dead_letters.DEAD:
            return "failed"  # failed, saying why
        error_type, error = dead_letters.describe_error(exc)
        if handed_over:
            return in_doubt_after(message, batch, SendInDoubt(f"{error_type}: {error}"), now=now)(session)
        return later(message, now + retry_delay(message.attempts), f"attempt {message.attempts}: {error_type}: {error}",
                     now=now, error=f"{error_type}: {error}")(session)
    return record


def transient(message: Message, batch: DispatchBatch, exc: TransientSendError, *, now: datetime,
              pause_after: int) -> Recording:
    """Retried with backoff, until the last attempt fails it for good."""
    if message.attempts >= MAX_ATTEMPTS:
        return failed_for_good(message, batch, PermanentSendError(
            f"gave up after {message.attempts} attempts: {exc}"), now=now, pause_after=pause_after, given_up=True)
    delay = retry_delay(message.attempts)
    if exc.retry_after is not None:
        delay = max(delay, timedelta(seconds=exc.retry_after))
    retry = later(message, now + delay, f"attempt {message.attempts}: {exc}", now=now, error=str(exc))

    def record(session: Session) -> DispatchOutcome:
        outcome = retry(session)
        _count_failure(session, message, batch, str(exc), now=now, pause_after=pause_after,
                       counted=channel_health.counts_toward_breaker(attempts=message.attempts, permanent=False))
        return outcome
    return record


def failed_for_good(message: Message, batch: DispatchBatch, exc: Exception, *, now: datetime, pause_after: int,
                    given_up: bool = False) -> Recording:
    """Re-routed to a fallback, else failed; a dead address is suppressed, a channel's fault counted."""
    dead = isinstance(exc, PermanentSendError) and exc.address_dead
    # `given_up`: a transient failure on its last attempt, which the retries did not clear.
    channel_fault = not dead and not isinstance(exc, ChannelUnavailable)
    why = f"{message.channel} rejected: {exc}" if isinstance(exc, PermanentSendError) else str(exc)
    unconfigured = Reason.CHANNEL_NOT_CONFIGURED if isinstance(exc, ChannelUnavailable) else None
    then = reroute_or(message, batch, why, now=now, reason=unconfigured,
                      otherwise=ended(message, MessageStatus.FAILED, why, now=now))

    def record(session: Session) -> DispatchOutcome:
        if dead and message.to_address:
            session.execute(upsert(session, Suppression).values(
                workspace_id=message.workspace_id, channel=message.channel, address=message.to_address,
                reason=f"address dead: {exc}"[:200], created_at=now,
            ).on_conflict_do_nothing(index_elements=["workspace_id", "channel", "address"]))
            record_message(session, message, JournalKind.SUPPRESSED, at=now,
                           detail=f"{message.channel} {message.to_address}")
        if channel_fault:
            _count_failure(session, message, batch, str(exc), now=now, pause_after=pause_after,
                           counted=channel_health.counts_toward_breaker(attempts=message.attempts,
                                                                        permanent=not given_up))
        return then(session)
    return record


def _count_failure(session: Session, message: Message, batch: DispatchBatch, error: str, *, now: datetime,
                   pause_after: int, counted: bool) -> None:
    """Tell the channel's breaker; a failure that does not count only matters while a probe is out
    (then it re-opens the breaker: a half-open channel may look unpaused, so it is always asked)."""
    paused = batch.paused.setdefault(message.workspace_id, set())
    opened = channel_health.record_failure(session, message.workspace_id, message.channel, error, now=now,
                                           pause_after=pause_after, counted=counted)
    if opened is not None:
        paused.add(message.channel)
        record_message(session, message, JournalKind.CHANNEL_PAUSED, at=now, detail=opened.describe())


def reroute_or(message: Message, batch: DispatchBatch, why: str, *, now: datetime, reason: Reason | None = None,
               otherwise: Recording | None = None) -> Recording:
    """Move the message to the step's next fallback channel that can take it, or do `otherwise`
    (by default: skip it, saying why; `reason`: why its own channel could not take it)."""
    remaining = list((message.fallback or {}).get("channels") or [])
    contact = batch.contacts.get(message.contact_id)
    if remaining and contact is not None:
        workspace = batch.workspaces[message.workspace_id]
        plan = routing.plan_send(
            candidates=remaining, recipient=routing.recipient_of(contact), transactional=message.transactional,
            topic=None, when_capped="defer", template=message.template, templates=batch.templates,
            workspace=workspace, zone=contact_zone(contact.timezone, workspace.timezone),
            suppressed=lambda ch, a: False,
            paused=batch.paused.get(message.workspace_id, set()), recent=lambda: [], now=now)
        # From a paused channel to another paused one gains nothing: it is held where it is.
        stay = plan.held and message.channel in batch.paused.get(message.workspace_id, set())
        if plan.channel is not None and not stay:
            def reroute(session: Session) -> DispatchOutcome:
                if routing.is_suppressed(session, message.workspace_id, plan.channel or "", plan.address or ""):
                    return ended(message, MessageStatus.SKIPPED,
                                 f"skipped: {why}; {plan.channel} address suppressed", now=now, reason=reason)(session)
                session.execute(update(Message).where(Message.id == message.id).values(
                    status=MessageStatus.SCHEDULED.value, channel=plan.channel, to_address=plan.address,
                    scheduled_at=plan.send_at, enqueued_at=None if plan.deferred else now, attempts=0, error=why,
                    fallback={"channels": list(plan.remaining)} if plan.remaining else {},
                ).execution_options(synchronize_session=False))
                record_message(session, message, JournalKind.FALLBACK, at=now,
                               detail=f"{message.channel}: {why}; falling back to {plan.detail}")
                if not plan.deferred:
                    defer(session, JobName.DISPATCH_MESSAGES, [message.id])
                return "rerouted"
            return reroute
        why = f"{why}; fallback {plan.channel} is paused too" if stay else (
            f"{why}; fallback {(plan.skip_reason or '').removeprefix('skipped: ')}")
    if otherwise is not None:
        return otherwise
    return ended(message, MessageStatus.SKIPPED, f"skipped: {why}", now=now, reason=reason)


def hold_reason(session: Session, message: Message, batch: DispatchBatch, channels: Channels, *,
                 now: datetime) -> Recording | None:
    """Why this message may not go right now, as the change to make instead; None: send it."""
    if message.channel == "webhook":
        return None
    contact = batch.contacts.get(message.contact_id)
    if contact is None:  # erased since it was scheduled
        return ended(message, MessageStatus.SKIPPED, "skipped: contact erased", now=now,
                     reason=Reason.CONTACT_ERASED)
    if message.channel in batch.paused.get(message.workspace_id, set()) and not _probing(
            session, message, batch, now=now):
        why = f"{message.channel} is paused"
        # Held when no fallback takes it: said on the timeline once, the hourly rechecks are quiet.
        held = later(message, now + PAUSED_RECHECK, why, now=now, held=True, reason=Reason.CHANNEL_PAUSED,
                     journal=message.error != channel_health.WAITING_FOR_RESUME)
        return reroute_or(message, batch, why, now=now, reason=Reason.CHANNEL_PAUSED, otherwise=held)
    if channels.sender(message.channel) is None:
        return reroute_or(message, batch, f"{message.channel} is not configured", now=now,
                          reason=Reason.CHANNEL_NOT_CONFIGURED)
    # Consent may have been withdrawn, or the address suppressed, since the message was made.
    recipient = routing.recipient_of(contact)
    still = route([message.channel], recipient, transactional=message.transactional,
                  suppressed=lambda ch, address: (message.workspace_id, ch, address) in batch.suppressed)
    if still.channel is None:
        return reroute_or(message, batch, "; ".join(still.passed_over), now=now, reason=still.reason)
    if not message.transactional:
        zone = contact_zone(contact.timezone, batch.workspaces[message.workspace_id].timezone)
        window = batch.quiet_hours(message.workspace_id).get(message.channel)
        opens = quiet_until(window, zone, now=now)
        if opens is not None:  # a retry or a cap deferral that landed in the night
            return later(message, opens, f"quiet hours for {message.channel}", now=now, reason=Reason.QUIET_HOURS)
    return None


def _probing(session: Session, message: Message, batch: DispatchBatch, *, now: datetime) -> bool:
    """Whether this message goes to a paused channel as its breaker's probe (channel_health)."""
    if not channel_health.start_probe(session, message.workspace_id, message.channel, now=now):
        return False
    batch.probes[(message.workspace_id, message.channel)] = message
    record_message(session, message, JournalKind.CHANNEL_PROBE, at=now,
                   detail=f"{message.channel} is paused: this message probes whether it works again")
    return True
