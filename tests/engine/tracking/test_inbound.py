"""Inbound messages become message_received events; STOP, /start and /stop do what they say."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.delivery.ports import DeliveryEvent, InboundMessage, WebhookBatch
from engine.links.messenger import start_token
from engine.store.models import Contact, Event, JournalEntry, Message
from engine.tracking.inbound import InboundOutcome, keyword, read_command, receive
from tests.conftest import FakeClock, Shop

SECRET = "test-secret-key"
PHONE = "+4915112345678"


def add_contact(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, external_id: str,
                **fields: Any) -> int:
    """A contact as the shop sends it, through the events API's ingest."""
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{
            "id": f"evt-{external_id}", "type": "contact_updated",
            "contact": {"external_id": external_id, **fields}}], now=clock())
        assert result.id is not None and result.contact_id is not None
        return result.contact_id


def inbound(channel: str, sender: str, text: str, key: str, at: datetime, name: str | None = None) -> InboundMessage:
    return InboundMessage(channel=channel, sender=sender, text=text, receipt_key=key, occurred_at=at, sender_name=name)


def deliver(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *messages: InboundMessage,
            deliveries: list[DeliveryEvent] | None = None) -> InboundOutcome:
    with sessions.begin() as session:
        return receive(session, shop.id, WebhookBatch(deliveries=deliveries or [], inbound=list(messages)),
                       now=clock(), link_secret=SECRET)


def contact(sessions: sessionmaker[Session], contact_id: int) -> Contact:
    with sessions() as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def contact_by_external_id(sessions: sessionmaker[Session], shop: Shop, external_id: str) -> Contact | None:
    with sessions() as session:
        return session.scalar(select(Contact).where(Contact.workspace_id == shop.id,
                                                    Contact.external_id == external_id))


def received_events(sessions: sessionmaker[Session], shop: Shop) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.workspace_id == shop.id,
                                                        Event.type == "message_received").order_by(Event.id)))


def journal(sessions: sessionmaker[Session], contact_id: int) -> list[tuple[str, str | None]]:
    with sessions() as session:
        return [(e.kind, e.detail) for e in session.scalars(
            select(JournalEntry).where(JournalEntry.contact_id == contact_id).order_by(JournalEntry.id))]


