"""Dead letters: one bad item never holds back the others.

A job carries many ids (events to evaluate, runs to advance, messages to send). When
the job raises, `run_isolating` splits its ids in halves and runs each half again, in
its own transaction, recursing into a half that fails: the good items are committed
within the same job (no RQ round trip, no wait for the sweep) and only the item that
fails alone is left. Each such failure is recorded here, on the item's row
(`failing`, with the exception type and message); the item stays owed, so the sweep
hands it out again later. After `MAX_FAILURES` failures it is set aside (`dead`): the
event is stamped evaluated, the run exited, the message failed, each saying why, so
the sweep stops handing it out; the contact's timeline shows it, `GET
/api/v1/dead-letters` lists it and `rapport dead-letters retry` re-owes it once the
cause is fixed. A letter whose item later goes through is marked `resolved`.

Re-running a half is safe because every job's service is idempotent (an event is
claimed only while unevaluated, a run only while due, a message only while scheduled):
a half that committed is never done twice.

A failure that is not the item's fault (the database or Redis unreachable, a deadlock,
a lock timeout) is not bisected: the job fails as a whole and is handed out again, and
no item is charged with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, text, update
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.journal import JournalKind, record
from engine.errors import NotFound
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import LIVE_RUN_STATUSES, Contact, DeadLetter, Event, Message, MessageStatus, Run, RunStatus

log = logging.getLogger(__name__)

MAX_FAILURES = 3  # failures of one item before it is set aside
FAILING, DEAD, RESOLVED = "failing", "dead", "resolved"
STATUSES = (FAILING, DEAD, RESOLVED)
ITEM_TYPES: dict[str, str] = {JobName.EVALUATE_EVENTS: "event", JobName.ADVANCE_RUNS: "run",
                              JobName.DISPATCH_MESSAGES: "message"}
PENDING_MESSAGE = (MessageStatus.SCHEDULED.value, MessageStatus.CLAIMED.value, MessageStatus.SENDING.value)
# SQLSTATEs of failures that are the moment's, not the item's: serialization failure,
# deadlock, lock not available, too many connections, cannot connect now, admin shutdown.
PASSING_SQLSTATES = frozenset({"40001", "40P01", "55P03", "53300", "57P01", "57P03"})


# --- running a job's ids so that a bad one holds back no other ------------------------------


_outage_types: tuple[type[BaseException], ...] = ()


def treat_as_outage(*types: type[BaseException]) -> None:
    """Failures of these types are the environment's, never an item's (the workers add Redis's)."""
    global _outage_types
    _outage_types = tuple({*_outage_types, *types})


def is_outage(exc: BaseException) -> bool:
    """A failure that says nothing about the items: Redis or the database unreachable, a deadlock, a busy lock."""
    if isinstance(exc, _outage_types + (PoolTimeout, DisconnectionError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if getattr(exc.orig, "sqlstate", None) in PASSING_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)  # SQLite's busy timeout ran out


def run_isolating(sessions: sessionmaker[Session], kind: JobName, ids: Sequence[int], work: Callable[[list[int]], None],
                  *, clock: Callable[[], datetime]) -> None:
    """Run `work(ids)`; if it raises, run the halves, recursing, and charge an item that fails alone.

    `work` must open its own transaction(s), so that a failed half leaves nothing behind.
    An outage is re-raised as is: the job fails and the sweep hands its ids out again.
    """
    _run_part(sessions, kind, sorted(set(ids)), work, clock=clock)


def _run_part(sessions: sessionmaker[Session], kind: JobName, ids: list[int], work: Callable[[list[int]], None], *,
              clock: Callable[[], datetime]) -> None:
    if not ids:
        return
    try:
        work(ids)
    except Exception as exc:
        if is_outage(exc) or not _database_answers(sessions):
            raise
        if len(ids) == 1:
            log.warning("%s: item %s failed: %s", kind, ids[0], describe_error(exc))
            with sessions.begin() as session:
                record_failure(session, kind, ids[0], exc, now=clock())
            return
        middle = len(ids) // 2
        _run_part(sessions, kind, ids[:middle], work, clock=clock)
        _run_part(sessions, kind, ids[middle:], work, clock=clock)
        return
    with sessions.begin() as session:
        resolve(session, kind, ids, now=clock())


def _database_answers(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(exception type, first line of its message); a database error is told by the driver's own."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return type(cause).__name__[:200], (lines[0] if lines else "")[:1000]


# --- recording failures, setting items aside, resolving ---------------------------------------


def record_failure(session: Session, kind: JobName, item_id: int, exc: BaseException, *,
                   now: datetime) -> DeadLetter | None:
    """Count one failure of the item; on the MAX_FAILURES-th, set it aside. None: the item is gone."""
    owner = _owner(session, kind, item_id)
    if owner is None:
        return None
    workspace_id, contact_id = owner
    error_type, error = describe_error(exc)
    session.execute(upsert(session, DeadLetter).values(
        workspace_id=workspace_id, contact_id=contact_id, kind=kind, item_id=item_id, status=FAILING,
        error_type=error_type, error=error, attempts=0, first_failed_at=now, last_failed_at=now,
    ).on_conflict_do_nothing(index_elements=["kind", "item_id"]))
    letter = session.scalars(select(DeadLetter).where(DeadLetter.kind == kind, DeadLetter.item_id == item_id)
                             .with_for_update()).one()
    if letter.status == RESOLVED:  # it went through since; this is a new run of failures
        letter.status, letter.attempts, letter.first_failed_at, letter.resolved_at = FAILING, 0, now, None
    letter.attempts += 1
    letter.error_type, letter.error, letter.last_failed_at = error_type, error, now
    reason = f"{error_type}: {error}"
    if letter.attempts >= MAX_FAILURES and letter.status != DEAD:
        letter.status, letter.dead_at = DEAD, now
        _set_aside(session, letter, reason, now=now)
        _journal(session, letter, JournalKind.DEAD_LETTER, now=now,
                 detail=f"{ITEM_TYPES[kind]} set aside after {letter.attempts} failures (dead letter "
                        f"{letter.id}): {reason}")
    elif letter.status == DEAD:  # a retry failed again: set aside again at once
        _set_aside(session, letter, reason, now=now)
        _journal(session, letter, JournalKind.DEAD_LETTER, now=now,
                 detail=f"retry of dead letter {letter.id} failed: {reason}")
    else:
        _journal(session, letter, JournalKind.PROCESSING_FAILED, now=now,
                 detail=f"{kind} failed ({letter.attempts} of {MAX_FAILURES}), will be retried: {reason}")
    return letter


def _owner(session: Session, kind: JobName, item_id: int) -> tuple[str, int] | None:
    """The item's (workspace, contact), read without its JSON columns (which may be what is bad)."""
    model = _model(kind)
    found = session.execute(select(model.workspace_id, model.contact_id).where(model.id == item_id)).first()
    return None if found is None else (found[0], found[1])


def _model(kind: JobName) -> Any:
    models: dict[JobName, Any] = {JobName.EVALUATE_EVENTS: Event, JobName.ADVANCE_RUNS: Run,
                                  JobName.DISPATCH_MESSAGES: Message}
    return models[kind]


def _set_aside(session: Session, letter: DeadLetter, reason: str, *, now: datetime) -> None:
    """Mark the item so that the sweep stops handing it out, saying why."""
    why = f"set aside (dead letter {letter.id}): {reason}"
    if letter.kind == JobName.EVALUATE_EVENTS:
        statement: Any = update(Event).where(Event.id == letter.item_id, Event.evaluated_at.is_(None)).values(
            evaluated_at=now)
    elif letter.kind == JobName.ADVANCE_RUNS:
        statement = update(Run).where(Run.id == letter.item_id, Run.status.in_(LIVE_RUN_STATUSES)).values(
            status=RunStatus.EXITED.value, exit_reason=why[:200], ended_at=now, next_at=None, enqueued_at=None)
    else:
        statement = update(Message).where(Message.id == letter.item_id, Message.status.in_(PENDING_MESSAGE)).values(
            status=MessageStatus.FAILED.value, error=why)
    session.execute(statement.execution_options(synchronize_session=False))


def _done(kind: JobName, now: datetime) -> ColumnElement[bool]:
    """The item has moved on: evaluated, advanced (no longer due) or ended, sent or otherwise settled."""
    if kind == JobName.EVALUATE_EVENTS:
        return exists().where(Event.id == DeadLetter.item_id, Event.evaluated_at.is_not(None))
    if kind == JobName.ADVANCE_RUNS:
        return exists().where(Run.id == DeadLetter.item_id, (Run.status != RunStatus.WAITING.value)
                              | Run.next_at.is_(None) | (Run.next_at > now))
    return exists().where(Message.id == DeadLetter.item_id, Message.status.not_in(PENDING_MESSAGE))


def resolve(session: Session, kind: JobName, ids: Sequence[int], *, now: datetime) -> int:
    """Letters still failing whose items went through (a job of theirs ran without error) are resolved."""
    resolved = list(session.execute(
        update(DeadLetter)
        .where(DeadLetter.kind == kind, DeadLetter.status == FAILING, DeadLetter.item_id.in_(list(ids)),
               _done(kind, now))
        .values(status=RESOLVED, resolved_at=now)
        .returning(DeadLetter.id, DeadLetter.workspace_id, DeadLetter.contact_id, DeadLetter.item_id)
        .execution_options(synchronize_session=False)))
    for letter_id, workspace_id, contact_id, item_id in resolved:
        if contact_id is not None:
            _journal_line(session, workspace_id, contact_id, kind, item_id, JournalKind.DEAD_LETTER_RESOLVED, now=now,
                          detail=f"{ITEM_TYPES[kind]} went through (dead letter {letter_id} resolved)")
    return len(resolved)


def _journal(session: Session, letter: DeadLetter, line: JournalKind, *, now: datetime, detail: str) -> None:
    if letter.contact_id is not None:
        _journal_line(session, letter.workspace_id, letter.contact_id, JobName(letter.kind), letter.item_id, line,
                      now=now, detail=detail)


def _journal_line(session: Session, workspace_id: str, contact_id: int, kind: JobName, item_id: int,
                  line: JournalKind, *, now: datetime, detail: str) -> None:
    record(session, workspace_id=workspace_id, contact_id=contact_id, kind=line, at=now, detail=detail,
           run_id=item_id if kind == JobName.ADVANCE_RUNS else None,
           message_id=item_id if kind == JobName.DISPATCH_MESSAGES else None)


# --- what a person sees and does ---------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    letters: list[dict[str, Any]]
    next_before: int | None  # pass as `before` for the next (older) page; None: this was the last


def list_dead_letters(session: Session, workspace_id: str | None, *, status: str | None = DEAD,
                      before: int | None = None, limit: int = 50) -> Page:
    """The workspace's letters (None: every workspace's), newest first; `status` None: all of them."""
    query = (select(DeadLetter, Contact.external_id).outerjoin(Contact, Contact.id == DeadLetter.contact_id)
             .order_by(DeadLetter.id.desc()).limit(limit + 1))
    if workspace_id is not None:
        query = query.where(DeadLetter.workspace_id == workspace_id)
    if status is not None:
        query = query.where(DeadLetter.status == status)
    if before is not None:
        query = query.where(DeadLetter.id < before)
    rows = list(session.execute(query))
    page = [as_json(letter, external_id) for letter, external_id in rows[:limit]]
    return Page(page, page[-1]["id"] if len(rows) > limit else None)


def as_json(letter: DeadLetter, contact_external_id: str | None) -> dict[str, Any]:
    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": letter.id, "workspace": letter.workspace_id, "kind": letter.kind,
        "item_type": ITEM_TYPES.get(letter.kind, "item"), "item_id": letter.item_id,
        "contact": contact_external_id, "status": letter.status,
        "error_type": letter.error_type, "error": letter.error, "attempts": letter.attempts,
        "first_failed_at": at(letter.first_failed_at), "last_failed_at": at(letter.last_failed_at),
        "dead_at": at(letter.dead_at), "resolved_at": at(letter.resolved_at),
    }


def retry(session: Session, *, now: datetime, workspace_id: str | None = None,
          letter_ids: Sequence[int] = (), enqueue: bool = True) -> list[DeadLetter]:
    """Owe the dead letters' items again (all dead ones of the workspace, or those named).

    Each goes back to `failing` with its failures kept, so one more failure sets it aside
    again; one that goes through is resolved by the job. `enqueue`: hand them to the
    workers when this transaction commits; else the sweep hands them out on its next pass.
    """
    query = select(DeadLetter).where(DeadLetter.status == DEAD).order_by(DeadLetter.id).with_for_update()
    if workspace_id is not None:
        query = query.where(DeadLetter.workspace_id == workspace_id)
    if letter_ids:
        query = query.where(DeadLetter.id.in_(list(letter_ids)))
    letters = list(session.scalars(query))
    missing = sorted(set(letter_ids) - {letter.id for letter in letters})
    if missing:
        raise NotFound(f"no dead letter {', '.join(map(str, missing))}"
                       + (f" in workspace {workspace_id}" if workspace_id else "")
                       + " (it may be resolved already, or still failing)")
    for letter in letters:
        _owe_again(session, letter, enqueued_at=now if enqueue else None, now=now)
        letter.status = FAILING
        _journal(session, letter, JournalKind.DEAD_LETTER_RETRIED, now=now, detail=f"dead letter {letter.id} retried")
        if enqueue:
            defer(session, JobName(letter.kind), [letter.item_id])
    return letters


def _owe_again(session: Session, letter: DeadLetter, *, enqueued_at: datetime | None, now: datetime) -> None:
    if letter.kind == JobName.EVALUATE_EVENTS:
        statement: Any = update(Event).where(Event.id == letter.item_id).values(
            evaluated_at=None, enqueued_at=enqueued_at)
    elif letter.kind == JobName.ADVANCE_RUNS:
        statement = update(Run).where(Run.id == letter.item_id, Run.status == RunStatus.EXITED.value).values(
            status=RunStatus.WAITING.value, next_at=now, ended_at=None, exit_reason=None, enqueued_at=enqueued_at)
    else:
        statement = update(Message).where(Message.id == letter.item_id,
                                          Message.status == MessageStatus.FAILED.value).values(
            status=MessageStatus.SCHEDULED.value, scheduled_at=now, attempts=0, error=None, enqueued_at=enqueued_at)
    session.execute(statement.execution_options(synchronize_session=False))


def counts(session: Session) -> list[tuple[str, str, int]]:
    """(kind, status, letters) over all workspaces, for /metrics: failing and dead, not resolved."""
    rows = session.execute(select(DeadLetter.kind, DeadLetter.status, func.count())
                           .where(DeadLetter.status.in_([FAILING, DEAD]))
                           .group_by(DeadLetter.kind, DeadLetter.status))
    return [(kind, status, n) for kind, status, n in rows]
