"""The subscription form (`/s/<workspace_id>`, embeddable in an iframe: static/subscribe.js)
and the double opt-in confirmation link (`/s/confirm/<token>`).

The form is anonymous, so there is no session a cross-site post could ride on; what
its token guards against is a script posting without ever loading the form. It is an
HMAC over (workspace, issue time), valid for a day, and needs no cookie: in an iframe
on the shop's site, browsers that block third-party cookies would drop one. A hidden
field that people leave empty and form-filling bots do not ("website") is a second,
silent check. Double opt-in is what keeps a stranger from subscribing someone else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from engine.consent.subscriptions import confirm_subscription, form_workspace, read_form, subscribe
from engine.errors import FieldErrors
from engine.links.tokens import form_token, form_token_is_valid, verify_confirm
from webapp import context
from webapp.public.preferences import private_page

bp = Blueprint("subscribe", __name__)

FORM_PURPOSE = "subscribe"
FORM_MAX_AGE = timedelta(days=1)


def _embedded() -> bool:
    return request.args.get("embed") == "1"


def _form_page(status: int, **values: Any) -> Response:
    response = make_response(render_template("subscribe.html", embedded=_embedded(), **values), status)
    response.headers["Cache-Control"] = "no-store"
    # Meant to be framed by the shop's own pages, wherever they are.
    response.headers["Content-Security-Policy"] = "frame-ancestors *"
    return response


def _show_form(workspace_id: str, shop: str, topics: list[dict[str, str]], *, status: int = 200,
               errors: dict[str, str] | None = None, notice: str | None = None) -> Response:
    token = form_token(context.settings().secret_key, FORM_PURPOSE, workspace_id, "",
                       int(context.now().timestamp()))
    submitted = request.method == "POST"
    return _form_page(status, state="form", workspace_id=workspace_id, shop=shop, topics=topics, form_token=token,
                      errors=errors or {}, notice=notice, submitted=submitted,
                      values=request.form if submitted else {})


@bp.get("/s/<workspace_id>")
def form(workspace_id: str) -> Response:
    with context.sessions()() as session:
        found = form_workspace(session, workspace_id)
    if found is None:
        return _form_page(404, state="not_found")
    return _show_form(workspace_id, *found)


@bp.post("/s/<workspace_id>")
def submit(workspace_id: str) -> Response:
    with context.sessions()() as session:
        found = form_workspace(session, workspace_id)
    if found is None:
        return _form_page(404, state="not_found")
    shop, topics = found
    settings = context.settings()
    if not form_token_is_valid(settings.secret_key, FORM_PURPOSE, workspace_id, "", request.form.get("csrf_token"),
                               now=context.now(), max_age=FORM_MAX_AGE):
        return _show_form(workspace_id, shop, topics, status=400,
                          notice="This form was open too long. Please check your details and send it again.")
    try:
        subscription = read_form(request.form, [topic["id"] for topic in topics])
    except FieldErrors as exc:
        errors: dict[str, str] = {}
        for item in exc.errors:
            errors.setdefault(item["field"], item["message"])
        return _show_form(workspace_id, shop, topics, status=422, errors=errors)
    if not request.form.get("website"):  # filled in: a bot; it is thanked all the same
        with context.sessions().begin() as session:
            subscribe(session, workspace_id, subscription, now=context.now(), secret=settings.secret_key,
                      base_url=settings.base_url)
    return _form_page(200, state="thanks", shop=shop, email=subscription.email)


@bp.get("/s/confirm/<token>")
def confirm(token: str) -> Response:
    ref = verify_confirm(context.settings().secret_key, token)
    if ref is None:
        return private_page("subscribe.html", 400, state="invalid")
    if ref.is_expired(now=context.now()):
        return private_page("subscribe.html", 410, state="expired")
    if request.method == "HEAD":  # link checkers probe URLs; only a visit confirms
        return private_page("subscribe.html", 200, state="probe")
    with context.sessions().begin() as session:
        confirmed = confirm_subscription(session, ref, now=context.now())
    status = 410 if confirmed.outcome == "gone" else 200
    return private_page("subscribe.html", status, state=confirmed.outcome, shop=confirmed.workspace_name)
