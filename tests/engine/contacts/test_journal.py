"""The journal's structured fields, written by the real services: what is counted sits in columns
beside the sentence, and reads the same as migration 0009 reads the sentences of older lines."""

from __future__ import annotations

import importlib.util
import itertools
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts import journal
from engine.contacts.ingest import ingest_events
from engine.journeys.lifecycle import change_status
from engine.journeys.versions import create_journey
from engine.store.models import JournalEntry, Message, Workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from workers.runtime import Runtime

EVENT_NUMBERS = itertools.count(1)
CART = {"items": [{"name": "Mug", "price": 9, "quantity": 1}], "currency": "EUR", "total": 9,
        "recovery_url": "https://shop.example/cart"}
# A VIP exits at once. The others get an email, a second one (over the workspace's cap of one a
# day), an SMS (deferred to the morning for those with a phone, skipped for the others), then a
# split: arm "a" gets a third email (capped too), and both wait an hour for the order (the goal).
DEFINITION = {
    "trigger": {"event": "cart_updated", "key": "cart_id", "filter": {"property": "total", "op": "gte", "value": 5}},
    "goals": [{"event": "order_placed"}],
    "steps": [
        {"type": "condition", "id": "is-vip", "condition": {"attribute": "vip", "value": True},
         "yes": [{"type": "exit", "id": "vip-exit", "reason": "VIPs hear from a person"}],
         "no": [
             {"type": "send", "id": "mail", "channel": "email", "template": "abandoned_cart"},
             {"type": "send", "id": "mail-again", "channel": "email", "template": "abandoned_cart"},
             {"type": "send", "id": "text", "channel": "sms", "template": "abandoned_cart"},
             {"type": "split", "id": "ab", "arms": [
                 {"name": "a", "weight": 1, "steps": [
                     {"type": "send", "id": "after-a", "channel": "email", "template": "abandoned_cart"},
                     {"type": "wait", "id": "linger-a", "hours": 1}]},
                 {"name": "b", "weight": 1, "steps": [{"type": "wait", "id": "linger-b", "hours": 1}]},
             ]}]},
    ],
}
# Night in Auckland when the test clock says 09:00 UTC: inside the SMS quiet hours.
TEXTABLE = {"phone": "+64211234567", "timezone": "Pacific/Auckland", "consent": {"sms": "opted_in"}}


def migration() -> ModuleType:
    """Migration 0009, whose reading of old sentences the writers must agree with."""
    path = Path(__file__).parents[3] / "migrations" / "versions" / "0009_structured_journal.py"
    spec = importlib.util.spec_from_file_location("structured_journal", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cart(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, customer: str, *,
         contact: dict[str, Any] | None = None, **properties: Any) -> None:
    properties = {**CART, "cart_id": f"cart-{customer}", **properties}
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{
            "id": f"evt-{next(EVENT_NUMBERS)}", "type": "cart_updated", "occurred_at": clock().isoformat(),
            "contact": {"external_id": customer, "email": f"{customer}@example.com", **(contact or {})},
            "properties": {name: value for name, value in properties.items() if value is not None}}], now=clock())
    assert result.status == "accepted", result


def order(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, customer: str) -> None:
    with sessions.begin() as session:
        ingest_events(session, shop.id, [{
            "id": f"evt-{next(EVENT_NUMBERS)}", "type": "order_placed", "occurred_at": clock().isoformat(),
            "contact": {"external_id": customer},
            "properties": {"order_id": f"o-{customer}", "cart_id": f"cart-{customer}", "total": 9}}], now=clock())


def lines(sessions: sessionmaker[Session], shop: Shop) -> list[JournalEntry]:
    with sessions() as session:
        return list(session.scalars(select(JournalEntry).where(JournalEntry.workspace_id == shop.id)
                                    .order_by(JournalEntry.id)))


