"""HTML pages: the home page and, in embedded mode, the outbox of the built-in SMTP sink."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from engine.models import OutboxCapture, Workspace
from webapp import context

bp = Blueprint("pages", __name__, template_folder="pages")


@bp.get("/")
def home() -> Any:
    return render_template("home.html", settings=context.settings())


@bp.get("/outbox")
def outbox() -> Any:
    """Everything the local sink received. Only in embedded mode: it shows every workspace."""
    if not context.settings().outbox_page:
        abort(404)
    with context.sessions()() as session:
        names = dict(session.execute(select(Workspace.id, Workspace.name)).all())
        captures = list(session.scalars(select(OutboxCapture).order_by(OutboxCapture.id.desc()).limit(100)))
        return render_template("outbox.html", captures=captures, names=names)
