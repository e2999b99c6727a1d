"""Signing in: the right password starts a session, anything else gets one answer; signing out everywhere."""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.store.people import AuditEntry, Membership, User, UserSession
from engine.workspaces import passwords
from engine.workspaces.roles import Role
from engine.workspaces.sign_in import SignInProblem, SignInResult, sign_in, sign_out_everywhere
from engine.workspaces.user_sessions import signed_in
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import PASSWORD, add_member

WRONG = SignInResult(problem=SignInProblem.WRONG_CREDENTIALS)


def test_the_right_password_starts_a_session_in_the_first_workspace_joined(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """Ada, a member of two workspaces, lands in the one she joined first; the sign-in is in its audit log."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"ada@{domain}", Role.VIEWER, now=clock())
    result = sign_in(sessions, f"ada@{domain}", PASSWORD, address="203.0.113.9", now=clock())
    assert result.token is not None and result.problem is None
    with sessions.begin() as session:
        current = signed_in(session, result.token, now=clock())
        entry = session.scalars(select(AuditEntry).where(AuditEntry.workspace_id == shop.id)
                                .order_by(AuditEntry.id.desc()).limit(1)).one()
    assert current is not None and (current.user_id, current.workspace_id) == (ada, shop.id)
    assert (entry.action, entry.actor, entry.detail) == ("signed_in", f"ada@{domain}", {"address": "203.0.113.9"})


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Nothing in the answer tells whether the email has an account."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    assert sign_in(sessions, f"ada@{domain}", PASSWORD + "?", address="203.0.113.9", now=clock()) == WRONG
    assert sign_in(sessions, f"nobody@{domain}", PASSWORD, address="203.0.113.9", now=clock()) == WRONG


def test_an_account_in_no_workspace_is_told_so_and_gets_no_session(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The right password of an account that belongs to no workspace (any more) starts nothing."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        session.execute(delete(Membership).where(Membership.user_id == ada))
    result = sign_in(sessions, f"ada@{domain}", PASSWORD, address="203.0.113.9", now=clock())
    assert result == SignInResult(problem=SignInProblem.NO_WORKSPACE)
    with sessions() as session:
        assert session.scalar(select(UserSession).where(UserSession.user_id == ada)) is None


def test_signing_in_replaces_a_hash_made_with_older_parameters(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """After one sign-in the stored hash carries today's parameters; the password still works."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    older = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with sessions.begin() as session:
        session.execute(update(User).where(User.id == ada).values(password_hash=older))
    assert sign_in(sessions, f"ada@{domain}", PASSWORD, address="203.0.113.9", now=clock()).token
    with sessions() as session:
        stored = session.get_one(User, ada).password_hash
    assert stored != older and not passwords.HASHER.check_needs_rehash(stored)
    assert sign_in(sessions, f"ada@{domain}", PASSWORD, address="203.0.113.9", now=clock()).token


def test_signing_out_everywhere_ends_every_session_this_one_too(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Three browsers signed in; signing out everywhere from one ends all three and says so in the log."""
    add_member(sessions, shop.id, f"ada@{domain}", Role.VIEWER, now=clock())
    tokens = [sign_in(sessions, f"ada@{domain}", PASSWORD, address="203.0.113.9", now=clock()).token
              for _ in range(3)]
    with sessions.begin() as session:
        current = signed_in(session, tokens[0] or "", now=clock())
        assert current is not None
        assert sign_out_everywhere(session, current, now=clock()) == 3
    with sessions.begin() as session:
        assert [signed_in(session, t or "", now=clock()) for t in tokens] == [None, None, None]
        entry = session.scalars(select(AuditEntry).where(AuditEntry.workspace_id == shop.id)
                                .order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (entry.action, entry.detail) == ("signed_out_everywhere", {"sessions": 3})
