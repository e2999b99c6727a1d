"""The sign-in page, signing out, and signing out everywhere.

Errors show at their field and keep what was typed, but for the password. A wrong email and
a wrong password get the same answer, so the page does not tell who has an account. Failed
sign-ins are counted per account and per network address (webapp/ui/throttle.py); past the
limit the form says how long to wait, and the password is not even checked.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, ValidationError

from engine.errors import FieldErrors
from engine.workspaces.roles import Permission
from engine.workspaces.sign_in import SignInProblem, sign_in, sign_out, sign_out_everywhere
from engine.workspaces.user_sessions import SignedIn
from engine.workspaces.users import normalize_email
from webapp import context
from webapp.ui import throttle
from webapp.ui.access import anyone, clear_session_cookie, current_user, requires, set_session_cookie
from webapp.ui.security import ui_blueprint

bp = ui_blueprint("sign_in", __name__)

PROBLEMS = {
    SignInProblem.WRONG_CREDENTIALS: "The email or the password is wrong.",
    SignInProblem.NO_WORKSPACE: "This account belongs to no workspace yet: ask a workspace's owner to add you.",
}
# A path on this site: no scheme, no "//host", nothing a browser strips or turns into a slash (tabs, "\\").
_OUR_PATH = re.compile(r"/[A-Za-z0-9/_.~%?=&+-]*")
STATUS = {SignInProblem.WRONG_CREDENTIALS: 401, SignInProblem.NO_WORKSPACE: 403}


def _an_email_address(form: FlaskForm, field: StringField) -> None:
    """The engine's own rule, so the form refuses exactly what `rapport user create` refuses."""
    try:
        normalize_email(field.data or "")
    except FieldErrors as exc:
        raise ValidationError(exc.errors[0]["message"]) from None


class SignInForm(FlaskForm):
    email = StringField("Email", validators=[_an_email_address])
    password = PasswordField("Password", validators=[InputRequired("enter your password")])


@bp.route("/sign-in", methods=["GET", "POST"])
@anyone
def sign_in_page() -> Any:
    form = SignInForm()
    if request.method == "GET":
        return redirect(_next_page(), 303) if current_user() else _page(form)
    if not form.validate():
        return _page(form, 422)
    email = normalize_email(form.email.data or "")
    refused = throttle.refusal(email)
    if refused is not None:
        return _page(form, 429, refused.message, headers={"Retry-After": str(refused.retry_after_seconds)})
    result = sign_in(context.sessions(), email, form.password.data or "", address=get_remote_address(),
                     now=context.now())
    if result.token is None:
        assert result.problem is not None
        if result.problem is SignInProblem.WRONG_CREDENTIALS:
            throttle.record_failure(email)
        return _page(form, STATUS[result.problem], PROBLEMS[result.problem])
    throttle.forget_failures(email)
    session.clear()  # a new CSRF secret: a token seen before signing in is worth nothing after
    response = redirect(_next_page(), 303)
    set_session_cookie(response, result.token)
    return response


@bp.post("/sign-out")
@requires(Permission.WORKSPACE_READ)
def sign_out_page(user: SignedIn) -> Response:
    with context.sessions().begin() as db:
        sign_out(db, user, now=context.now())
    return _signed_out("You are signed out.")


@bp.post("/sign-out-everywhere")
@requires(Permission.WORKSPACE_READ)
def sign_out_everywhere_page(user: SignedIn) -> Response:
    with context.sessions().begin() as db:
        ended = sign_out_everywhere(db, user, now=context.now())
    return _signed_out(f"You are signed out everywhere ({ended} session{'s' if ended != 1 else ''} ended).")


def _signed_out(message: str) -> Response:
    session.clear()
    flash(message)
    response = redirect(url_for("sign_in.sign_in_page"), 303)
    clear_session_cookie(response)
    return response


def _page(form: SignInForm, status: int = 200, problem: str | None = None,
          headers: dict[str, str] | None = None) -> Any:
    return render_template("workspace/sign_in.html", form=form, problem=problem), status, headers or {}


def _next_page() -> str:
    """Where to go once signed in: the page that asked for it, if it is one of ours, else the home page."""
    wanted = request.args.get("next", "")
    if _OUR_PATH.fullmatch(wanted) and not wanted.startswith("//"):
        return wanted
    return url_for("workspace.home")
