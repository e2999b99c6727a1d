"""Access to what create_app set up, for views."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.templates import Templates
from engine.settings import Settings
from templates.stored import StoredTemplates


def settings() -> Settings:
    return current_app.extensions["rapport"]["settings"]  # type: ignore[no-any-return]


def sessions() -> sessionmaker[Session]:
    return current_app.extensions["rapport"]["sessions"]  # type: ignore[no-any-return]


def redis() -> Redis:
    return current_app.extensions["rapport"]["redis"]  # type: ignore[no-any-return]


def templates() -> Templates:
    return current_app.extensions["rapport"]["templates"]  # type: ignore[no-any-return]


def stored_templates() -> StoredTemplates:
    """The templates port the template API edits: it is told when a publish has committed."""
    return current_app.extensions["rapport"]["stored_templates"]  # type: ignore[no-any-return]


def now() -> datetime:
    return current_app.extensions["rapport"]["clock"]()  # type: ignore[no-any-return]
