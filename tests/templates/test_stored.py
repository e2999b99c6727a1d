"""The templates port over the database: a workspace's published version, else the seed; kept briefly, per workspace."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import template_versions
from engine.delivery.dispatch import dispatch_messages
from engine.journeys.versions import create_journey
from engine.store.models import Message
from engine.workspaces.accounts import create_workspace
from templates.files import FileTemplates
from templates.stored import StoredTemplates
from tests.conftest import FakeClock, Shop, SmtpServer, scheduled_emails
from triggers import abandoned_cart
from workers.runtime import Runtime

CONTEXT = {"contact": {"first_name": "Ada"}, "workspace": {"name": "Shop", "id": "x"}, "event": {}}
WELCOME = {"subject": "Hello from the database, {{ contact.first_name }}",
           "body_mjml": "<mjml><mj-body><mj-section><mj-column><mj-text>DB {{ contact.first_name }}</mj-text>"
                        "</mj-column></mj-section></mj-body></mjml>",
           "body_text": "DB text {{ contact.first_name }}"}


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish(sessions: sessionmaker[Session], stored: StoredTemplates, workspace_id: str, name: str,
            draft: dict[str, Any], now: Any, channel: str = "email") -> str:
    with sessions.begin() as session:
        template_versions.save_draft(session, workspace_id, channel, name, draft, compiler=stored.compiler,
                                     by="test", now=now)
        digest = template_versions.publish(session, workspace_id, channel, name, compiler=stored.compiler,
                                           by="test", now=now).version.digest
    stored.forget(workspace_id)
    return digest


def test_seeds_are_what_a_workspace_without_templates_of_its_own_sends(sessions, shop: Shop) -> None:
    """Empty tables: every seed exists and renders exactly as the files do, with the files' version."""
    stored, files = StoredTemplates(sessions), FileTemplates()
    assert stored.exists(shop.id, "email", "abandoned_cart") and stored.exists(shop.id, "telegram", "abandoned_cart")
    assert not stored.exists(shop.id, "email", "no_such_template")
    assert stored.email(shop.id, "welcome", CONTEXT) == files.email(shop.id, "welcome", CONTEXT)


def test_a_published_version_is_what_the_next_message_renders_and_a_sent_one_keeps_its_own(
        sessions, shop: Shop, clock: FakeClock, runtime: Runtime, smtp_server: SmtpServer) -> None:
    """The first welcome goes out from the seed; after a publish the next one from the database version, and the
    first message still names the seed's version, which still renders."""
    stored = StoredTemplates(sessions)
    first, second = scheduled_emails(sessions, shop, clock, 2)
    dispatch_messages(sessions, [first], channels=runtime.channels, templates=stored, clock=clock)
    digest = publish(sessions, stored, shop.id, "welcome", WELCOME, clock())
    dispatch_messages(sessions, [second], channels=runtime.channels, templates=stored, clock=clock)

    assert [m["Subject"] for m in smtp_server.messages] == ["Welcome to Shop, Customer 0!",
                                                           "Hello from the database, Customer 1"]
    with sessions() as session:
        versions = dict(session.execute(select(Message.id, Message.template_version).where(
            Message.id.in_([first, second]))).all())
    seed_version = FileTemplates()._load_email("welcome").version
    assert versions == {first: seed_version, second: digest}
    assert stored.email(shop.id, "welcome", CONTEXT, version=seed_version).subject == "Welcome to Shop, Ada!"
    assert stored.email(shop.id, "welcome", CONTEXT, version=digest).subject == "Hello from the database, Ada"


def test_an_older_database_version_still_resolves_after_a_newer_one_is_published(sessions, shop, clock) -> None:
    """A message names version 1; version 2 is live; version 1 is read by its digest and renders its own text."""
    stored = StoredTemplates(sessions)
    old = publish(sessions, stored, shop.id, "welcome", WELCOME, clock())
    new = publish(sessions, stored, shop.id, "welcome", WELCOME | {"subject": "Version two"}, clock())
    assert stored.exists(shop.id, "email", "welcome", old) and stored.exists(shop.id, "email", "welcome", new)
    assert stored.email(shop.id, "welcome", CONTEXT).subject == "Version two"
    assert stored.email(shop.id, "welcome", CONTEXT, version=old).subject == "Hello from the database, Ada"


def test_a_workspace_never_sees_another_workspace_templates(sessions, shop: Shop, clock) -> None:
    """Shop A's own welcome and its own new template are A's alone: B renders the seed, lacks the new one, and
    cannot reach A's version by its digest."""
    with sessions.begin() as session:
        second_shop = Shop(create_workspace(session, "Other Shop", now=clock()))
    stored = StoredTemplates(sessions)
    digest = publish(sessions, stored, shop.id, "welcome", WELCOME, clock())
    publish(sessions, stored, shop.id, "spring_sale", {"body_text": "Spring sale!"}, clock(), channel="sms")

    assert stored.email(second_shop.id, "welcome", CONTEXT).subject == "Welcome to Shop, Ada!"
    assert stored.exists(shop.id, "sms", "spring_sale") and not stored.exists(second_shop.id, "sms", "spring_sale")
    assert not stored.exists(second_shop.id, "email", "welcome", digest)
    with sessions() as session:
        listed = {(t.channel, t.name) for t in template_versions.list_templates(
            session, second_shop.id, compiler=stored.compiler)}
    assert ("sms", "spring_sale") not in listed and ("email", "welcome") in listed


def test_another_process_sees_a_publish_within_its_fresh_seconds(sessions, shop: Shop, clock) -> None:
    """A port that did not publish keeps what it read for fresh_seconds, then renders the published version."""
    ticks = Ticks()
    worker = StoredTemplates(sessions, fresh_seconds=2.0, monotonic=ticks)
    assert worker.email(shop.id, "welcome", CONTEXT).subject == "Welcome to Shop, Ada!"
    publish(sessions, StoredTemplates(sessions), shop.id, "welcome", WELCOME, clock())
    ticks.now += 1.0
    assert worker.email(shop.id, "welcome", CONTEXT).subject == "Welcome to Shop, Ada!"
    ticks.now += 1.5
    assert worker.email(shop.id, "welcome", CONTEXT).subject == "Hello from the database, Ada"


def test_a_journey_saved_inside_a_transaction_checks_templates_without_waiting_on_its_own_lock(
        sessions, shop: Shop, clock) -> None:
    """The port reads outside its caller's transaction: on SQLite a transaction of its own would wait for the
    write lock the caller holds (30 s, then fail)."""
    stored = StoredTemplates(sessions)
    started = time.monotonic()
    with sessions.begin() as session:
        create_journey(session, shop.id, "Cart", abandoned_cart.recipe(), templates=stored, now=clock())
    assert time.monotonic() - started < 5


def test_the_worker_runtime_renders_from_the_database(runtime: Runtime, sessions, shop: Shop, clock) -> None:
    """The edges build the port over the database: the worker's templates are StoredTemplates on its sessions."""
    assert isinstance(runtime.templates, StoredTemplates)
    publish(sessions, runtime.templates, shop.id, "welcome", WELCOME, clock())
    assert runtime.templates.email(shop.id, "welcome", CONTEXT).subject == "Hello from the database, Ada"
