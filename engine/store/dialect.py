"""Everything that differs between PostgreSQL and SQLite, and the only module that asks which one runs.

Expressions (`one_of`, `json_merge`, `json_type_in`, `seconds_between`, `utc_date_text`)
carry both spellings and are written out when a statement is compiled, so one statement
object serves both databases and can be built once and cached. What cannot wait for
compilation takes the session: an INSERT whose ON CONFLICT clause is each dialect's own
class, rows whose parameters take another shape (one JSON text, or one set per row), a
setting, a server's start, a connection mode. SQLite's spelling is the default, the one
a statement printed without a database shows. Every helper gives each database the SQL
it ran before this module existed; the docstrings say what each gets and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from engine.store.db import rows_json

POSTGRESQL = "postgresql"
_POSTGRESQL_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # to write a type's name


class _PerDatabase(ColumnElement[Any]):
    """An expression spelled one way for PostgreSQL and another for SQLite, chosen at compile time.

    Both spellings are in the cache key (their bound values travel with every execution);
    the compiler writes out the one its database reads.
    """

    __visit_name__ = "per_database"
    inherit_cache = True
    _traverse_internals = [("postgresql_form", InternalTraversal.dp_clauseelement),
                           ("sqlite_form", InternalTraversal.dp_clauseelement)]

    def __init__(self, postgresql_form: ColumnElement[Any], sqlite_form: ColumnElement[Any], type_: Any):
        self.postgresql_form, self.sqlite_form, self.type = postgresql_form, sqlite_form, type_
        self._propagate_attrs = postgresql_form._propagate_attrs or sqlite_form._propagate_attrs

    @property
    def _from_objects(self) -> list[Any]:  # the tables it reads: a SELECT of it alone needs their FROM
        return list(dict.fromkeys([*self.postgresql_form._from_objects, *self.sqlite_form._from_objects]))

    def _negate(self) -> ColumnElement[Any]:
        """NOT of each spelling (`!= ALL(...)`, `NOT IN (...)`), not `(...) = 0` on SQLite."""
        return _PerDatabase(~self.postgresql_form, ~self.sqlite_form, self.type)

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        """Each spelling parenthesised where it would be on its own."""
        postgresql_form, sqlite_form = self.postgresql_form.self_group(against), self.sqlite_form.self_group(against)
        if postgresql_form is self.postgresql_form and sqlite_form is self.sqlite_form:
            return self
        return _PerDatabase(postgresql_form, sqlite_form, self.type)


@compiles(_PerDatabase)
def _compile_for_sqlite(element: _PerDatabase, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.sqlite_form, **kw))


@compiles(_PerDatabase, POSTGRESQL)
def _compile_for_postgresql(element: _PerDatabase, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.postgresql_form, **kw))


def one_of(col: Any, values: Sequence[Any] | None = None, *, name: str | None = None) -> ColumnElement[bool]:
    """`col` is one of `values` (bound now), or of the list passed as parameter `name` at execution.

    PostgreSQL: `col = ANY(<one array parameter>)`. An IN list is a statement of one
    parameter per value: psycopg parses again every statement of more than 50 parameters
    (and each new list length is a new statement), and once the server switches a prepared
    IN list to a generic plan it may compare every row with each parameter (400 ms per
    ingest batch at 30,000 events). The array's element type follows the column: BIGINT
    for integers, VARCHAR (no length) for text. SQLite: `col IN (?, ...)`, expanded per
    list; it has no arrays.
    """
    element = BigInteger() if isinstance(col.type, Integer) else String() if isinstance(col.type, String) else col.type
    if name is None:
        if values is None:
            raise TypeError("one_of needs values, or the name of the parameter that will hold them")
        as_array = col == any_(bindparam(None, list(values), type_=ARRAY(element)))
        as_list = col.in_(list(values))
    else:
        given = None if values is None else list(values)
        as_array = col == any_(bindparam(name, given, type_=ARRAY(element)))
        as_list = col.in_(bindparam(name, given, expanding=True))
    return _PerDatabase(as_array, as_list, Boolean())


def json_merge(document: Any, patch: Any) -> ColumnElement[Any]:
    """`document` with the keys of `patch` put in (both JSON objects).

    PostgreSQL: jsonb `document || patch`, a shallow merge: a key of `patch` replaces
    the document's value whole, a null is stored as null. SQLite: `json_patch(document,
    patch)` (RFC 7396): objects under a shared key are merged in turn, and a null in
    `patch` removes the key. The two agree on patches of flat values that are not null.
    """
    return _PerDatabase(document.op("||")(patch), func.json_patch(document, patch), document.type)


# JSON's kinds, as SQLite's json_type() names them (PostgreSQL's jsonb_typeof() uses the keys).
JSON_KINDS = {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false"),
              "object": ("object",), "array": ("array",), "null": ("null",)}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_type_in(document: Any, key: str, kinds: Sequence[str]) -> ColumnElement[bool]:
    """The value under `key` of the JSON object `document` is of one of `kinds` (keys of JSON_KINDS).

    Ask before reading a value as a number or text: SQLite's json_extract gives true as
    1 and PostgreSQL's ->> gives it as 'true'. A missing key is of no kind. PostgreSQL:
    `jsonb_typeof(document -> key) IN (...)` (the column is jsonb, models.Json). SQLite:
    `json_type(document, '$.key') IN (...)`, whose names are finer (integer and real); its
    JSON path can quote a key but not a double quote inside one, which is refused.
    """
    unknown = set(kinds) - set(JSON_KINDS)
    if unknown or '"' in key:
        raise ValueError(f"not a JSON kind: {sorted(unknown)}" if unknown else f"a key SQLite cannot name: {key}")
    path = f"$.{key}" if _PLAIN_KEY.fullmatch(key) else f'$."{key}"'
    sqlite_kinds = [name for kind in kinds for name in JSON_KINDS[kind]]
    return _PerDatabase(func.jsonb_typeof(document.op("->")(key)).in_(list(kinds)),
                        func.json_type(document, path).in_(sqlite_kinds), Boolean())


def seconds_between(start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds (two timestamp columns or expressions).

    PostgreSQL: `extract(epoch from end - start)`. SQLite keeps datetimes as text, which
    julianday() reads as fractional days, a double whose last digits are noise at this
    magnitude (1.5 s comes out 1.49997): the difference times 86400, rounded to milliseconds.
    """
    return _PerDatabase(func.extract("epoch", end - start),
                        func.round((func.julianday(end) - func.julianday(start)) * literal(86400.0), 3), Float())


def utc_date_text(value: Any) -> ColumnElement[str]:
    """The calendar date of a timestamp in UTC, as 'YYYY-MM-DD' text (a time scan's key for a lapse).

    PostgreSQL: `to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD')`: a timestamptz would be
    written in the session's time zone. SQLite: `substr(value, 1, 10)`: it keeps UTC
    datetimes as text ('2030-11-01 23:30:00.250000'), the date first.
    """
    in_utc = value.op("AT TIME ZONE")(literal("UTC", String))
    return _PerDatabase(func.to_char(in_utc, "YYYY-MM-DD"), func.substr(value, 1, 10), String())


def _is_postgresql(bind: Session | Engine | Connection) -> bool:
    return bool((bind.get_bind() if isinstance(bind, Session) else bind).dialect.name == POSTGRESQL)


def upsert(session: Session, target: Any) -> Any:
    """INSERT into `target` (a table or mapped class) that takes ON CONFLICT DO NOTHING / DO UPDATE.

    SQLAlchemy spells ON CONFLICT in each dialect's own Insert class (postgresql.insert
    or sqlite.insert; SQLite >= 3.24), so this one is picked by the session's database.
    """
    return postgresql.insert(target) if _is_postgresql(session) else sqlite.insert(target)


class RowsInsert(NamedTuple):
    """A multi-row INSERT and what to execute it with: `session.execute(statement, parameters)`."""

    statement: Any  # built once per database, table and columns: a key to cache what is built on it
    parameters: Any


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> RowsInsert:
    """INSERT `rows` (dicts with the same keys) into `table`, with one statement.

    The statement takes ON CONFLICT and RETURNING: add them on it. It is the same object
    for every call with the same database, table and keys, so what is built on it can be
    cached by it; a Core statement, whose rows come back as tuples (wrap it in
    `select(Model).from_statement(...)` for objects). Never `.values(rows)`: that is a new
    statement of rows x columns bound parameters on every call, which SQLAlchemy compiles
    afresh and psycopg parses again (~0.5 ms per row). PostgreSQL: `INSERT ... SELECT ...
    FROM jsonb_to_recordset(:rows)`, the rows as one JSON parameter (db.rows_json), whose
    keys name the columns. SQLite: a plain INSERT executed with one parameter set per row
    (SQLAlchemy's insertmanyvalues).
    """
    names = tuple(rows[0])
    if _is_postgresql(session):
        return RowsInsert(_recordset_insert(table, names), {"rows": rows_json(rows)})
    return RowsInsert(_sqlite_insert(table), rows)


@cache
def _recordset_insert(table: Table, names: tuple[str, ...]) -> Any:
    source = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=String), JSONB))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(with_types=True)
    )
    return postgresql.insert(table).from_select(list(names), select(*(source.c[name] for name in names)))


@cache
def _sqlite_insert(table: Table) -> Any:  # one object per table: a key to cache on, as _recordset_insert's
    return sqlite.insert(table)


def insert_rows_in_order(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` into `table` with one statement, their ids increasing in the order given.

    For rows read back in id order (the journal: lines of one instant in the order they
    were written). PostgreSQL: the rows as one JSON parameter read `WITH ORDINALITY` and
    inserted `ORDER BY` their place; a column definition list is allowed with ordinality
    only inside ROWS FROM, which SQLAlchemy does not write, hence the text. SQLite: one
    parameter set per row, executed in order.
    """
    if _is_postgresql(session):
        session.execute(_ordered_recordset_insert(table, tuple(rows[0])), {"rows": rows_json(rows)})
    else:
        session.execute(_sqlite_insert(table), rows)


@cache
def _ordered_recordset_insert(table: Table, names: tuple[str, ...]) -> Any:
    listed = ", ".join(names)
    types = ", ".join(f"{name} {_recordset_type(table.c[name].type)}" for name in names)
    return text(
        f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM ROWS FROM "
        f"(jsonb_to_recordset(CAST(:rows AS jsonb)) AS ({types})) WITH ORDINALITY AS r({listed}, n) ORDER BY n"
    )


_RECORDSET_TYPES = ((Integer, "bigint"), (String, "varchar"), (Boolean, "boolean"), (Float, "double precision"),
                    (Numeric, "numeric"), (JSON, "jsonb"))


def _recordset_type(type_: Any) -> str:
    """The PostgreSQL type a JSON value is read as before it is stored (the column's own type casts it)."""
    impl = getattr(type_, "impl", type_)
    if isinstance(impl, DateTime):
        return "timestamptz" if impl.timezone else "timestamp"
    named = [name for kind, name in _RECORDSET_TYPES if isinstance(impl, kind)]
    return named[0] if named else str(impl.compile(dialect=_POSTGRESQL_DIALECT))


def without_jit(session: Session) -> None:
    """No just-in-time compilation of queries for the rest of this transaction.

    PostgreSQL: `SET LOCAL jit = off`. Its planner may price a statement past
    jit_above_cost and spend longer compiling it than running it (44 ms to compile a
    metrics update that runs in 8 ms). SQLite has no JIT: nothing to do.
    """
    if _is_postgresql(session):
        session.execute(text("SET LOCAL jit = off"))


def server_started_at(session: Session) -> datetime | None:
    """When the database server last started; None for a database without a server (SQLite).

    PostgreSQL: `pg_postmaster_start_time()`. A commit made without waiting for the disk
    (asynchronous commit) may have been lost if the server restarted after it.
    """
    if not _is_postgresql(session):
        return None
    return session.scalar(select(func.pg_postmaster_start_time()))


def has_asynchronous_commit(bind: Engine) -> bool:
    """Whether `bind` can commit without waiting for the disk, and run several writes as one statement.

    PostgreSQL: yes (`synchronous_commit = off`; data-modifying WITH). A crash of the
    server itself may lose what was committed in its last fraction of a second; see
    server_started_at. SQLite: no (a commit is a file write; no writes inside WITH).
    """
    return _is_postgresql(bind)


def open_asynchronous_commit(bind: Engine) -> Connection:
    """An autocommit connection whose commits do not wait for the disk (if has_asynchronous_commit).

    Saves the fdatasync of each commit (about 1.4 ms on these machines). Give it back with
    close_asynchronous_commit, which restores the setting for the pool's next user.
    """
    connection = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.execute(text("SET synchronous_commit TO off"))
    return connection


def close_asynchronous_commit(connection: Connection) -> None:
    """Restore waiting for the disk and give the connection back to the pool."""
    try:
        connection.execute(text("RESET synchronous_commit"))
    finally:
        connection.close()
