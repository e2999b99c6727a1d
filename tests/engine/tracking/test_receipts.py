"""Receipts: stored once, applied only forward, dead addresses suppressed, engagement as events."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.ports import DeliveryEvent
from engine.store.models import Contact, Event, JournalEntry, Message, MessageReceipt, Suppression
from engine.tracking.receipts import apply_deliveries
from tests.conftest import FakeClock, Shop


@pytest.fixture
def sent_sms(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> Message:
    """An SMS the provider accepted as SM-1."""
    with sessions.begin() as session:
        contact = Contact(workspace_id=shop.id, external_id="c-1", phone="+4915112345678",
                          consent={"sms": "opted_in"}, created_at=clock(), updated_at=clock())
        session.add(contact)
        session.flush()
        message = Message(workspace_id=shop.id, contact_id=contact.id, channel="sms", template="abandoned_cart",
                          to_address="+4915112345678", context={}, status="sent", attempts=1,
                          scheduled_at=clock(), sent_at=clock(), provider_id="SM-1", created_at=clock())
        session.add(message)
    return message


def receipt(status: str, key: str, at: datetime, **fields: object) -> DeliveryEvent:
    return DeliveryEvent(channel="sms", status=status, receipt_key=key, occurred_at=at,  # type: ignore[arg-type]
                         provider_id="SM-1", **fields)  # type: ignore[arg-type]


def message_row(sessions: sessionmaker[Session], message_id: int) -> Message:
    with sessions() as session:
        return session.get_one(Message, message_id)


def test_a_delivery_receipt_moves_the_message_and_a_duplicate_changes_nothing(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, sent_sms: Message) -> None:
    """The provider's retry of the same receipt is stored once and applied once."""
    for _ in range(2):
        with sessions.begin() as session:
            results = apply_deliveries(session, shop.id, [receipt("delivered", "SM-1:delivered", clock())],
                                       now=clock())
    assert results[0].duplicate
    message = message_row(sessions, sent_sms.id)
    assert (message.status, message.delivered_at) == ("delivered", clock())
    with sessions() as session:
        assert len(session.scalars(select(MessageReceipt.id).where(MessageReceipt.workspace_id == shop.id)).all()) == 1
        lines = session.scalars(select(JournalEntry.kind).where(JournalEntry.message_id == sent_sms.id)).all()
    assert lines == ["delivered"]


def test_a_late_sent_receipt_after_delivered_is_kept_but_does_not_move_the_message(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, sent_sms: Message) -> None:
    """Out of order: `delivered` first, then `sent` with an earlier time; the status stays delivered."""
    with sessions.begin() as session:
        apply_deliveries(session, shop.id, [receipt("delivered", "k-2", clock() + timedelta(seconds=5)),
                                            receipt("sent", "k-1", clock())], now=clock())
    assert message_row(sessions, sent_sms.id).status == "delivered"
    with sessions() as session:
        applied = dict(session.execute(select(MessageReceipt.receipt_key, MessageReceipt.applied).where(
            MessageReceipt.workspace_id == shop.id)).all())
    assert applied == {"k-2": True, "k-1": False}


def test_an_undeliverable_number_fails_the_message_and_suppresses_the_number(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, sent_sms: Message) -> None:
    """A failure receipt saying the number is gone puts it on the suppression list for SMS."""
    with sessions.begin() as session:
        apply_deliveries(session, shop.id, [receipt("failed", "k-f", clock(), address_dead=True,
                                                    detail="30005 unknown destination")], now=clock())
    assert message_row(sessions, sent_sms.id).status == "failed"
    with sessions() as session:
        suppression = session.scalars(select(Suppression).where(Suppression.workspace_id == shop.id)).one()
    assert (suppression.channel, suppression.address) == ("sms", "+4915112345678")
    assert "30005" in suppression.reason


def test_a_click_records_an_event_for_journeys_and_implies_the_open(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, sent_sms: Message) -> None:
    """message_clicked lands on the contact with the URL; opened_at is set even without a pixel hit."""
    with sessions.begin() as session:
        apply_deliveries(session, shop.id, [receipt("clicked", "click:1:abc", clock(),
                                                    detail="https://shop.example/cart")], now=clock())
    message = message_row(sessions, sent_sms.id)
    assert (message.status, message.opened_at, message.clicked_at) == ("clicked", clock(), clock())
    with sessions() as session:
        event = session.scalars(select(Event).where(Event.workspace_id == shop.id)).one()
    assert event.type == "message_clicked" and event.contact_id == sent_sms.contact_id
    assert event.properties["url"] == "https://shop.example/cart"
    assert event.properties["message_id"] == sent_sms.id


def test_a_receipt_from_another_workspace_touches_nothing(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, sent_sms: Message) -> None:
    """Receipts are scoped: a provider id from one workspace is not found from another."""
    from engine.workspaces.accounts import create_workspace

    with sessions.begin() as session:
        other = create_workspace(session, "Other", now=clock())
    with sessions.begin() as session:
        [result] = apply_deliveries(session, other.workspace_id, [receipt("delivered", "x", clock())], now=clock())
    assert result.message_id is None
    assert message_row(sessions, sent_sms.id).status == "sent"
