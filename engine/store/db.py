"""Database engine and sessions, and enqueue-after-commit.

Services never talk to a queue. They call `defer(session, job, ids)`; the ids are
handed to the job sink (workers/queues.py plugs RQ in) only after the transaction
commits, and dropped if it rolls back. A crash between commit and enqueue is
covered by the scheduler's sweep, which re-enqueues overdue work from the tables.
"""

from __future__ import annotations

import enum
import json
import select
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session, sessionmaker


class JobName(enum.StrEnum):
    """The jobs a service may defer. Each is a function of workers.jobs, which RQ stores in
    Redis by its path (`workers.jobs.<name>`): a name once queued is never renamed."""

    EVALUATE_EVENTS = "evaluate_events"
    ADVANCE_RUNS = "advance_runs"
    DISPATCH_MESSAGES = "dispatch_messages"


@dataclass(frozen=True)
class DeferredJob:
    name: JobName
    ids: tuple[int, ...]


JobSink = Callable[[list[DeferredJob]], None]


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    # NaN and Infinity are not JSON: written as such, SQLite keeps text its own JSON functions call
    # malformed. The strict reader refuses them at the door; this refuses any that get past it.
    kwargs.setdefault("json_serializer", _strict_json_dumps)
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_recycle", 1800)
    # Our statements are short OLTP ones; PostgreSQL's JIT can spend longer compiling
    # them than running them (measured: 44 ms to compile an 8 ms metrics update).
    kwargs.setdefault("connect_args", {"options": "-c jit=off"})
    engine = create_engine(database_url, **kwargs)
    event.listen(engine, "checkout", _refuse_hung_up_connection)
    return engine


def _refuse_hung_up_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no pooled connection the server has already closed (a restart, a terminated backend).

    An idle pooled connection has nothing to read: if its socket is readable, the server
    has sent its goodbye (FATAL "terminating connection") or closed it. Asking the kernel
    costs one poll() and no round trip, where pool_pre_ping would send a query on every
    checkout. DisconnectionError makes the pool drop this connection and check out (or open)
    another, so the request that comes after a database restart succeeds instead of
    answering 500. A connection cut without a word (a dead network) is still found only by
    the query that fails on it.
    """
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return
    try:
        poller = select.poll()
        poller.register(fileno(), select.POLLIN | select.POLLPRI)
        hung_up = bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket left at all
        hung_up = True
    if hung_up:
        raise exc.DisconnectionError("the database closed this pooled connection")


def _strict_json_dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers queue instead of failing.

    With pysqlite's default deferred transactions, a transaction that read first and
    writes later fails at once with "database is locked" when another process wrote in
    between; taking the write lock up front makes it wait (busy timeout) instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # reading_outside_transactions: each statement reads what is committed, locking nothing
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine, job_sink: JobSink | None = None) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        jobs = session.info.pop("deferred_jobs", None)
        if jobs and job_sink is not None:
            job_sink(jobs)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("deferred_jobs", None)

    return factory


@contextmanager
def reading_outside_transactions(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only, each statement seeing what is committed, in no transaction of its own.

    For a port asked in the middle of its caller's transaction (the templates port while a
    walk routes a send): on SQLite a transaction here would begin by waiting for the write
    lock (BEGIN IMMEDIATE, above), which this very thread holds in the caller's transaction.
    """
    bind = sessions.kw["bind"]
    with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection, \
            Session(connection) as session:
        yield session


def defer(session: Session, name: JobName, ids: Iterable[int]) -> None:
    """Run job `name` over `ids` once this session's transaction has committed."""
    ids = tuple(ids)
    if ids:
        session.info.setdefault("deferred_jobs", []).append(DeferredJob(name, ids))


def rows_json(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON text, the parameter jsonb_to_recordset unpacks into a multi-row statement.

    orjson writes a 1,000-row batch ten times faster than the stdlib (which was a fifth of
    a batch ingest's CPU), datetimes as ISO 8601 with their offset. A naive datetime is
    refused, as store.base.UtcDateTime refuses it: the rows of a batch are made by one piece of
    code from one clock, so the first row's stand for all (checking every value cost more
    than the encoding). What orjson cannot write (integers beyond 64 bits, which a shop's
    JSON may hold; non-string keys) goes through the stdlib.
    """
    for value in rows[0].values() if rows else ():
        if isinstance(value, datetime):
            _iso(value)
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:
        return json.dumps(rows, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
