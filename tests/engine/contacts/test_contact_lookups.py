"""Inbound messages find their sender through an index, however many contacts a workspace has."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import Contact
from engine.tracking.inbound import contacts_at
from tests.conftest import FakeClock, Shop

CONTACTS = 2000


def add_contacts(db_engine: Engine, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """A workspace of 2,000 contacts, each with a phone and a Telegram, WhatsApp and Viber id."""
    with sessions.begin() as session:
        session.execute(insert(Contact), [
            {"workspace_id": shop.id, "external_id": f"c{n}", "phone": f"+4915100{n:05d}", "created_at": clock(),
             "updated_at": clock(), "attributes": {}, "consent": {},
             "messenger_ids": {"telegram": str(700000 + n), "whatsapp": f"4915100{n:05d}", "viber": f"v{n}=="}}
            for n in range(CONTACTS)])
    with db_engine.connect() as conn:
        conn.execute(text("ANALYZE contacts" if db_engine.dialect.name == "postgresql" else "ANALYZE"))
        conn.commit()


def plan(db_engine: Engine, shop: Shop, channel: str, sender: str) -> str:
    """The query plan of the lookup that contacts_at runs."""
    captured: list[tuple[str, Any]] = []
    with Session(db_engine) as session:
        def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            captured.append((statement, parameters))
        event.listen(db_engine, "before_cursor_execute", keep)
        try:
            contacts_at(session, shop.id, channel, sender)
        finally:
            event.remove(db_engine, "before_cursor_execute", keep)
        statement, parameters = captured[-1]
        explain = "EXPLAIN " if db_engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(explain + statement, parameters)
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def test_each_channel_finds_its_sender_by_an_index(db_engine: Engine, sessions: sessionmaker[Session],
                                                    shop: Shop, clock: FakeClock) -> None:
    add_contacts(db_engine, sessions, shop, clock)
    postgres = db_engine.dialect.name == "postgresql"

    with sessions() as session:
        assert [c.external_id for c in contacts_at(session, shop.id, "sms", "+491510001234")] == ["c1234"]
        assert [c.external_id for c in contacts_at(session, shop.id, "telegram", "701999")] == ["c1999"]
        assert [c.external_id for c in contacts_at(session, shop.id, "viber", "v7==")] == ["c7"]
        assert [c.external_id for c in contacts_at(session, shop.id, "whatsapp", "491510000042")] == ["c42"]

    assert "ix_contacts_phone" in plan(db_engine, shop, "sms", "+491510001234")
    if postgres:  # SQLite cannot match an expression index against a bound JSON path
        for channel, sender in (("telegram", "701999"), ("viber", "v7=="), ("whatsapp", "491510000042")):
            used = plan(db_engine, shop, channel, sender)
            assert f"ix_contacts_{channel}_id" in used, used
