"""Failed sign-ins counted on Redis, per account and per network address; the engine decides what they mean.

The counts live in Flask-Limiter's moving windows (the app's Redis, its namespace), one per
account and one per address. Flask-Limiter's own route decorators would refuse with a bare 429
before the view runs; the sign-in page wants its refusal at the form, with the email kept, and
the rule (engine/workspaces/sign_in_throttle.py) tested without Redis, so the view asks here.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.strategies import RateLimiter

from engine.workspaces.sign_in_throttle import ACCOUNT_LIMIT, ADDRESS_LIMIT, Recent, Refusal, sign_in_refusal
from webapp import context

ACCOUNT: RateLimitItem = parse(ACCOUNT_LIMIT.rate)
ADDRESS: RateLimitItem = parse(ADDRESS_LIMIT.rate)


def refusal(email: str) -> Refusal | None:
    """Whether a sign-in as `email` from this request's address is refused for now."""
    return sign_in_refusal(_recent(ACCOUNT, _account(email)), _recent(ADDRESS, _address()))


def record_failure(email: str) -> None:
    _counters().hit(ACCOUNT, *_account(email))
    _counters().hit(ADDRESS, *_address())


def forget_failures(email: str) -> None:
    """After a sign-in that went through: the account's owner has shown who they are. The address
    keeps its count, which also stands for the other accounts tried from it."""
    _counters().clear(ACCOUNT, *_account(email))


def _recent(item: RateLimitItem, identifiers: tuple[str, ...]) -> Recent:
    stats = _counters().get_window_stats(item, *identifiers)
    failures = item.amount - stats.remaining
    return Recent(failures, timedelta(seconds=max(0.0, stats.reset_time - time.time())) if failures else timedelta(0))


def _account(email: str) -> tuple[str, ...]:
    return (context.settings().namespace, "sign-in-account", email)


def _address() -> tuple[str, ...]:
    return (context.settings().namespace, "sign-in-address", get_remote_address())


def _counters() -> RateLimiter:
    return current_app.extensions["rapport"]["limiter"].limiter  # type: ignore[no-any-return]
