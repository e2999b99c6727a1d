"""The SQL helpers of engine/store/dialect.py, on the database the suite runs on, and the rule that
no other module forks on the database.

The helper tests run in one transaction on a table of their own, rolled back at the end:
on SQLite by default, on PostgreSQL with RAPPORT_TEST_DATABASE_URL (tests/conftest.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, UniqueConstraint, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.store.base import Id, Json, UtcDateTime
from engine.store.db import make_engine
from engine.store.dialect import (
    close_asynchronous_commit,
    has_asynchronous_commit,
    insert_rows,
    insert_rows_in_order,
    json_merge,
    json_type_in,
    one_of,
    open_asynchronous_commit,
    seconds_between,
    server_started_at,
    upsert,
    utc_date_text,
    without_jit,
)

ROOT = Path(__file__).resolve().parents[3]
DIALECT_MODULE = ROOT / "engine" / "store" / "dialect.py"
DATABASE_NAMES = {"postgresql", "sqlite"}


def forks_on_the_database(source: str) -> list[tuple[int, str]]:
    """(line, what) for each place in `source` that asks which database runs.

    Reading `<x>.dialect.name`, any name `dialect_name`, and comparing anything with
    "postgresql" or "sqlite" (==, !=, in, not in) are forks. Left alone, on purpose:
    - declarations SQLAlchemy reads when it writes DDL or binds a value, such as
      `BigInteger().with_variant(Integer(), "sqlite")`, `JSON().with_variant(JSONB(),
      "postgresql")`, `postgresql_where=` / `sqlite_where=` and `.ddl_if(dialect=
      "postgresql")` in engine/store/models.py: they branch no Python code, SQLAlchemy
      picks the variant when it compiles, and they belong with the column or index they
      describe (migrations are generated from the models);
    - `database_url.startswith("sqlite")` in engine/settings.py and engine/store/db.py:
      they decide how to connect (a local file needs no shared SECRET_KEY; SQLite gets
      its pragmas and BEGIN IMMEDIATE, a server its pool), not what SQL to write, and run
      before any dialect exists;
    - the handover's `connection.dialect.is_disconnect(...)`: SQLAlchemy's judgement of a
      driver error, whatever the database.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Attribute)
                and node.value.attr == "dialect"):
            found.append((node.lineno, "reads .dialect.name"))
        elif isinstance(node, ast.Name | ast.Attribute | ast.arg | ast.keyword) and "dialect_name" in (
                getattr(node, "id", None), getattr(node, "attr", None), getattr(node, "arg", None)):
            found.append((node.lineno, "uses dialect_name"))
        elif isinstance(node, ast.Compare) and _names_a_database([node.left, *node.comparators]):
            found.append((node.lineno, "compares with a database's name"))
    return sorted(found)


def _names_a_database(nodes: list[ast.expr]) -> bool:
    for node in nodes:
        values = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
        if any(isinstance(value, ast.Constant) and value.value in DATABASE_NAMES for value in values):
            return True
    return False


def test_no_module_but_the_dialect_module_asks_which_database_runs() -> None:
    """Every PostgreSQL-or-SQLite fork of engine/, webapp/ and workers/ lives in engine/store/dialect.py."""
    forks = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for folder in ("engine", "webapp", "workers")
        for path in sorted((ROOT / folder).rglob("*.py")) if path != DIALECT_MODULE
        for line, what in forks_on_the_database(path.read_text())
    ]
    assert forks == [], "use or add a helper in engine/store/dialect.py:\n" + "\n".join(forks)


def test_the_rule_finds_each_kind_of_fork_and_passes_declarations() -> None:
    """The check is not vacuous: name reads and comparisons are found, with_variant declarations are not."""
    source = (
        'if session.get_bind().dialect.name == "postgresql": pass\n'
        "dialect_name = engine.url.get_backend_name()\n"
        'if kind in ("sqlite", "mysql"): pass\n'
        'Id = BigInteger().with_variant(Integer(), "sqlite")\n'
    )
    assert [line for line, _ in forks_on_the_database(source)] == [1, 1, 2, 3]


metadata = MetaData()
probes = Table(
    "dialect_probes", metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("doc", Json),
    Column("at", UtcDateTime()),
    Column("later", UtcDateTime()),
    UniqueConstraint("name"),
)


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """One transaction with the probe table in it, rolled back: nothing stays."""
    with Session(db_engine) as session:
        metadata.create_all(session.connection())
        yield session
        session.rollback()


