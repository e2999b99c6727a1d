"""The hot path of dispatch: record the message just sent and mark the next one `sending`, at once;
and the lease that tells the sweeper a worker's claims are still alive.

`sending` means "the body may have reached the provider". A message is marked so at
the last moment before its body is written: the adapter calls dispatch's hand-over
callback after the SMTP server's 354 to DATA (after MAIL and RCPT were accepted), or
right before an HTTP request is written. So a worker killed before that point leaves
the message `claimed` (it goes back to be sent), and only one killed after it leaves a
message in doubt. That commit also records the previous message as sent, with its
journal line: one commit per message, as before the line was moved.

A dispatch job holds a lease on its claims: `claimed_at` is renewed every
LEASE_RENEWAL seconds while the job runs (a thread of its own, so a slow provider
does not starve it). The sweeper releases claims whose lease ran out (CLAIM_LEASE):
a killed worker's messages are taken over within seconds.

On PostgreSQL this is one statement on an autocommit connection whose commits do not
wait for the disk (`synchronous_commit = off`): a round trip instead of six, and no
fdatasync per message (about 1.4 ms on these machines, more than the rest of dispatch).
What is committed so is lost only if the database server itself crashes, within its
last fraction of a second; the sweeper marks claims made before the server restarted
`unknown` instead of sending them again (engine/ops/sweeper.py). Elsewhere (SQLite)
the same changes run as statements in one short transaction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, insert, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts import journal
from engine.store.db import JobName, defer
from engine.store.dialect import close_asynchronous_commit, has_asynchronous_commit, open_asynchronous_commit
from engine.store.models import JournalEntry, Message, MessageStatus

log = logging.getLogger(__name__)
# A claim not renewed for this long belongs to a dead worker (or one cut off from the
# database, which cannot record anything either). Renewals come five times per lease, so a
# few slow ones on a busy machine do not let a live worker's claims go.
CLAIM_LEASE = timedelta(seconds=15)
LEASE_RENEWAL = 3.0  # seconds

MESSAGES: Table = Message.__table__  # type: ignore[assignment]  # a declarative model's table is a Table
JOURNAL: Table = JournalEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class SentRecord:
    """What to write when the provider accepted a message."""

    message: Message
    provider_id: str
    subject: str | None
    template_version: str | None
    meta: dict[str, Any]
    detail: str  # the journal line
    at: datetime

    def record(self, session: Session) -> None:
        session.execute(update(MESSAGES).where(MESSAGES.c.id == self.message.id).values(**self._values()))
        session.execute(insert(JOURNAL).values(**self._line()))

    def _values(self) -> dict[str, Any]:
        return {"status": MessageStatus.SENT.value, "sent_at": self.at, "provider_id": self.provider_id[:255],
                "error": None, "subject": self.subject, "template_version": self.template_version,
                "meta": {**(self.message.meta or {}), **self.meta}}

    def _line(self) -> dict[str, Any]:
        return journal.message_row(self.message, journal.JournalKind.SENT, at=self.at, detail=self.detail)


class Handover(Protocol):
    def step(self, done: SentRecord | None, next_id: int | None, *, token: str, now: datetime) -> int | None:
        """Record `done` (if any) and mark `next_id` sending if our claim on it holds; its attempts, or None."""
        ...


# psycopg's own placeholders: this runs on the driver's cursor, once per message. `sending` with
# our own token is taken as ours too: that is this very step, committed by a first try whose
# answer was lost with its connection (see _PostgresHandover.step). The journal line is the one
# SentRecord builds, written only if the message was not recorded sent already.
_PG_STEP = f"""
WITH done AS (
    UPDATE messages SET status = 'sent', sent_at = %(sent_at)s, provider_id = %(provider_id)s, error = NULL,
           subject = %(subject)s, template_version = %(template_version)s, meta = CAST(%(meta)s AS jsonb)
    WHERE id = %(done_id)s AND status <> 'sent'
    RETURNING id
), line AS (
    INSERT INTO journal ({", ".join(journal.COLUMNS)})
    SELECT {", ".join(f"%(line_{name})s" for name in journal.COLUMNS)} FROM done
)
UPDATE messages SET status = 'sending', claimed_at = %(now)s, attempts = attempts + 1
WHERE id = %(next_id)s AND status IN ('claimed', 'sending') AND claimed_by = %(token)s
RETURNING attempts
"""


class _PostgresHandover:
    """On the driver's own connection: SQLAlchemy's per-statement work cost as much as the SQL.

    A connection cut under it (a database restart, pg_terminate_backend) is replaced and the
    step tried once more: failing here would leave the message just sent looking in doubt.
    """

    def __init__(self, bind: Engine):
        self.bind = bind
        self.connection: Connection | None = None

    def _driver(self) -> Any:
        if self.connection is None:
            self.connection = open_asynchronous_commit(self.bind)
        return self.connection.connection.driver_connection

    def close(self) -> None:
        if self.connection is not None:
            try:
                close_asynchronous_commit(self.connection)
            except SQLAlchemyError:
                pass  # a dead connection is discarded by the pool anyway
            self.connection = None

    def step(self, done: SentRecord | None, next_id: int | None, *, token: str, now: datetime) -> int | None:
        values = done._values() if done else {}
        line = done._line() if done else {}
        params = {
            "done_id": done.message.id if done else None, "sent_at": values.get("sent_at"),
            "provider_id": values.get("provider_id"), "subject": values.get("subject"),
            "template_version": values.get("template_version"), "meta": json.dumps(values.get("meta") or {}),
            **{f"line_{name}": line.get(name) for name in journal.COLUMNS},
            "next_id": next_id, "now": now, "token": token,
        }
        for attempt in (1, 2):
            try:
                with self._driver().cursor() as cursor:
                    cursor.execute(_PG_STEP, params)
                    found = cursor.fetchone()
                return None if found is None else int(found[0])
            except Exception as exc:  # the driver's own errors: psycopg's, not SQLAlchemy's
                if attempt == 2 or not _disconnected(self.connection, exc):
                    raise
                log.warning("hand-over connection lost (%s); reconnecting", exc)
                self._discard()
        raise AssertionError("unreachable")  # pragma: no cover

    def _discard(self) -> None:
        if self.connection is not None:
            self.connection.invalidate()
            self.connection.close()
            self.connection = None


class _SessionHandover:
    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def step(self, done: SentRecord | None, next_id: int | None, *, token: str, now: datetime) -> int | None:
        with self.sessions.begin() as session:
            if done is not None:
                done.record(session)
            if next_id is None:
                return None
            attempts = session.scalar(
                update(MESSAGES).where(MESSAGES.c.id == next_id, MESSAGES.c.claimed_by == token,
                                       MESSAGES.c.status.in_([MessageStatus.CLAIMED.value,
                                                              MessageStatus.SENDING.value]))
                .values(status=MessageStatus.SENDING.value, claimed_at=now, attempts=MESSAGES.c.attempts + 1)
                .returning(MESSAGES.c.attempts))
        return None if attempts is None else int(attempts)


def _disconnected(connection: Connection | None, exc: Exception) -> bool:
    """Whether the driver's error means the connection is gone (SQLAlchemy's own judgement)."""
    if connection is None:
        return False
    driver_errors = connection.dialect.loaded_dbapi.Error
    return isinstance(exc, driver_errors) and connection.dialect.is_disconnect(
        exc, connection.connection.dbapi_connection, None)


@contextmanager
def handover(sessions: sessionmaker[Session]) -> Iterator[Handover]:
    bind: Engine | None = sessions.kw.get("bind")
    if bind is None or not has_asynchronous_commit(bind):
        yield _SessionHandover(sessions)
        return
    steps = _PostgresHandover(bind)
    try:
        yield steps
    finally:
        steps.close()


class Lease:
    """Renews the claims of one dispatch job (its token) every LEASE_RENEWAL seconds until stopped."""

    def __init__(self, sessions: sessionmaker[Session], token: str, clock: Callable[[], datetime]):
        self.sessions, self.token, self.clock = sessions, token, clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name="dispatch-lease", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _renew_until_stopped(self) -> None:
        while not self._stopped.wait(LEASE_RENEWAL):
            try:
                self.renew()
            except SQLAlchemyError as exc:  # a database blip: the next renewal tries again
                log.warning("could not renew the dispatch lease: %s", exc)

    def renew(self) -> None:
        # One status per transaction: a lane's hand-over locks a `sending` row, then a `claimed`
        # one; renewing both kinds in one transaction could lock them the other way round.
        for status in (MessageStatus.SENDING, MessageStatus.CLAIMED):
            with self.sessions.begin() as session:
                session.execute(update(MESSAGES).where(MESSAGES.c.claimed_by == self.token,
                                                       MESSAGES.c.status == status.value)
                                .values(claimed_at=self.clock()))


def release_claims(sessions: sessionmaker[Session], token: str, *, now: datetime) -> int:
    """Give back the claims of `token` that were never handed over, to be sent at once by any worker.

    Called when a dispatch job ends, however it ends (a graceful stop, an error): those
    messages never reached the provider. A database that is down leaves them to the lease.
    """
    try:
        with sessions.begin() as session:
            ids = list(session.scalars(
                update(MESSAGES).where(MESSAGES.c.claimed_by == token,
                                       MESSAGES.c.status == MessageStatus.CLAIMED.value)
                .values(status=MessageStatus.SCHEDULED.value, enqueued_at=now).returning(MESSAGES.c.id)))
            defer(session, JobName.DISPATCH_MESSAGES, ids)
    except (DBAPIError, SQLAlchemyError) as exc:
        log.warning("could not release claims (%s); their lease will run out", exc)
        return 0
    return len(ids)
