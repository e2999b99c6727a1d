"""Users and memberships: one account per email whatever its case, roles per workspace, changes audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import FieldErrors, NotFound
from engine.store.people import AuditEntry, User
from engine.workspaces import passwords
from engine.workspaces.audit import COMMAND_LINE, Actor
from engine.workspaces.roles import Role
from engine.workspaces.user_sessions import signed_in, start_session
from engine.workspaces.users import add_user, change_password, members_of, normalize_email, set_role, workspaces_of
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import PASSWORD, add_member


def test_a_new_user_gets_a_generated_password_shown_once_and_stored_only_hashed(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Without a password given, one is generated, returned once, and the table holds only its hash."""
    with sessions.begin() as session:
        added = add_user(session, shop.id, f"ada@{domain}", Role.OWNER, by=COMMAND_LINE, now=clock())
    assert added.created and added.generated_password
    with sessions() as session:
        stored = session.scalars(select(User.password_hash).where(User.email == f"ada@{domain}")).one()
    assert added.generated_password not in stored
    assert passwords.verify_password(stored, added.generated_password).ok


def test_an_email_is_one_account_whatever_its_case(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """`Ada@shop.example` and `ADA@SHOP.EXAMPLE` are one person: added to a second workspace, not a second account."""
    first = add_member(sessions, shop.id, f"Ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        again = add_user(session, second_shop.id, f" ada@{domain.upper()} ", Role.VIEWER, by=COMMAND_LINE,
                         now=clock())
    assert again.user.id == first and not again.created and again.generated_password is None
    assert again.user.email == f"ada@{domain}"
    with sessions() as session:
        assert [(w.workspace_id, w.role) for w in workspaces_of(session, first)] == [
            (shop.id, Role.OWNER), (second_shop.id, Role.VIEWER)]


def test_adding_a_member_twice_is_refused_at_the_email(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """A second membership of the same workspace is an error naming the email field, not a second row."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session, pytest.raises(FieldErrors) as refused:
        add_user(session, shop.id, f"ADA@{domain}", Role.VIEWER, by=COMMAND_LINE, now=clock())
    assert refused.value.errors == [{"field": "email",
                                     "message": f"ada@{domain} is a member of this workspace already"}]


def test_an_existing_account_keeps_its_password_and_one_given_for_it_is_refused(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """Adding a known email to another workspace with a password would change it behind their back: refused."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session, pytest.raises(FieldErrors) as refused:
        add_user(session, second_shop.id, f"ada@{domain}", Role.OWNER, password="another long password",
                 by=COMMAND_LINE, now=clock())
    assert refused.value.errors[0]["field"] == "password"


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "ada@example", "ada @example.com",
                                   "a@b@example.com", "x" * 310 + "@example.com"])
def test_what_is_not_an_email_address_is_refused_at_the_email_field(email: str) -> None:
    """Blank, missing parts, spaces, two @, a domain without a dot, longer than 320: each refused, naming the field."""
    with pytest.raises(FieldErrors) as refused:
        normalize_email(email)
    assert refused.value.errors[0]["field"] == "email"


def test_a_short_password_is_refused_and_no_account_is_made(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The password rule names the password field; nothing is stored."""
    with sessions.begin() as session, pytest.raises(FieldErrors) as refused:
        add_user(session, shop.id, f"ada@{domain}", Role.OWNER, password="short", by=COMMAND_LINE, now=clock())
    assert refused.value.errors == [{"field": "password", "message": "use at least 12 characters"}]
    with sessions() as session:
        assert session.scalar(select(User).where(User.email == f"ada@{domain}")) is None


def test_a_workspace_that_does_not_exist_gets_no_members(
        sessions: sessionmaker[Session], clock: FakeClock, domain: str) -> None:
    """Adding to an unknown workspace is NotFound."""
    with sessions.begin() as session, pytest.raises(NotFound):
        add_user(session, "ws_nothing", f"ada@{domain}", Role.OWNER, by=COMMAND_LINE, now=clock())


def test_a_role_change_signs_the_user_out_of_their_other_sessions_and_is_audited(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """After an owner makes a marketer a viewer, the marketer's open sessions are gone; the log says who did it."""
    owner = add_member(sessions, shop.id, f"owner@{domain}", Role.OWNER, now=clock())
    marketer = add_member(sessions, shop.id, f"mia@{domain}", Role.MARKETER, now=clock())
    with sessions.begin() as session:
        tokens = [start_session(session, marketer, shop.id, now=clock()) for _ in range(2)]
        set_role(session, shop.id, marketer, Role.VIEWER, by=Actor(owner, f"owner@{domain}"), now=clock())
    with sessions.begin() as session:
        assert [signed_in(session, token, now=clock()) for token in tokens] == [None, None]
        entry = session.scalars(select(AuditEntry).where(AuditEntry.workspace_id == shop.id,
                                                         AuditEntry.action == "role_changed")).one()
    assert (entry.actor, entry.user_id, entry.subject, entry.detail) == (
        f"owner@{domain}", owner, f"mia@{domain}", {"from": "marketer", "to": "viewer"})
    with sessions() as session:
        assert [(m.email, m.role) for m in members_of(session, shop.id)] == [
            (f"mia@{domain}", Role.VIEWER), (f"owner@{domain}", Role.OWNER)]


def test_a_password_change_ends_every_other_session_but_keeps_the_one_asking(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The browser that changed the password stays signed in, every other is signed out; the old password fails."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        here, elsewhere = (start_session(session, ada, shop.id, now=clock()) for _ in range(2))
        current = signed_in(session, here, now=clock())
        assert current is not None
        change_password(session, session.get_one(User, ada), "a brand new long password", now=clock(),
                        keep_session=current.session_id)
    with sessions.begin() as session:
        assert signed_in(session, here, now=clock()) is not None
        assert signed_in(session, elsewhere, now=clock()) is None
        user = session.get_one(User, ada)
        assert not passwords.verify_password(user.password_hash, PASSWORD).ok
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.workspace_id == shop.id)
                              .order_by(AuditEntry.id.desc()).limit(1)) == "password_changed"
