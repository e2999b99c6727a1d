"""Server-side sessions: found by a token stored only hashed, revocable at once, ended by idleness and age."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import NotFound
from engine.store.people import Membership, UserSession
from engine.workspaces.roles import Role
from engine.workspaces.user_sessions import (
    count_live_sessions,
    revoke,
    revoke_all,
    signed_in,
    start_session,
    switch_workspace,
    token_hash,
)
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import add_member


def test_a_session_is_found_by_its_token_which_is_stored_only_hashed(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The token names the user, workspace and role; the table holds its SHA-256, never the token."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.MARKETER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
    with sessions.begin() as session:
        current = signed_in(session, token, now=clock())
        stored = session.scalars(select(UserSession.token_hash).where(UserSession.user_id == ada)).one()
    assert current is not None
    assert (current.user_id, current.email, current.workspace_id, current.workspace_name, current.role) == (
        ada, f"ada@{domain}", shop.id, "Test Shop", Role.MARKETER)
    assert stored == token_hash(token) and token not in stored
    with sessions.begin() as session:
        assert signed_in(session, token + "x", now=clock()) is None


def test_a_revoked_session_signs_nobody_in(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Signing out one browser ends that session and no other."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        gone, kept = (start_session(session, ada, shop.id, now=clock()) for _ in range(2))
        current = signed_in(session, gone, now=clock())
        assert current is not None
        revoke(session, current.session_id, now=clock())
    with sessions.begin() as session:
        assert signed_in(session, gone, now=clock()) is None
        assert signed_in(session, kept, now=clock()) is not None


def test_revoke_all_ends_every_session_of_the_user_and_no_one_elses(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """All of Ada's sessions end but the one kept; Bob's stays."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    bob = add_member(sessions, shop.id, f"bob@{domain}", Role.VIEWER, now=clock())
    with sessions.begin() as session:
        adas = [start_session(session, ada, shop.id, now=clock()) for _ in range(3)]
        bobs = start_session(session, bob, shop.id, now=clock())
        kept = signed_in(session, adas[0], now=clock())
        assert kept is not None
        assert revoke_all(session, ada, now=clock(), keep=kept.session_id) == 2
    with sessions.begin() as session:
        assert [signed_in(session, t, now=clock()) is not None for t in adas] == [True, False, False]
        assert signed_in(session, bobs, now=clock()) is not None


def test_a_session_ends_after_twelve_idle_hours(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Used within 12 hours it lives on; left alone for 12 hours it is over."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
    for _ in range(3):
        clock.advance(hours=11)
        with sessions.begin() as session:
            assert signed_in(session, token, now=clock()) is not None
    clock.advance(hours=12)
    with sessions.begin() as session:
        assert signed_in(session, token, now=clock()) is None


def test_a_session_in_daily_use_ends_seven_days_after_sign_in(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """However busy, a session is good for 7 days at most: then the password is asked again."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
    for _ in range(16):  # every 10 hours for 6 days 16 hours
        clock.advance(hours=10)
        with sessions.begin() as session:
            assert signed_in(session, token, now=clock()) is not None
    clock.advance(hours=8, seconds=1)
    with sessions.begin() as session:
        assert signed_in(session, token, now=clock()) is None


def test_last_seen_is_written_at_most_once_a_minute(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Requests seconds apart (live fragments) do not each write the session row."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
    started = clock()
    seen = []
    for _ in range(4):
        clock.advance(seconds=25)
        with sessions.begin() as session:
            signed_in(session, token, now=clock())
        with sessions() as session:
            seen.append(session.scalars(select(UserSession.last_seen_at).where(UserSession.user_id == ada)).one())
    assert [(s - started).total_seconds() for s in seen] == [0, 0, 75, 75]


def test_a_role_change_applies_to_the_next_request(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The role is read with the session each time: a session started as owner sees the new role at once."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
        session.scalars(select(Membership).where(Membership.user_id == ada)).one().role = "viewer"
    with sessions.begin() as session:
        current = signed_in(session, token, now=clock())
    assert current is not None and current.role is Role.VIEWER


def test_a_user_removed_from_the_workspace_is_signed_out_of_it(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """Without the membership, the session names no one."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
        session.execute(delete(Membership).where(Membership.user_id == ada))
    with sessions.begin() as session:
        assert signed_in(session, token, now=clock()) is None


def test_no_session_starts_in_a_workspace_the_user_does_not_belong_to(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """Neither at sign-in nor by switching: the other workspace is NotFound, as if it did not exist."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    with sessions.begin() as session:
        with pytest.raises(NotFound):
            start_session(session, ada, second_shop.id, now=clock())
        token = start_session(session, ada, shop.id, now=clock())
        current = signed_in(session, token, now=clock())
        assert current is not None
        with pytest.raises(NotFound):
            switch_workspace(session, current, second_shop.id)


def test_switching_workspace_keeps_the_session_and_takes_that_workspaces_role(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """An owner here and a viewer there is a viewer once switched."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"ada@{domain}", Role.VIEWER, now=clock())
    with sessions.begin() as session:
        token = start_session(session, ada, shop.id, now=clock())
        current = signed_in(session, token, now=clock())
        assert current is not None
        switch_workspace(session, current, second_shop.id)
    with sessions.begin() as session:
        switched = signed_in(session, token, now=clock())
    assert switched is not None
    assert (switched.session_id, switched.workspace_id, switched.role) == (current.session_id, second_shop.id,
                                                                          Role.VIEWER)


def test_live_sessions_count_every_workspace_and_leave_out_ended_ones(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock, domain: str) -> None:
    """Ada's browsers in both her workspaces count; a signed-out or idle-expired one does not, nor Bob's."""
    ada = add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"ada@{domain}", Role.VIEWER, now=clock())
    bob = add_member(sessions, shop.id, f"bob@{domain}", Role.VIEWER, now=clock())
    with sessions.begin() as session:
        start_session(session, ada, shop.id, now=clock())  # left idle from now on
    clock.advance(hours=6)
    with sessions.begin() as session:
        start_session(session, ada, shop.id, now=clock())
        start_session(session, ada, second_shop.id, now=clock())
        start_session(session, bob, shop.id, now=clock())
        ended = signed_in(session, start_session(session, ada, shop.id, now=clock()), now=clock())
        assert ended is not None
        revoke(session, ended.session_id, now=clock())
        assert count_live_sessions(session, ada, now=clock()) == 3
    clock.advance(hours=6, seconds=1)  # the first one has been idle for 12 hours
    with sessions() as session:
        assert count_live_sessions(session, ada, now=clock()) == 2
