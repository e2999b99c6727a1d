"""Application factory: `gunicorn 'webapp.app:create_app()'`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, abort, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from engine.clock import utcnow
from engine.delivery.templates import Templates
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from templates.stored import StoredTemplates
from webapp import api, ops, public, ui
from webapp.ui import security as ui_security
from workers.queues import connect_redis, make_job_sink

MAX_BODY = 1024 * 1024  # 1 MiB


def _digits_at_most(limit: int) -> str:
    """A regular expression for the decimal numbers from 0 to `limit` (no sign)."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"]
    for position, digit in enumerate(digits):
        if digit != "0":
            options.append(digits[:position] + f"[0-{int(digit) - 1}]" + rf"\d{{{len(digits) - position - 1}}}")
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class DatabaseId(IntegerConverter):
    """`<int:...>` in every route: only what a database id column can hold (BIGINT). A larger number
    matches no route, so every method answers an ordinary 404 (a converter that refused it after
    matching would make werkzeug answer 405 for a method another route has) instead of an "out of
    range" error from the database."""

    regex = _digits_at_most(2**63 - 1)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = utcnow,
               templates: Templates | None = None) -> Flask:
    """`templates`: what journeys are checked against (default: each workspace's published templates, the
    seeds shipped in templates/ where it has none; the template API edits those)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder="pages")  # page templates shared by ui/ and public/
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False)
    app.url_map.converters["int"] = DatabaseId  # before any blueprint adds its routes
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (rapport run sets it for the processes it starts)")
    redis = connect_redis(settings.redis_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine, make_job_sink(redis, settings.namespace, settings.batch_size))
    stored = StoredTemplates(sessions)
    app.extensions["rapport"] = {
        "settings": settings,
        "clock": clock,
        "templates": templates or stored,
        "stored_templates": stored,
        "redis": redis,
        "engine": engine,
        "sessions": sessions,
    }
    ui_security.init_app(app, settings, redis)  # CSRF, cookie flags and the sign-in throttle's counters

    for blueprint in (*api.BLUEPRINTS, *public.BLUEPRINTS, *ops.BLUEPRINTS, *ui.BLUEPRINTS):
        app.register_blueprint(blueprint)
    # Browsers ask for /favicon.ico on their own; answer it with no icon rather than a 404 in every console.
    app.add_url_rule("/favicon.ico", "favicon", lambda: ("", 204))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        messages = {413: f"request body is larger than {MAX_BODY // 1024} KiB"}
        response = jsonify(error=exc.name.lower().replace(" ", "_"),
                           message=messages.get(exc.code or 500, exc.description))
        return response, exc.code

    app.before_request(_refuse_nul_outside_json)
    return app


def _refuse_nul_outside_json() -> None:
    """NUL is refused in JSON by the strict reader (webapp/api/json_body.py); here in the rest of a request.

    Nothing stored can hold a NUL (PostgreSQL cannot), so a path with one names nothing (404),
    and a url-encoded form of a page with one (the subscription form, a review comment) is
    refused (400) before a query fails on it. Under /api/ the views answer for their own forms
    (a provider's webhook: 400 malformed_webhook), each as its spec says.
    """
    if "\x00" in request.path:
        abort(404)
    # The raw bytes, cached: views that check a signature over them (Twilio) read the same bytes,
    # and werkzeug parses the form from the cache. A NUL is "%00" there (the body is ASCII).
    if (request.mimetype == "application/x-www-form-urlencoded" and not request.path.startswith("/api/")
            and b"%00" in request.get_data(cache=True)):
        abort(400, "a form field holds a NUL character (\\u0000), which cannot be stored")
