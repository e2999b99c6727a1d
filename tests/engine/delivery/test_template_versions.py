"""A workspace's templates: checked drafts, numbered immutable versions, one live, stale saves refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import template_versions as tv
from engine.errors import InvalidTemplate, NotFound, StaleTemplateDraft
from templates.compiler import SandboxCompiler
from tests.conftest import FakeClock, Shop

COMPILER = SandboxCompiler()
SMS = {"body_text": "Hi {{ contact.first_name }}, your cart is waiting"}


def save(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, draft: Any, *, channel: str = "sms",
         name: str = "nudge", revision: int | None = None) -> int:
    with sessions.begin() as session:
        return tv.save_draft(session, shop.id, channel, name, draft, compiler=COMPILER, by="ada@example.com",
                             now=clock(), revision=revision).draft_revision


def publish(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *, name: str = "nudge",
            version: int | None = None) -> tv.Published:
    with sessions.begin() as session:
        published = tv.publish(session, shop.id, "sms", name, compiler=COMPILER, by="mia@example.com", now=clock(),
                               version=version)
        session.expunge(published.version)
        return published


def test_a_draft_with_a_jinja_error_is_refused_naming_its_line_and_nothing_is_stored(sessions, shop, clock) -> None:
    """Line 2 opens an `if` that is never closed: 422-worthy, with the part and the line; the template stays unsaved."""
    with pytest.raises(InvalidTemplate) as raised:
        save(sessions, shop, clock, {"body_text": "Hi\n{% if contact.first_name %}there"})
    [error] = raised.value.errors
    assert error["field"] == "body_text" and error["line"] == 2
    with sessions() as session, pytest.raises(NotFound):
        tv.get_template(session, shop.id, "sms", "nudge", compiler=COMPILER)


def test_a_draft_of_the_wrong_shape_names_each_field(sessions, shop, clock) -> None:
    """An email draft without a subject, with a number for its text, is refused field by field."""
    with pytest.raises(InvalidTemplate) as raised:
        save(sessions, shop, clock, {"body_mjml": "<mjml></mjml>", "body_text": 5}, channel="email")
    assert {e["field"] for e in raised.value.errors} == {"subject", "body_text"}
    with pytest.raises(InvalidTemplate) as raised:
        save(sessions, shop, clock, SMS | {"buttons": [{"text": "Go", "url": "https://shop.example"}]})
    assert raised.value.errors[0]["field"] == "buttons"


def test_publishing_freezes_drafts_into_numbered_versions_and_the_same_text_reuses_its_version(
        sessions, shop, clock) -> None:
    """v1, then an edit is v2; publishing v1's text again makes v1 live instead of copying it."""
    save(sessions, shop, clock, SMS)
    first = publish(sessions, shop, clock)
    save(sessions, shop, clock, {"body_text": "Second text"})
    second = publish(sessions, shop, clock)
    save(sessions, shop, clock, SMS)
    again = publish(sessions, shop, clock)

    assert (first.version.version, first.created) == (1, True)
    assert (second.version.version, second.created) == (2, True)
    assert (again.version.version, again.created, again.version.digest) == (1, False, first.version.digest)
    assert first.version.created_by == "mia@example.com"
    with sessions() as session:
        detail = tv.get_template(session, shop.id, "sms", "nudge", compiler=COMPILER)
    assert [v.version for v in detail.versions] == [2, 1]
    assert detail.summary.published_version == 1 and detail.summary.source == "workspace"


def test_an_earlier_version_can_be_made_live_again_by_its_number(sessions, shop, clock) -> None:
    """A rollback: publish {"version": 1} while v2 is live."""
    save(sessions, shop, clock, SMS)
    publish(sessions, shop, clock)
    save(sessions, shop, clock, {"body_text": "Second"})
    publish(sessions, shop, clock)
    assert publish(sessions, shop, clock, version=1).version.version == 1
    with pytest.raises(NotFound):
        publish(sessions, shop, clock, version=7)


def test_a_save_made_on_a_stale_revision_is_refused_and_the_other_save_kept(sessions, shop, clock) -> None:
    """Two editors read revision 1; the first saves (revision 2); the second's save on revision 1 is refused."""
    read = save(sessions, shop, clock, SMS)
    assert save(sessions, shop, clock, {"body_text": "Mine"}, revision=read) == read + 1
    with pytest.raises(StaleTemplateDraft) as raised:
        save(sessions, shop, clock, {"body_text": "Theirs"}, revision=read)
    assert raised.value.revision == read + 1
    with sessions() as session:
        assert tv.get_template(session, shop.id, "sms", "nudge", compiler=COMPILER).draft.body_text == "Mine"


def test_a_seed_opens_as_the_draft_until_the_workspace_saves_its_own(sessions, shop, clock) -> None:
    """The abandoned-cart email is listed as a seed and opens with the seed's text; nothing is published."""
    with sessions() as session:
        listed = {(t.channel, t.name): t for t in tv.list_templates(session, shop.id, compiler=COMPILER)}
        detail = tv.get_template(session, shop.id, "email", "abandoned_cart", compiler=COMPILER)
    assert listed[("email", "abandoned_cart")].source == "seed"
    assert detail.draft == detail.seed and detail.versions == []
    with pytest.raises(NotFound):
        publish(sessions, shop, clock, name="abandoned_cart")


def test_names_and_channels_are_checked_like_send_steps_name_them(sessions, shop, clock) -> None:
    """A name a send step could not use, or a channel Rapport does not send on, is refused by field."""
    for channel, name, field in (("fax", "nudge", "channel"), ("sms", "Nudge!", "name"), ("sms", "x" * 101, "name")):
        with pytest.raises(InvalidTemplate) as raised:
            save(sessions, shop, clock, SMS, channel=channel, name=name)
        assert raised.value.errors[0]["field"] == field
