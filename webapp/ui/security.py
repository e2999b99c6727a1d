"""What every page of the workspace UI gets: CSRF checks, cookie flags, a strict Content-Security-Policy,
the login throttle's counters on Redis, and error pages in HTML.

CSRF (Flask-WTF) is checked on the UI's blueprints only: the JSON API authenticates each request
with a key and a signature, the public pages carry their own signed form tokens, and provider
webhooks cannot send a token. A form sends the token as its `csrf_token` field; an htmx request as
the `X-CSRFToken` header, read from the `csrf-token` meta tag of every page. Flask's own cookie
holds nothing but the CSRF secret; who is signed in lives server-side (webapp/ui/access.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from redis import Redis
from werkzeug.exceptions import HTTPException

from engine.settings import Settings
from engine.workspaces.roles import Permission, can
from webapp.ui.access import current_user

csrf = CSRFProtect()

# Nothing from elsewhere, no inline script or style: a page that shows what a marketer typed (a
# template, a journey name) cannot be made to run it. Frames and form targets stay on this site.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

REFUSALS = {
    400: "The form had expired or did not come from this site. Go back, reload the page and try again.",
    403: "Your role in this workspace does not allow this.",
    404: "There is nothing here.",
    405: "This page cannot be used that way.",
}


def init_app(app: Flask, settings: Settings, redis: Redis) -> None:
    """Cookie flags, CSRF and the limiter for `app`; call before the UI's blueprints serve."""
    app.config.update(
        SESSION_COOKIE_NAME="rapport_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_CHECK_DEFAULT=False,  # the UI's blueprints check (protect_forms); the rest of the app has its own
        # The token lives as long as the browser's CSRF secret: a sign-in form left open over lunch still
        # works. Signing in and out replaces the secret, so a token seen before cannot be used after.
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)
    # The app's own Redis connection and namespace: embedded Redis is a unix socket whose URL the
    # `limits` library does not read, and tests keep apart by namespace.
    limiter = Limiter(get_remote_address, storage_uri="redis://",
                      storage_options={"connection_pool": redis.connection_pool},  # type: ignore[dict-item]
                      strategy="moving-window", key_prefix=f"{settings.namespace}:limiter")
    limiter.init_app(app)
    # No route carries a Flask-Limiter limit (the sign-in view reads its counters itself): exempt every request
    # from its middleware, which otherwise spent some 90 µs resolving limits on each API request.
    limiter.request_filter(_no_route_limits)
    app.extensions["rapport"]["limiter"] = limiter


def _no_route_limits() -> bool:
    return True


def ui_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of the workspace UI: its forms checked for CSRF, its pages under the CSP, its errors as pages."""
    blueprint = Blueprint(name, import_name)
    blueprint.before_request(protect_forms)
    blueprint.after_request(page_headers)
    blueprint.register_error_handler(HTTPException, refusal_page)
    blueprint.context_processor(page_context)
    return blueprint


def page_context() -> dict[str, Any]:
    """What every page's layout shows: who is signed in, and the links their role may follow."""
    return {"user": current_user(), "can": can, "Permission": Permission}


def protect_forms() -> None:
    """Refuse a POST (PUT, PATCH, DELETE) without this browser's CSRF token (CSRFError: 400)."""
    csrf.protect()


def page_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")  # pages of a signed-in person stay off shared caches
    return response


def refusal_page(exc: HTTPException) -> Any:
    code = exc.code or 500
    reason = REFUSALS[400] if isinstance(exc, CSRFError) else REFUSALS.get(code, exc.description)
    return render_template("workspace/refused.html", code=code, title=exc.name, reason=reason), code
