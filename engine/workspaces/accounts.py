"""Workspaces and their credentials."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import AuthError
from engine.store.models import ApiKey, Workspace


@dataclass(frozen=True)
class Credentials:
    workspace_id: str
    api_key: str
    signing_secret: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_workspace(session: Session, name: str, *, now: datetime, timezone: str = "UTC") -> Credentials:
    """Create a workspace with one API key; the key is shown once and stored hashed."""
    name = name.strip()
    if not name:
        raise ValueError("a workspace needs a name")
    workspace = Workspace(
        id="ws_" + secrets.token_hex(8),
        name=name,
        signing_secret="whsec_" + secrets.token_urlsafe(32),
        timezone=timezone,
        settings={},
        created_at=now,
    )
    session.add(workspace)
    session.flush()
    api_key = issue_api_key(session, workspace.id, now=now)
    return Credentials(workspace.id, api_key, workspace.signing_secret)


def issue_api_key(session: Session, workspace_id: str, *, now: datetime) -> str:
    api_key = "rk_" + secrets.token_urlsafe(32)
    session.add(
        ApiKey(workspace_id=workspace_id, prefix=api_key[:10], key_hash=hash_key(api_key), created_at=now)
    )
    return api_key


def workspace_for_key(session: Session, api_key: str) -> Workspace:
    workspace = session.scalar(
        select(Workspace)
        .join(ApiKey, ApiKey.workspace_id == Workspace.id)
        .where(ApiKey.key_hash == hash_key(api_key), ApiKey.revoked_at.is_(None))
    )
    if workspace is None:
        raise AuthError("unknown or revoked API key")
    return workspace


def find_workspace_by_name(session: Session, name: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.name == name).order_by(Workspace.created_at))
