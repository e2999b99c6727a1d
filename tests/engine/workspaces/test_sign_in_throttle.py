"""The sign-in throttle's rule, over counts of recent failures (the counting on Redis is the web edge's)."""

from __future__ import annotations

from datetime import timedelta

from engine.workspaces.sign_in_throttle import ACCOUNT_LIMIT, ADDRESS_LIMIT, Recent, Refusal, sign_in_refusal

NONE = Recent(0)


def test_a_sign_in_is_tried_below_both_limits() -> None:
    """Four failures for the account and nineteen from the address still allow a try."""
    assert sign_in_refusal(Recent(4, timedelta(minutes=3)), Recent(19, timedelta(minutes=3))) is None


def test_five_failures_for_an_account_stop_tries_until_the_oldest_leaves_the_window() -> None:
    """The sixth try for the account waits as long as the oldest failure stays in the 15 minutes."""
    refused = sign_in_refusal(Recent(5, timedelta(minutes=11, seconds=20)), NONE)
    assert refused == Refusal("account", timedelta(minutes=11, seconds=20))
    assert refused.message == "Too many failed sign-ins for this account. Try again in 12 minutes."
    assert refused.retry_after_seconds == 680


def test_twenty_failures_from_one_address_stop_tries_for_any_account() -> None:
    """Trying many accounts from one address is stopped even when no account has failed twice."""
    refused = sign_in_refusal(Recent(1, timedelta(minutes=5)), Recent(20, timedelta(seconds=30)))
    assert refused == Refusal("address", timedelta(seconds=30))
    assert refused.message == "Too many failed sign-ins from your network address. Try again in 1 minute."


def test_the_account_limit_is_told_first_when_both_are_reached() -> None:
    """With both limits reached, the answer is about the account, the one the person can act on."""
    refused = sign_in_refusal(Recent(5, timedelta(minutes=2)), Recent(20, timedelta(minutes=9)))
    assert refused is not None and refused.scope == "account"


def test_limits_are_written_for_the_counters() -> None:
    """The limits in the `limits` notation the web edge's counters read: 5 and 20 per 15 minutes."""
    assert (ACCOUNT_LIMIT.rate, ADDRESS_LIMIT.rate) == ("5 per 900 second", "20 per 900 second")
