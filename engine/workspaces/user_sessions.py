"""Signed-in browsers, stored server-side so that signing out, anywhere, takes effect at once.

A session is a row: the browser's cookie holds a random token, the table only its SHA-256
(a copy of the table signs nobody in). Each request looks the token up together with the
user's membership of the session's current workspace, so a revoked session, an expired
one, or one whose user has lost that workspace is simply not signed in, and a role change
applies to the very next request. A session ends 12 hours after it was last used and at
most 7 days after sign-in, whichever comes first.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.store.models import Workspace
from engine.store.people import Membership, User, UserSession
from engine.workspaces.audit import Actor
from engine.workspaces.roles import Role

IDLE_TIMEOUT = timedelta(hours=12)
MAX_AGE = timedelta(days=7)
# last_seen_at is written at most this often: a page with live fragments asks every few seconds,
# and a write per request would serialise them all behind SQLite's one writer.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SignedIn:
    """Who is behind a request, in which workspace, with which role."""

    session_id: int
    user_id: int
    email: str
    workspace_id: str
    workspace_name: str
    role: Role

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, self.email)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user_id: int, workspace_id: str, *, now: datetime) -> str:
    """Sign `user_id` in to `workspace_id` (of which they must be a member); the token for the cookie."""
    if _role_in(session, user_id, workspace_id) is None:
        raise NotFound(f"user {user_id} is not a member of workspace {workspace_id}")
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=token_hash(token), user_id=user_id, workspace_id=workspace_id,
                            created_at=now, last_seen_at=now, expires_at=_expiry(now, now), revoked_at=None))
    session.flush()
    return token


def signed_in(session: Session, token: str, *, now: datetime) -> SignedIn | None:
    """The live session `token` names, or None (unknown, revoked, expired, or no longer a member)."""
    row = session.execute(
        select(UserSession, User.email, Membership.role, Workspace.name)
        .join(User, User.id == UserSession.user_id)
        .join(Membership, (Membership.user_id == UserSession.user_id)
              & (Membership.workspace_id == UserSession.workspace_id))
        .join(Workspace, Workspace.id == UserSession.workspace_id)
        .where(UserSession.token_hash == token_hash(token), UserSession.revoked_at.is_(None),
               UserSession.expires_at > now)
    ).one_or_none()
    if row is None:
        return None
    user_session, email, role, workspace_name = row
    if now - user_session.last_seen_at >= TOUCH_EVERY:
        user_session.last_seen_at = now
        user_session.expires_at = _expiry(user_session.created_at, now)
    return SignedIn(session_id=user_session.id, user_id=user_session.user_id, email=email,
                    workspace_id=user_session.workspace_id, workspace_name=workspace_name, role=Role(role))


def revoke(session: Session, session_id: int, *, now: datetime) -> None:
    """Sign one browser out."""
    session.execute(update(UserSession).where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
                    .values(revoked_at=now))


def revoke_all(session: Session, user_id: int, *, now: datetime, keep: int | None = None) -> int:
    """Sign the user out everywhere, but for session `keep` (the one asking, when it should stay);
    how many sessions were still live."""
    statement = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
                                          UserSession.expires_at > now)
    if keep is not None:
        statement = statement.where(UserSession.id != keep)
    return session.execute(statement.values(revoked_at=now)).rowcount  # type: ignore[attr-defined, no-any-return]


def count_live_sessions(session: Session, user_id: int, *, now: datetime) -> int:
    """How many browsers are signed in as the user, in any workspace: what "sign out everywhere" would end."""
    return session.scalar(select(func.count()).select_from(UserSession)
                          .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
                                 UserSession.expires_at > now)) or 0


def switch_workspace(session: Session, current: SignedIn, workspace_id: str) -> None:
    """Make `workspace_id` the session's current workspace. Not a member: NotFound, as if it did not exist."""
    if _role_in(session, current.user_id, workspace_id) is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    session.execute(update(UserSession).where(UserSession.id == current.session_id)
                    .values(workspace_id=workspace_id))


def _role_in(session: Session, user_id: int, workspace_id: str) -> str | None:
    return session.scalar(select(Membership.role).where(Membership.user_id == user_id,
                                                        Membership.workspace_id == workspace_id))


def _expiry(created_at: datetime, now: datetime) -> datetime:
    return min(now + IDLE_TIMEOUT, created_at + MAX_AGE)
