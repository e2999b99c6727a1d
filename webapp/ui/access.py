"""Who is signed in, and the one decorator every workspace page goes through.

`@requires(permission)` looks the session cookie up (engine/workspaces/user_sessions.py),
sends a browser that is not signed in to the sign-in page (an htmx request is answered 401
with HX-Redirect, so the whole page changes, not a fragment), refuses (403) a role without
the permission, and hands the view the signed-in user, scoped to their current workspace.
`@anyone` marks the few pages meant for people not signed in (the sign-in form). A test
walks the UI's routes and finds every view marked one way or the other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, g, redirect, request, url_for
from werkzeug.wrappers import Response

from engine.workspaces.roles import Permission, can
from engine.workspaces.user_sessions import MAX_AGE, SignedIn, signed_in
from webapp import context

COOKIE = "rapport_session"
PUBLIC = "public"  # the mark `anyone` leaves, where `requires` leaves a permission

View = Callable[..., Any]


def current_user() -> SignedIn | None:
    """The person behind this request, looked up once per request."""
    if "signed_in" not in g:
        token = request.cookies.get(COOKIE)
        g.signed_in = None
        if token:
            with context.sessions().begin() as session:
                g.signed_in = signed_in(session, token, now=context.now())
    return g.signed_in  # type: ignore[no-any-return]


def requires(permission: Permission) -> Callable[[View], View]:
    """Let the view run only for a signed-in user whose role grants `permission`; the view gets them as `user`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                sign_in_page = url_for("sign_in.sign_in_page", next=request.path)
                if request.headers.get("HX-Request"):  # a fragment: htmx loads the whole sign-in page instead
                    return Response(status=401, headers={"HX-Redirect": sign_in_page})
                return redirect(sign_in_page, 303)
            if not can(user.role, permission):
                abort(403)
            return view(*args, user=user, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


def anyone(view: View) -> View:
    """Mark a page as meant for anyone, signed in or not."""
    view.required_permission = PUBLIC  # type: ignore[attr-defined]
    return view


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=int(MAX_AGE.total_seconds()), path="/", httponly=True,
                        samesite="Lax", secure=context.settings().secure_cookies)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=context.settings().secure_cookies)
