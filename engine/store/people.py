"""The tables of the people who sign in: users, their workspace memberships, sessions, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import NO_ID_REUSE, Base, Id


class User(Base):
    """A person at the shop who signs in to the workspace UI. The email is stored lower-cased, so it is
    unique whatever case it is typed in; the password only as an argon2id hash."""

    __tablename__ = "users"
    __table_args__ = NO_ID_REUSE
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class Membership(Base):
    """A user's role in one workspace (engine/workspaces/roles.py says what each role may do)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"), Index("ix_memberships_user", "user_id"),
                      NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class UserSession(Base):
    """A signed-in browser, kept server-side so it can be revoked at once. The cookie holds a random
    token; only its SHA-256 is stored, so a leaked table signs nobody in."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user", "user_id"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))  # the current one
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what in a workspace (signed in, changed a role, published, rotated a key). `actor` keeps the
    email as it was, so the line still says who after the user is gone; the command line has no user."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace", "workspace_id", "id"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(320))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]
