"""Webhook signatures: `t=<unix>,v1=<hmac>` over "<t>." + body, fresh within five minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import AuthError
from engine.signing import sign, verify

SECRET = "whsec_current"
BODY = b'{"type":"cart_updated","properties":{"cart_id":"c-1"}}'
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T = int(NOW.timestamp())


def test_a_correct_signature_verifies() -> None:
    """A header made by sign() with the same secret, body and a current timestamp is accepted."""
    verify(sign(SECRET, BODY, T), SECRET, BODY, now=NOW)


@pytest.mark.parametrize("skew", [-300, 300])
def test_a_signature_exactly_five_minutes_off_still_verifies(skew: int) -> None:
    """The tolerance is inclusive: 300 s early or late is accepted (the 301 s tests below are the boundary)."""
    verify(sign(SECRET, BODY, T + skew), SECRET, BODY, now=NOW)


def test_a_tampered_body_is_refused() -> None:
    """One changed byte in the body makes the signature not match."""
    header = sign(SECRET, BODY, T)

    with pytest.raises(AuthError, match="does not match the body"):
        verify(header, SECRET, BODY.replace(b"c-1", b"c-2"), now=NOW)


def test_a_signature_made_with_another_secret_is_refused() -> None:
    """A header signed with a different secret does not match."""
    header = sign("whsec_someone_else", BODY, T)

    with pytest.raises(AuthError, match="does not match the body"):
        verify(header, SECRET, BODY, now=NOW)


@pytest.mark.parametrize("skew", [-301, 301], ids=["301s-old", "301s-in-the-future"])
def test_a_timestamp_more_than_five_minutes_off_is_refused(skew: int) -> None:
    """A correctly signed request 301 s old (a replay) or 301 s ahead is refused."""
    header = sign(SECRET, BODY, T + skew)

    with pytest.raises(AuthError, match="more than 5 minutes off"):
        verify(header, SECRET, BODY, now=NOW)


@pytest.mark.parametrize("header", [None, ""])
def test_a_missing_header_is_refused(header: str | None) -> None:
    """No Rapport-Signature header at all says so."""
    with pytest.raises(AuthError, match="missing Rapport-Signature header"):
        verify(header, SECRET, BODY, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"v1={sign(SECRET, BODY, T).split('v1=')[1]}",
        f"t={T}",
        f"t={T},v2=abc",
        "garbage",
    ],
    ids=["no-t", "no-v1", "only-unknown-scheme", "garbage"],
)
def test_a_header_without_t_or_v1_is_refused_with_its_expected_shape(header: str) -> None:
    """A header lacking t or v1 is refused with a message showing the expected format."""
    with pytest.raises(AuthError, match=r"must look like t=<unix seconds>,v1=<hex hmac>"):
        verify(header, SECRET, BODY, now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1.7e9", ""])
def test_a_non_numeric_timestamp_is_refused(timestamp: str) -> None:
    """t must be whole unix seconds."""
    with pytest.raises(AuthError, match="malformed timestamp"):
        verify(f"t={timestamp},v1=abc", SECRET, BODY, now=NOW)


def test_an_absurdly_large_timestamp_is_refused_not_crashing() -> None:
    """A 400-digit t is just too far off (it must not raise OverflowError and become a 500)."""
    with pytest.raises(AuthError, match="more than 5 minutes off"):
        verify("t=1" + "0" * 400 + ",v1=abc", SECRET, BODY, now=NOW)


def test_a_non_ascii_signature_is_refused_not_crashing() -> None:
    """A v1 value with non-ASCII characters does not match (compare_digest must not raise TypeError)."""
    with pytest.raises(AuthError, match="does not match the body"):
        verify(f"t={T},v1=caf\u00e9", SECRET, BODY, now=NOW)


def test_one_matching_v1_among_several_verifies_during_secret_rotation() -> None:
    """While a secret is rotated the sender signs with old and new; one matching v1 is enough."""
    old = sign("whsec_previous", BODY, T).split("v1=")[1]
    new = sign(SECRET, BODY, T).split("v1=")[1]

    verify(f"t={T},v1={old},v1={new}", SECRET, BODY, now=NOW)
    verify(f"t={T}, v1={new}, v1={old}", SECRET, BODY, now=NOW)


def test_several_v1_values_none_matching_are_refused() -> None:
    """Extra v1 values do not widen what is accepted: all of them wrong is still a mismatch."""
    wrong = [sign(f"whsec_{n}", BODY, T).split("v1=")[1] for n in range(3)]

    with pytest.raises(AuthError, match="does not match the body"):
        verify(f"t={T}," + ",".join(f"v1={w}" for w in wrong), SECRET, BODY, now=NOW)


def test_the_tolerance_is_measured_from_the_now_given() -> None:
    """verify takes `now`: the same header is fresh at signing time and stale ten minutes later."""
    header = sign(SECRET, BODY, T)

    verify(header, SECRET, BODY, now=NOW)
    with pytest.raises(AuthError):
        verify(header, SECRET, BODY, now=NOW + timedelta(minutes=10))