@pytest.fixture
def walked(runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock,
           smtp_server: SmtpServer) -> list[JournalEntry]:
    """A VIP's cart and others' (with a phone or without), one too small, one without its key, an order,
    a cap of one email a day and an archive: most kinds of decision a journey journals."""
    with sessions.begin() as session:
        journey_id = create_journey(session, shop.id, "Cart: split test", DEFINITION, templates=SEED_TEMPLATES,
                                    now=clock()).id
        session.execute(update(Workspace).where(Workspace.id == shop.id).values(
            settings={"frequency_caps": {"email": {"max": 1, "days": 1}}}))
    cart(sessions, shop, clock, "vip", contact={"attributes": {"vip": True}})
    for n in range(4):
        cart(sessions, shop, clock, f"c{n}", contact=TEXTABLE if n % 2 else None)
    cart(sessions, shop, clock, "small", total=1)
    cart(sessions, shop, clock, "nokey", cart_id=None)
    drain(runtime)
    order(sessions, shop, clock, "c1")
    drain(runtime)
    with sessions.begin() as session:
        change_status(session, shop.id, journey_id, "archive", now=clock())
    return lines(sessions, shop)


def test_branches_carry_their_label_and_a_split_its_arm(walked: list[JournalEntry]) -> None:
    """The condition's branch is labelled yes or no; the split's branch names the arm as messages do."""
    branches = {(line.step_id, line.label, line.arm) for line in walked if line.kind == "branch"}
    assert ("is-vip", "yes", None) in branches and ("is-vip", "no", None) in branches
    split = {(label, arm) for step, label, arm in branches if step == "ab"}
    assert split and split <= {("a", "ab:a"), ("b", "ab:b")}


def test_a_message_line_carries_the_arm_of_its_message(walked: list[JournalEntry]) -> None:
    """Each line about a message made in a split arm says which arm; those made before the split say none."""
    about_messages = [line for line in walked if line.message_id is not None]
    assert {line.kind for line in about_messages} >= {"message_scheduled", "sent", "skipped", "message_deferred"}
    for line in about_messages:
        assert line.arm == ("ab:a" if line.step_id == "after-a" else None), (line.kind, line.step_id)


def test_run_exits_say_why_as_a_code_and_a_goal_names_itself(walked: list[JournalEntry]) -> None:
    """An exit step, the goal and the archive each have their code; the goal's label is on both its lines."""
    exits = [(line.reason, line.goal, line.detail) for line in walked if line.kind == "exited"]
    assert ("exit_step", None, "VIPs hear from a person") in exits
    assert ("goal_reached", "order placed", "goal reached: order placed") in exits
    assert ("journey_archived", None, "journey archived") in exits
    assert [line.goal for line in walked if line.kind == "goal"] == ["order placed"]


def test_not_enrolled_and_skipped_lines_carry_their_reason_code(walked: list[JournalEntry]) -> None:
    """A contact kept out, or a message skipped or deferred, says why in a code beside the sentence."""
    reasons = {(line.kind, line.step_id, line.reason) for line in walked if line.reason}
    assert {("not_enrolled", None, "entry_filter"), ("not_enrolled", None, "no_key"),
            ("skipped", "mail-again", "frequency_cap"), ("skipped", "text", "no_address"),
            ("message_deferred", "text", "quiet_hours")} <= reasons


def test_every_line_reads_as_migration_0009_reads_the_same_sentence(walked: list[JournalEntry]) -> None:
    """The columns today's writers fill are what the backfill finds in the sentence of an older line."""
    read = migration().structured_fields
    goals: dict[int | None, str] = {}
    for line in walked:
        expected = {"label": None, "reason": None, "arm": line.arm, "goal": None,
                    **read(line.kind, line.detail, line.step_id)}
        if line.kind == "exited" and line.goal:
            goals[line.run_id] = line.goal
        if line.kind == "goal":
            expected["goal"] = goals.pop(line.run_id, None)
        actual = {"label": line.label, "reason": line.reason, "arm": line.arm, "goal": line.goal}
        assert actual == expected, (line.kind, line.detail)


def test_every_way_of_writing_a_line_fills_every_column_of_the_journal() -> None:
    """The row builder, which the batch insert and the hand-over statement take, names every column but the id."""
    message = Message(workspace_id="ws", contact_id=1, run_id=2, step_id="mail", id=3, arm="ab:a")
    row = journal.message_row(message, journal.JournalKind.SENT, at=datetime(2030, 1, 7, tzinfo=UTC), detail="sent")
    table = {column.name for column in JournalEntry.__table__.columns} - {"id"}
    assert set(row) == set(journal.COLUMNS) == table
    assert (row["kind"], row["arm"], row["message_id"]) == ("sent", "ab:a", 3)