def add(session: Session, *names: str, **values: object) -> None:
    session.execute(probes.insert(), [{"name": name, **values} for name in names])


def test_one_of_matches_each_calls_own_values_from_one_statement(session: Session) -> None:
    """One statement object, executed with other lists, finds the rows of each list (nothing is kept from the first)."""
    add(session, "a", "b", "c")
    by_name = {name: id_ for id_, name in session.execute(select(probes.c.id, probes.c.name))}

    def names(ids: list[int]) -> list[str]:
        return list(session.scalars(select(probes.c.name).where(one_of(probes.c.id, ids)).order_by(probes.c.name)))

    assert names([by_name["a"], by_name["c"]]) == ["a", "c"]
    assert names([by_name["b"]]) == ["b"]
    assert list(session.scalars(select(probes.c.id).where(one_of(probes.c.name, ["c"])))) == [by_name["c"]]
    named = select(probes.c.name).where(one_of(probes.c.id, name="ids")).order_by(probes.c.name)
    assert list(session.scalars(named, {"ids": [by_name["b"], by_name["c"]]})) == ["b", "c"]
    assert list(session.scalars(named, {"ids": [by_name["a"]]})) == ["a"]
    assert list(session.scalars(select(probes.c.name).where(~one_of(probes.c.name, ["a", "b"])))) == ["c"]


def test_one_of_is_one_array_parameter_on_postgresql_and_an_in_list_on_sqlite() -> None:
    """PostgreSQL gets `= ANY(array)` (one parameter however many ids: a statement psycopg parses once)."""
    statement = select(probes.c.id).where(one_of(probes.c.id, name="ids"))
    assert "dialect_probes.id = ANY (%(ids)s::BIGINT[])" in str(statement.compile(dialect=postgresql.dialect()))
    assert "dialect_probes.id IN (__[POSTCOMPILE_ids])" in str(statement.compile(dialect=sqlite.dialect()))
    by_text = select(probes.c.id).where(one_of(probes.c.name, ["a"]))
    assert "= ANY (%(param_1)s::VARCHAR[])" in str(by_text.compile(dialect=postgresql.dialect()))


def test_json_merge_puts_the_patchs_keys_into_the_document(session: Session) -> None:
    """A key of the patch is added or replaced; the document's other keys stay."""
    add(session, "a", doc={"kept": 1, "replaced": "old"})
    patch = select(probes.c.doc).where(probes.c.name == "b").scalar_subquery()
    add(session, "b", doc={"replaced": "new", "added": [1, 2]})
    session.execute(update(probes).where(probes.c.name == "a").values(doc=json_merge(probes.c.doc, patch)))
    assert session.scalar(select(probes.c.doc).where(probes.c.name == "a")) == {
        "kept": 1, "replaced": "new", "added": [1, 2]}


@pytest.mark.parametrize(("key", "kinds", "expected"), [
    ("total", ["number"], True), ("total", ["number", "string"], True), ("total", ["string"], False),
    ("text", ["string"], True), ("flag", ["number", "string"], False), ("flag", ["boolean"], True),
    ("nested", ["object"], True), ("list", ["array"], True), ("nothing", ["null"], True),
    ("missing", ["number", "string", "null"], False), ("odd key.with dot", ["number"], True),
])
def test_json_type_in_tells_numbers_and_text_from_booleans(session: Session, key: str, kinds: list[str],
                                                            expected: bool) -> None:
    """A JSON true is no number on either database (SQLite's json_extract would read it as 1)."""
    add(session, "a", doc={"total": 59.9, "text": "59.90", "flag": True, "nested": {}, "list": [],
                           "nothing": None, "odd key.with dot": 3})
    found = session.scalar(select(json_type_in(probes.c.doc, key, kinds)).where(probes.c.name == "a"))
    assert bool(found) is expected


def test_json_type_in_refuses_a_kind_json_does_not_have() -> None:
    """A misspelt kind is an error when the statement is built, not a condition that never holds."""
    with pytest.raises(ValueError, match="integer"):
        json_type_in(probes.c.doc, "total", ["integer"])