def test_an_sms_reply_becomes_a_message_received_event_on_the_contact(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """The event carries channel, text, keyword, sender and the provider's id; last_inbound_at is stamped."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    outcome = deliver(sessions, shop, clock, inbound("sms", PHONE, "  Status? ", "SM1", clock()))
    [event] = received_events(sessions, shop)
    assert outcome.event_ids == [event.id] and outcome.duplicates == 0
    assert event.contact_id == ada and event.source == "sms" and event.external_id == "inbound:sms:SM1"
    assert event.properties == {"channel": "sms", "text": "  Status? ", "keyword": "status", "sender": PHONE,
                                "provider_message_id": "SM1"}
    assert contact(sessions, ada).last_inbound_at == {"sms": clock().isoformat()}


def test_the_same_message_delivered_twice_makes_one_event(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """A provider's retry finds the event by its receipt key and changes nothing."""
    add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    deliver(sessions, shop, clock, inbound("sms", PHONE, "STOP", "SM1", clock()))
    clock.advance(minutes=5)
    again = deliver(sessions, shop, clock, inbound("sms", PHONE, "STOP", "SM1", clock()))
    assert again.event_ids == [] and again.duplicates == 1
    assert len(received_events(sessions, shop)) == 1


def test_the_evaluation_job_is_deferred_until_commit(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """Journeys see the event only after it is committed (engine.store.db.defer)."""
    add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    with sessions.begin() as session:
        outcome = receive(session, shop.id, WebhookBatch(inbound=[inbound("sms", PHONE, "hi", "SM1", clock())]),
                          now=clock())
        [job] = session.info["deferred_jobs"]
        assert job.name == "evaluate_events" and list(job.ids) == outcome.event_ids


@pytest.mark.parametrize("text", ["STOP", " stop ", "Unsubscribe", "cancel", "END", "quit", "StopAll", "СТОП",
                                  "Отписаться"])
def test_stop_keywords_opt_the_sender_out_of_sms(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, text: str) -> None:
    """Each keyword, in any case and with spaces around it, opts out; the event and the journal say so."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE, consent={"sms": "opted_in", "email": "opted_in"})
    deliver(sessions, shop, clock, inbound("sms", PHONE, text, "SM1", clock()))
    assert contact(sessions, ada).consent == {"sms": "opted_out", "email": "opted_in"}
    [event] = received_events(sessions, shop)
    assert event.properties["command"] == "stop"
    assert ("consent_changed", f"opted out of sms by {text.strip()}") in journal(sessions, ada)


def test_start_opts_back_in_and_a_sentence_with_stop_in_it_is_no_command(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """Only the whole text is a keyword: "please stop by" is an ordinary message."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE, consent={"sms": "opted_out"})
    deliver(sessions, shop, clock, inbound("sms", PHONE, "please stop by", "SM1", clock()))
    assert contact(sessions, ada).consent == {"sms": "opted_out"}
    deliver(sessions, shop, clock, inbound("sms", PHONE, "Старт", "SM2", clock()))
    assert contact(sessions, ada).consent == {"sms": "opted_in"}
    assert [e.properties.get("command") for e in received_events(sessions, shop)] == [None, "start"]


def test_stop_silences_every_contact_with_that_number(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """Two contacts share a phone: both are opted out; the event goes to the older one."""
    first = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    second = add_contact(sessions, shop, clock, "cust-2", phone=PHONE)
    deliver(sessions, shop, clock, inbound("sms", PHONE, "STOP", "SM1", clock()))
    assert contact(sessions, first).consent["sms"] == contact(sessions, second).consent["sms"] == "opted_out"
    assert received_events(sessions, shop)[0].contact_id == first


def test_an_unknown_sender_gets_a_contact_so_the_reply_is_kept(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """sms: a contact "sms:<number>" with that phone; telegram: one holding the chat id; names kept."""
    deliver(sessions, shop, clock, inbound("sms", PHONE, "who is this?", "SM1", clock()),
            inbound("telegram", "777", "hello", "update:1", clock(), name="Grace"))
    by_sms = contact_by_external_id(sessions, shop, f"sms:{PHONE}")
    by_chat = contact_by_external_id(sessions, shop, "telegram:777")
    assert by_sms is not None and by_sms.phone == PHONE and by_sms.messenger_ids == {}
    assert by_chat is not None and by_chat.messenger_ids == {"telegram": "777"} and by_chat.first_name == "Grace"
    assert [e.contact_id for e in received_events(sessions, shop)] == [by_sms.id, by_chat.id]
    assert journal(sessions, by_chat.id)[0] == ("contact_created", "an unknown telegram sender wrote in")
    # The next message from that chat finds the same contact.
    deliver(sessions, shop, clock, inbound("telegram", "777", "anyone?", "update:2", clock()))
    assert received_events(sessions, shop)[-1].contact_id == by_chat.id


def test_a_whatsapp_sender_is_found_by_phone_and_opens_the_24_hour_window(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """WhatsApp ids are numbers without "+": "+<wa id>" matches the contact's phone."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    written = clock() - timedelta(seconds=30)
    deliver(sessions, shop, clock, inbound("whatsapp", PHONE[1:], "status", "wamid.1", written))
    assert received_events(sessions, shop)[0].contact_id == ada
    assert contact(sessions, ada).last_inbound_at == {"whatsapp": written.isoformat()}


def test_last_inbound_at_only_moves_forward(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """A late retry of an older message must not move the WhatsApp window back (or reopen it)."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    deliver(sessions, shop, clock, inbound("whatsapp", PHONE[1:], "new", "wamid.2", clock()))
    deliver(sessions, shop, clock, inbound("whatsapp", PHONE[1:], "old", "wamid.1", clock() - timedelta(hours=3)))
    assert contact(sessions, ada).last_inbound_at == {"whatsapp": clock().isoformat()}
    clock.advance(hours=1)
    deliver(sessions, shop, clock, inbound("whatsapp", PHONE[1:], "in the future", "wamid.3",
                                           clock() + timedelta(days=1)))
    assert contact(sessions, ada).last_inbound_at == {"whatsapp": clock().isoformat()}  # never later than now


def test_start_with_a_signed_token_links_the_chat_to_the_contact(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """The chat id lands in messenger_ids, Telegram consent is opted in; the earlier holder lets go."""
    ada = add_contact(sessions, shop, clock, "cust-1", email="ada@example.com")
    deliver(sessions, shop, clock, inbound("telegram", "555", "hi", "update:1", clock()))  # before linking
    token = start_token(SECRET, shop.id, ada)
    deliver(sessions, shop, clock, inbound("telegram", "555", f"/start {token}", "update:2", clock()))
    linked = contact(sessions, ada)
    assert linked.messenger_ids == {"telegram": "555"} and linked.consent == {"telegram": "opted_in"}
    assert linked.last_inbound_at == {"telegram": clock().isoformat()}
    placeholder = contact_by_external_id(sessions, shop, "telegram:555")
    assert placeholder is not None and placeholder.messenger_ids == {}
    event = received_events(sessions, shop)[-1]
    assert event.contact_id == ada and event.properties["command"] == "start" and event.properties["linked"] is True
    assert ("messenger_linked", "linked telegram chat 555") in journal(sessions, ada)
    # From now on the chat's messages are the contact's, and /stop opts out of Telegram.
    deliver(sessions, shop, clock, inbound("telegram", "555", "/stop", "update:3", clock()))
    assert received_events(sessions, shop)[-1].contact_id == ada
    assert contact(sessions, ada).consent == {"telegram": "opted_out"}
    assert ("consent_changed", "opted out of telegram by /stop") in journal(sessions, ada)


@pytest.mark.parametrize("forge", ["tampered", "other_workspace", "garbage"])
def test_a_start_token_that_does_not_verify_links_nothing(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, forge: str) -> None:
    """Decision: the chat is not linked; the message is kept on an unknown-sender contact, journalled."""
    ada = add_contact(sessions, shop, clock, "cust-1", email="ada@example.com")
    token = start_token(SECRET, shop.id, ada)
    token = {"tampered": token[:-2] + ("AA" if token[-2:] != "AA" else "BA"),
             "other_workspace": start_token(SECRET, "ws_other", ada), "garbage": "nonsense"}[forge]
    deliver(sessions, shop, clock, inbound("viber", "vU1==", f"/start {token}", "message:1:1", clock()))
    assert contact(sessions, ada).messenger_ids == {}
    stranger = contact_by_external_id(sessions, shop, "viber:vU1==")
    assert stranger is not None and stranger.messenger_ids == {"viber": "vU1=="}
    event = received_events(sessions, shop)[-1]
    assert event.contact_id == stranger.id and event.properties["linked"] is False
    assert journal(sessions, stranger.id)[-1][0] == "link_refused"


def test_a_reply_marks_the_latest_message_on_that_channel_replied(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """The SMS we sent an hour ago moves to replied; an email is left alone."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE, email="ada@example.com")
    with sessions.begin() as session:
        sent = {channel: Message(workspace_id=shop.id, contact_id=ada, channel=channel, template="t",
                                 status="delivered", scheduled_at=clock() - timedelta(hours=1),
                                 sent_at=clock() - timedelta(hours=1), created_at=clock() - timedelta(hours=1))
                for channel in ("sms", "email")}
        session.add_all(sent.values())
    deliver(sessions, shop, clock, inbound("sms", PHONE, "thanks", "SM9", clock()))
    with sessions() as session:
        assert session.get(Message, sent["sms"].id).status == "replied"  # type: ignore[union-attr]
        assert session.get(Message, sent["email"].id).status == "delivered"  # type: ignore[union-attr]


def test_receipts_in_the_same_webhook_are_applied_once(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> None:
    """Deliveries go through the receipts service: forward once, a repeat changes nothing."""
    ada = add_contact(sessions, shop, clock, "cust-1", phone=PHONE)
    with sessions.begin() as session:
        message = Message(workspace_id=shop.id, contact_id=ada, channel="sms", template="t", status="sent",
                          provider_id="SMout", scheduled_at=clock(), sent_at=clock(), created_at=clock())
        session.add(message)
    receipt = DeliveryEvent(channel="sms", status="delivered", receipt_key=f"SMout:delivered:{shop.id}",
                            occurred_at=clock(), provider_id="SMout")
    first = deliver(sessions, shop, clock, deliveries=[receipt])
    second = deliver(sessions, shop, clock, deliveries=[receipt])
    assert first.receipts[0].status == "delivered" and second.receipts[0].duplicate
    with sessions() as session:
        assert session.get(Message, message.id).status == "delivered"  # type: ignore[union-attr]


def test_commands_are_read_per_channel() -> None:
    """Keywords on SMS and WhatsApp, slash commands on Telegram and Viber; /start@bot in groups too."""
    assert read_command("sms", " stop ") is not None
    assert read_command("telegram", "stop") is None  # Telegram has /stop
    assert read_command("sms", "/stop") is None
    start = read_command("telegram", "/start@shop_bot  abc_DEF ")
    assert start is not None and start.kind == "start" and start.token == "abc_DEF"
    bare = read_command("viber", "/START")
    assert bare is not None and bare.kind == "start" and bare.token is None
    assert read_command("whatsapp", "Отписаться") is not None


def test_keyword_is_the_text_as_conditions_compare_it() -> None:
    """Trimmed, case-folded, inner whitespace collapsed, a final ? ! or . dropped."""
    assert keyword("  Status?! ") == "status"
    assert keyword("СТАТУС") == "статус"
    assert keyword("Where  is\nmy order?") == "where is my order"
