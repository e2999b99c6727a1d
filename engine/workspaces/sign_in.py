"""Signing in and out: an email and a password in, a session token out.

The password is checked outside any transaction, as dispatch keeps a send outside one:
an argon2 verification takes some 50 ms, and on SQLite every transaction holds the one
write lock, so ingest would wait on each sign-in. An email that matches no one costs the
same verification, so timing does not tell who has an account, and both failures get the
same answer. Whether to try at all is decided before (sign_in_throttle).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.store.people import User
from engine.workspaces.audit import Action, Actor, audit
from engine.workspaces.passwords import spend_a_verification, verify_password
from engine.workspaces.user_sessions import SignedIn, revoke, revoke_all, start_session
from engine.workspaces.users import workspaces_of


class SignInProblem(enum.StrEnum):
    WRONG_CREDENTIALS = "wrong_credentials"  # no such email, or not its password: the caller cannot tell which
    NO_WORKSPACE = "no_workspace"  # the right password, but the account belongs to no workspace


@dataclass(frozen=True)
class SignInResult:
    token: str | None = None  # for the session cookie, when signed in
    problem: SignInProblem | None = None


def sign_in(sessions: sessionmaker[Session], email: str, password: str, *, address: str,
            now: datetime) -> SignInResult:
    """Check `password` for `email` (normalised by users.normalize_email) and start a session in the
    first workspace the user joined. A hash made with older argon2 parameters is replaced."""
    with sessions() as session:
        found = session.execute(select(User.id, User.password_hash).where(User.email == email)).one_or_none()
    if found is None:
        spend_a_verification(password)
        return SignInResult(problem=SignInProblem.WRONG_CREDENTIALS)
    user_id, stored_hash = found
    verified = verify_password(stored_hash, password)
    if not verified.ok:
        return SignInResult(problem=SignInProblem.WRONG_CREDENTIALS)
    with sessions.begin() as session:
        if verified.rehashed is not None:  # unless the password changed meanwhile
            session.execute(update(User).where(User.id == user_id, User.password_hash == stored_hash)
                            .values(password_hash=verified.rehashed))
        workspaces = workspaces_of(session, user_id)
        if not workspaces:
            return SignInResult(problem=SignInProblem.NO_WORKSPACE)
        workspace_id = workspaces[0].workspace_id
        token = start_session(session, user_id, workspace_id, now=now)
        audit(session, workspace_id, Actor(user_id, email), Action.SIGNED_IN, email, {"address": address}, now=now)
    return SignInResult(token=token)


def sign_out(session: Session, user: SignedIn, *, now: datetime) -> None:
    """End this browser's session."""
    revoke(session, user.session_id, now=now)


def sign_out_everywhere(session: Session, user: SignedIn, *, now: datetime) -> int:
    """End every session of the user, this one included (a lost laptop, a shared computer); how many."""
    ended = revoke_all(session, user.user_id, now=now)
    audit(session, user.workspace_id, user.actor, Action.SIGNED_OUT_EVERYWHERE, user.email, {"sessions": ended},
          now=now)
    return ended
