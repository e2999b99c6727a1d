"""Unsubscribe (`/u/<token>`) and the preference center (`/p/<token>`): no login, the signed
link is the credential (engine.links.tokens). A tampered or foreign token is a 400 page and
changes nothing; the link of an erased contact is a 410 page.

Unsubscribe: a GET only shows a page with a button, because mail scanners and link
previews follow links; a POST unsubscribes. That POST is also RFC 8058's one-click
unsubscribe, which mail providers send with the body `List-Unsubscribe=One-Click` and
no cookies, so it takes no CSRF token (the token in the URL is the only secret needed,
and unsubscribing is the one thing it can do). Repeating it changes nothing.

The preference center's form is protected against cross-site posts by a double-submit
token, as webapp/public/reviews.py: a random nonce in a SameSite=Lax cookie and an HMAC over
(link token, nonce, issue time) in the form, valid for a day.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from engine.channels import CHANNELS, Channel
from engine.consent.preferences import (
    PreferencesChange,
    find_recipient,
    show_preferences,
    unsubscribe_from_channel,
    update_preferences,
)
from engine.links.tokens import (
    FORM_NONCE,
    PREFERENCES,
    PREFERENCES_PATH,
    form_token,
    form_token_is_valid,
    message_token,
    verify_preferences,
    verify_unsubscribe,
)
from webapp import context

bp = Blueprint("preferences", __name__)

NONCE_COOKIE = "rapport_prefs_nonce"
FORM_MAX_AGE = 86400
CHANNEL_WORDS: dict[Channel, str] = {"email": "emails", "sms": "text messages", "telegram": "Telegram messages",
                                     "whatsapp": "WhatsApp messages", "viber": "Viber messages"}


def private_page(template: str, status: int, **values: Any) -> Response:
    """A page for one contact: never cached, never framed, its token URL never sent on as a referrer."""
    response = make_response(render_template(template, **values), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def _secret() -> str:
    return context.settings().secret_key


def _preferences_url(workspace_id: str, contact_id: int, message_id: int) -> str:
    token = message_token(_secret(), PREFERENCES, workspace_id=workspace_id, contact_id=contact_id,
                          message_id=message_id)
    return context.settings().base_url + PREFERENCES_PATH + token


@bp.get("/u/<token>")
def confirm_unsubscribe(token: str) -> Response:
    ref = verify_unsubscribe(_secret(), token)
    if ref is None:
        return private_page("unsubscribe.html", 400, state="invalid")
    with context.sessions()() as session:
        found = find_recipient(session, ref)
        if found is None:
            return private_page("unsubscribe.html", 410, state="gone")
        return private_page("unsubscribe.html", 200, state="ask", token=token, shop=found.workspace.name,
                            channel_label=CHANNEL_WORDS.get(found.message.channel, "messages"),
                            preferences_url=_preferences_url(ref.workspace_id, ref.contact_id, ref.message_id))


@bp.post("/u/<token>")
def unsubscribe(token: str) -> Response:
    ref = verify_unsubscribe(_secret(), token)
    if ref is None:
        return private_page("unsubscribe.html", 400, state="invalid")
    # Any POST unsubscribes; the method is only for the timeline (a mail client's button, or our page's).
    method = "one_click" if request.form.get("List-Unsubscribe") == "One-Click" else (
        "page" if request.form.get("source") == "page" else "post")
    with context.sessions().begin() as session:
        done = unsubscribe_from_channel(session, ref, now=context.now(), method=method)
    if done is None:
        return private_page("unsubscribe.html", 410, state="gone")
    return private_page("unsubscribe.html", 200, state="done", shop=done.workspace_name,
                        channel_label=CHANNEL_WORDS.get(done.channel, "messages"),
                        preferences_url=_preferences_url(ref.workspace_id, ref.contact_id, ref.message_id))


def _seconds() -> int:
    return int(context.now().timestamp())


def _form_page(token: str, prefs: Any, *, saved: str | None = None) -> Response:
    nonce = request.cookies.get(NONCE_COOKIE) or ""
    if not FORM_NONCE.match(nonce):
        nonce = secrets.token_hex(16)
    response = private_page("preferences.html", 200, state="form", token=token, prefs=prefs,
                            shop=prefs.workspace_name, saved=saved,
                            form_token=form_token(_secret(), PREFERENCES, token, nonce, _seconds()))
    response.set_cookie(NONCE_COOKIE, nonce, max_age=FORM_MAX_AGE, path=PREFERENCES_PATH, httponly=True,
                        samesite="Lax", secure=context.settings().base_url.startswith("https://"))
    return response


@bp.route("/p/<token>", methods=["GET", "POST"])
def preferences(token: str) -> Response:
    ref = verify_preferences(_secret(), token)
    if ref is None:
        return private_page("preferences.html", 400, state="invalid")
    if request.method == "GET":
        with context.sessions()() as session:
            prefs = show_preferences(session, ref)
        return _form_page(token, prefs) if prefs else private_page("preferences.html", 410, state="gone")
    nonce = request.cookies.get(NONCE_COOKIE)  # required: it is what a cross-site post cannot bring
    if not nonce or not form_token_is_valid(_secret(), PREFERENCES, token, nonce, request.form.get("csrf_token"),
                                            now=context.now(), max_age=timedelta(seconds=FORM_MAX_AGE)):
        return private_page("preferences.html", 400, state="expired")
    form = request.form
    change = PreferencesChange(
        subscribed={channel for channel in CHANNELS if form.get(f"channel_{channel}") == "on"},
        preferred_channel=form.get("preferred_channel") or None,
        topics={name[len("topic_"):] for name, value in form.items() if name.startswith("topic_") and value == "on"},
        everything_off=form.get("action") == "unsubscribe_all",
    )
    with context.sessions().begin() as session:
        prefs = update_preferences(session, ref, change, now=context.now())
    if prefs is None:
        return private_page("preferences.html", 410, state="gone")
    saved = ("You are unsubscribed from everything." if change.everything_off else "Your preferences are saved.")
    return _form_page(token, prefs, saved=saved)

