"""The signed-in home: which workspace, which role, what that role may do; switching workspace; the
workspace's activity (its audit log). The workspace's real pages (journeys, templates, contacts,
reports) grow beside these, each behind `@requires`.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import NotFound
from engine.workspaces.audit import recent_entries
from engine.workspaces.roles import DESCRIPTIONS, PERMISSIONS, Permission
from engine.workspaces.user_sessions import SignedIn, count_live_sessions, switch_workspace
from engine.workspaces.users import workspaces_of
from webapp import context
from webapp.ui.access import requires
from webapp.ui.security import ui_blueprint

bp = ui_blueprint("workspace", __name__)


@bp.get("/app/")
@requires(Permission.WORKSPACE_READ)
def home(user: SignedIn) -> Any:
    with context.sessions()() as db:
        others = [w for w in workspaces_of(db, user.user_id) if w.workspace_id != user.workspace_id]
    return render_template("workspace/home.html", user=user, others=others, role_description=DESCRIPTIONS[user.role],
                           permissions=sorted(PERMISSIONS[user.role]))


@bp.get("/app/sessions")
@requires(Permission.WORKSPACE_READ)
def live_sessions(user: SignedIn) -> Any:
    """A fragment the home loads with htmx: how many browsers are signed in as the user, beside "Sign out
    everywhere", which ends them all."""
    with context.sessions()() as db:
        count = count_live_sessions(db, user.user_id, now=context.now())
    return render_template("workspace/live_sessions.html", count=count)


@bp.post("/app/workspace")
@requires(Permission.WORKSPACE_READ)
def switch(user: SignedIn) -> Response:
    """Make another of the user's workspaces the current one. One they do not belong to: 404, as for none."""
    try:
        with context.sessions().begin() as db:
            switch_workspace(db, user, request.form.get("workspace_id", ""))
    except NotFound:
        abort(404)
    return redirect(url_for("workspace.home"), 303)


@bp.get("/app/activity")
@requires(Permission.AUDIT_READ)
def activity(user: SignedIn) -> Any:
    with context.sessions()() as db:
        entries = recent_entries(db, user.workspace_id)
    return render_template("workspace/activity.html", user=user, entries=entries)