def test_seconds_between_is_exact_to_the_millisecond(session: Session) -> None:
    """1.5 s apart reads 1.5, not SQLite's raw julianday difference of 1.49997."""
    start = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    add(session, "a", at=start, later=start + timedelta(seconds=1, milliseconds=500))
    assert float(session.scalar(select(seconds_between(probes.c.at, probes.c.later)))) == 1.5


def test_utc_date_text_is_the_date_in_utc_not_where_the_time_was_given(session: Session) -> None:
    """23:30 in New York on 1 November is 2 November in UTC: the key a lapse that late is stored under."""
    add(session, "a", at=datetime(2030, 11, 1, 23, 30, tzinfo=timezone(timedelta(hours=-4))))
    assert session.scalar(select(utc_date_text(probes.c.at))) == "2030-11-02"


def test_an_offset_time_is_stored_as_its_utc_instant(session: Session) -> None:
    """09:00 in Berlin (+01:00) is stored, compared and read back as 08:00 UTC."""
    add(session, "a", at=datetime(2030, 1, 7, 9, 0, tzinfo=timezone(timedelta(hours=1))))
    assert session.scalar(select(probes.c.at)) == datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
    assert session.scalar(select(probes.c.name).where(probes.c.at < datetime(2030, 1, 7, 8, 30, tzinfo=UTC))) == "a"


def test_insert_rows_skips_taken_keys_and_returns_only_the_new_rows(session: Session) -> None:
    """ON CONFLICT DO NOTHING ... RETURNING over many rows, with one statement built once per shape."""
    add(session, "taken")
    rows = [{"name": name, "doc": {"n": n}} for n, name in enumerate(["new", "taken", "other"])]
    insert = insert_rows(session, probes, rows)
    assert insert_rows(session, probes, rows[:1]).statement is insert.statement  # a key to cache on
    returned = session.execute(insert.statement.on_conflict_do_nothing(index_elements=["name"])
                               .returning(probes.c.name, probes.c.doc), insert.parameters)
    assert sorted(returned) == [("new", {"n": 0}), ("other", {"n": 2})]


def test_insert_rows_in_order_numbers_the_rows_in_the_order_given(session: Session) -> None:
    """Ids follow the order of the rows (a timeline lists lines of one instant as they were written)."""
    names = ["third", "first", "second", "a", "z"]
    insert_rows_in_order(session, probes, [{"name": name, "at": datetime(2030, 1, 7, tzinfo=UTC)} for name in names])
    assert list(session.scalars(select(probes.c.name).order_by(probes.c.id))) == names


def test_upsert_updates_the_row_that_holds_the_key(session: Session) -> None:
    """ON CONFLICT DO UPDATE, spelt for the session's database."""
    add(session, "a", doc={"v": 1})
    statement = upsert(session, probes).values(name="a", doc={"v": 2})
    session.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"doc": statement.excluded.doc}))
    assert session.scalar(select(probes.c.doc).where(probes.c.name == "a")) == {"v": 2}


def test_a_database_server_says_when_it_started_and_a_file_has_no_start(session: Session, db_engine: Engine) -> None:
    """PostgreSQL's start time is in the past; SQLite, a file, has none (and commits nothing asynchronously)."""
    started = server_started_at(session)
    assert (started is None) is not has_asynchronous_commit(db_engine)
    assert started is None or started < datetime.now(UTC)


def test_without_jit_plans_the_rest_of_the_transaction_without_it(session: Session, db_engine: Engine) -> None:
    """PostgreSQL runs the transaction with jit off; SQLite, which has no JIT, runs on."""
    without_jit(session)
    assert session.scalar(text("SHOW jit") if has_asynchronous_commit(db_engine) else select(literal("off"))) == "off"


def test_an_asynchronous_commit_connection_goes_back_to_the_pool_waiting_for_the_disk(database_url: str) -> None:
    """synchronous_commit is off while the hand-over holds the connection, and on again once it is given back."""
    engine = make_engine(database_url, pool_size=1) if not database_url.startswith("sqlite") else None
    if engine is None or not has_asynchronous_commit(engine):
        pytest.skip("SQLite commits to a file: there is no asynchronous commit")
    try:
        connection = open_asynchronous_commit(engine)
        assert connection.scalar(text("SHOW synchronous_commit")) == "off"
        close_asynchronous_commit(connection)
        with engine.connect() as again:  # the pool's one connection
            assert again.scalar(text("SHOW synchronous_commit")) == "on"
    finally:
        engine.dispose()
