"""Users and their memberships: who may sign in, and with which role in which workspace.

A user is one person, known by email (unique whatever its case) across workspaces; a
membership gives them a role in one workspace. A change of role or password signs the
user out of their other browsers at once (user_sessions.revoke_all), so what was granted
before it cannot outlive it, and each change is in the workspace's audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import FieldErrors, NotFound
from engine.store.models import Workspace
from engine.store.people import Membership, User
from engine.workspaces import passwords
from engine.workspaces.audit import Action, Actor, audit
from engine.workspaces.roles import Role
from engine.workspaces.user_sessions import revoke_all

MAX_EMAIL = 320  # RFC 5321: 64 for the local part, @, 255 for the domain
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    role: Role
    added_at: datetime


@dataclass(frozen=True)
class WorkspaceRole:
    workspace_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class AddedUser:
    user: User
    created: bool  # a new account, rather than an existing one given this workspace too
    generated_password: str | None  # to show once, when the account is new and no password was given


def normalize_email(text: str) -> str:
    """The email as stored and compared: trimmed, lower-cased. FieldErrors when it is not an address."""
    email = text.strip().lower()
    if not email:
        raise FieldErrors([{"field": "email", "message": "enter an email address"}])
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        raise FieldErrors([{"field": "email", "message": "enter an email address such as ada@example.com"}])
    return email


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def add_user(session: Session, workspace_id: str, email: str, role: Role, *, password: str | None = None,
             by: Actor, now: datetime) -> AddedUser:
    """Give `email` the `role` in the workspace, creating the account if there is none.

    A new account gets `password`, or a generated one returned to be shown once. An existing
    account keeps its password: one given for it is refused rather than silently ignored.
    """
    if session.get(Workspace, workspace_id) is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    email = normalize_email(email)
    user = find_user(session, email)
    created, generated = user is None, None
    if user is None:
        if password is None:
            password = generated = passwords.generate_password()
        _check_password(password)
        user = User(email=email, password_hash=passwords.hash_password(password), created_at=now,
                    password_changed_at=now)
        session.add(user)
        session.flush()
    elif password is not None:
        raise FieldErrors([{"field": "password", "message": f"{email} has an account already and keeps its "
                                                            "password; leave the password out"}])
    elif _membership(session, workspace_id, user.id) is not None:
        raise FieldErrors([{"field": "email", "message": f"{email} is a member of this workspace already"}])
    session.add(Membership(workspace_id=workspace_id, user_id=user.id, role=role.value, created_at=now))
    audit(session, workspace_id, by, Action.USER_ADDED, email, {"role": role.value}, now=now)
    session.flush()
    return AddedUser(user, created=created, generated_password=generated)


def set_role(session: Session, workspace_id: str, user_id: int, role: Role, *, by: Actor, now: datetime,
             keep_session: int | None = None) -> None:
    """Change a member's role; their other sessions end at once."""
    membership = _membership(session, workspace_id, user_id)
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of workspace {workspace_id}")
    before, membership.role = membership.role, role.value
    revoke_all(session, user_id, now=now, keep=keep_session)
    email = session.get_one(User, user_id).email
    audit(session, workspace_id, by, Action.ROLE_CHANGED, email, {"from": before, "to": role.value}, now=now)


def change_password(session: Session, user: User, new_password: str, *, now: datetime,
                    keep_session: int | None = None) -> None:
    """Set a new password; every session but `keep_session` (the one asking) ends at once."""
    _check_password(new_password)
    user.password_hash = passwords.hash_password(new_password)
    user.password_changed_at = now
    revoke_all(session, user.id, now=now, keep=keep_session)
    for workspace in workspaces_of(session, user.id):
        audit(session, workspace.workspace_id, Actor(user.id, user.email), Action.PASSWORD_CHANGED, user.email,
              now=now)


def members_of(session: Session, workspace_id: str) -> list[Member]:
    """The workspace's people, by email."""
    rows = session.execute(select(User.id, User.email, Membership.role, Membership.created_at)
                           .join(Membership, Membership.user_id == User.id)
                           .where(Membership.workspace_id == workspace_id).order_by(User.email))
    return [Member(user_id, email, Role(role), added_at) for user_id, email, role, added_at in rows]


def workspaces_of(session: Session, user_id: int) -> list[WorkspaceRole]:
    """The workspaces the user belongs to, in the order they joined them (the first is where sign-in lands)."""
    rows = session.execute(select(Workspace.id, Workspace.name, Membership.role)
                           .join(Membership, Membership.workspace_id == Workspace.id)
                           .where(Membership.user_id == user_id).order_by(Membership.id))
    return [WorkspaceRole(workspace_id, name, Role(role)) for workspace_id, name, role in rows]


def _membership(session: Session, workspace_id: str, user_id: int) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.workspace_id == workspace_id,
                                                   Membership.user_id == user_id))


def _check_password(password: str) -> None:
    problem = passwords.password_problem(password)
    if problem is not None:
        raise FieldErrors([{"field": "password", "message": problem}])
