"""Rating links from review request emails: `GET /r/review/<token>` records the rating,
`POST /r/review/<token>/comment` an optional comment.

The token (engine.links.reviews) is the only credential: whoever holds the email may
rate that order. A tampered or foreign token is answered 400 and records nothing.

The comment form is protected against cross-site posts by a double-submit token: the
rating page sets a random nonce in a cookie (SameSite=Lax, so a cross-site POST does
not carry it) and puts HMAC(secret, link token | nonce | issue time) in the form; the
POST must bring both, and the form token expires after two days. HEAD requests (link
checkers, mail scanners probing a URL) see the page but record nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from engine.links.reviews import ReviewLink, read_token
from engine.tracking.reviews import MAX_COMMENT, record_comment, record_rating, shop_name
from webapp import context

bp = Blueprint("reviews", __name__)

NONCE_COOKIE = "rapport_review_nonce"
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
FORM_TOKEN_MAX_AGE = 2 * 86400
CLOCK_SKEW = 300


def form_token(secret: str, link_token: str, nonce: str, issued_at: int) -> str:
    key = hmac.new(secret.encode(), b"rapport review comment form", hashlib.sha256).digest()
    mac = hmac.new(key, f"{link_token}|{nonce}|{issued_at}".encode(), hashlib.sha256).hexdigest()
    return f"{issued_at}.{mac}"


def form_token_is_valid(secret: str, link_token: str, nonce: str | None, given: str | None, *, now: int) -> bool:
    if not nonce or not NONCE_RE.match(nonce) or not given:
        return False
    issued, _, _mac = given.partition(".")
    # A little negative age is allowed: the page may come from a web process whose clock runs ahead.
    if not re.fullmatch(r"[0-9]{1,12}", issued) or not -CLOCK_SKEW <= now - int(issued) <= FORM_TOKEN_MAX_AGE:
        return False
    expected = form_token(secret, link_token, nonce, int(issued))
    return hmac.compare_digest(expected.encode(), given.encode())


def _page(status: int, **values: Any) -> Response:
    response = make_response(render_template("review.html", max_comment=MAX_COMMENT, **values), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL carries the token
    return response


def _invalid() -> Response:
    return _page(400, state="invalid")


def _thanks(token: str, shop: str, link: ReviewLink, *, status: int = 200, comment_saved: bool = False,
            error: str | None = None, comment: str = "") -> Response:
    nonce = request.cookies.get(NONCE_COOKIE)
    if not nonce or not NONCE_RE.match(nonce):
        nonce = secrets.token_hex(16)
    secret = context.settings().secret_key
    response = _page(status, state="thanks", shop=shop, score=link.score, token=token,
                     comment_saved=comment_saved, error=error, comment=comment,
                     form_token=form_token(secret, token, nonce, _seconds()))
    response.set_cookie(NONCE_COOKIE, nonce, max_age=FORM_TOKEN_MAX_AGE, path="/r/review/", httponly=True,
                        samesite="Lax", secure=context.settings().base_url.startswith("https://"))
    return response


def _seconds() -> int:
    return int(context.now().timestamp())


def _link(token: str) -> ReviewLink | None:
    return read_token(context.settings().secret_key, token)


@bp.get("/r/review/<token>")
def rate(token: str) -> Response:
    link = _link(token)
    if link is None:
        return _invalid()
    if request.method == "HEAD":
        return _page(200, state="probe")
    with context.sessions().begin() as session:
        recorded = record_rating(session, link, now=context.now())
    if recorded is None:
        return _page(410, state="gone")
    return _thanks(token, recorded.workspace_name, link)


@bp.post("/r/review/<token>/comment")
def comment(token: str) -> Response:
    link = _link(token)
    if link is None:
        return _invalid()
    secret = context.settings().secret_key
    if not form_token_is_valid(secret, token, request.cookies.get(NONCE_COOKIE), request.form.get("csrf_token"),
                               now=_seconds()):
        return _page(400, state="expired")
    text = request.form.get("comment", "").strip()
    if not text or len(text) > MAX_COMMENT:
        with context.sessions()() as session:
            shop = shop_name(session, link)
        if shop is None:
            return _page(410, state="gone")
        return _thanks(token, shop, link, status=400, comment=text[:MAX_COMMENT],
                       error=f"Please write a comment of up to {MAX_COMMENT} characters.")
    with context.sessions().begin() as session:
        recorded = record_comment(session, link, text, now=context.now())
    if recorded is None:
        return _page(410, state="gone")
    return _thanks(token, recorded.workspace_name, link, comment_saved=True)
