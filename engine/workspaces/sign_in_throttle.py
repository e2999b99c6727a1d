"""Whether a sign-in may be tried at all, from the recent failures for its account and its address.

Two limits, over a moving window: failures for one account (guessing one person's
password, from however many addresses) and failures from one network address (trying
many accounts). The web edge counts failures in Redis and asks this module; the decision
is made before the password is checked, so a guess made past the limit learns nothing even
when it is right. The account limit lets a stranger lock an account out for a quarter of an
hour by failing on purpose: short enough to be a nuisance rather than a denial, and it
never touches the sessions of a person already signed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal


@dataclass(frozen=True)
class Limit:
    failures: int
    window: timedelta

    @property
    def rate(self) -> str:
        """The limit in the notation of the `limits` library ("5 per 900 second")."""
        return f"{self.failures} per {int(self.window.total_seconds())} second"


ACCOUNT_LIMIT = Limit(5, timedelta(minutes=15))
ADDRESS_LIMIT = Limit(20, timedelta(minutes=15))  # higher: an office signs in from behind one address


@dataclass(frozen=True)
class Recent:
    """Failed sign-ins still inside the window, and how long until the oldest of them leaves it."""

    failures: int
    oldest_leaves_in: timedelta = timedelta(0)


@dataclass(frozen=True)
class Refusal:
    scope: Literal["account", "address"]
    retry_after: timedelta

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after.total_seconds()))

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after.total_seconds() / 60))
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        where = "for this account" if self.scope == "account" else "from your network address"
        return f"Too many failed sign-ins {where}. Try again in {wait}."


def sign_in_refusal(account: Recent, address: Recent, *, account_limit: Limit = ACCOUNT_LIMIT,
                    address_limit: Limit = ADDRESS_LIMIT) -> Refusal | None:
    """None when the sign-in may be tried; else which limit is reached and when one more try is allowed."""
    if account.failures >= account_limit.failures:
        return Refusal("account", account.oldest_leaves_in)
    if address.failures >= address_limit.failures:
        return Refusal("address", address.oldest_leaves_in)
    return None
