"""Email through the routing policy: why it must not go (a value stored on the message), or None."""

from __future__ import annotations

from typing import Any

import pytest

from engine.delivery.policies import Recipient, route


def email_skip_reason(email: str | None, consent: dict[str, Any], *, suppressed: bool) -> str | None:
    """What routing an email-only send step says for this contact."""
    chosen = route(["email"], Recipient(email=email, consent=consent), transactional=False,
                   suppressed=lambda channel, address: suppressed)
    return None if chosen.channel else chosen.skip_reason


@pytest.mark.parametrize("email", [None, ""])
def test_a_contact_without_an_email_address_is_skipped(email: str | None) -> None:
    """No address (None or empty) is a skip, whatever the consent."""
    reason = email_skip_reason(email, {"email": "opted_in"}, suppressed=False)

    assert reason == "skipped: contact has no email address"


def test_a_contact_who_opted_out_is_skipped() -> None:
    """An opt-out is a skip that says so."""
    reason = email_skip_reason("zoe@example.com", {"email": "opted_out"}, suppressed=False)

    assert reason == "skipped: contact opted out of email"


def test_a_contact_with_pending_double_opt_in_is_skipped() -> None:
    """Consent not yet confirmed is a skip that names the pending double opt-in."""
    reason = email_skip_reason("zoe@example.com", {"email": "pending"}, suppressed=False)

    assert reason == "skipped: email consent pending (double opt-in not confirmed)"


@pytest.mark.parametrize("consent", [{"email": "opted_in"}, {}], ids=["opted_in", "unknown"])
def test_a_suppressed_address_is_skipped_even_with_consent(consent: dict[str, Any]) -> None:
    """A suppressed address (bounced, complained) is skipped although the contact did not opt out."""
    reason = email_skip_reason("zoe@example.com", consent, suppressed=True)

    assert reason == "skipped: email address is suppressed"


@pytest.mark.parametrize(
    "consent", [{"email": "opted_in"}, {}, {"email": "unknown"}, {"sms": "opted_out"}],
    ids=["opted_in", "no-consent-recorded", "unknown", "other-channel-opted-out"],
)
def test_a_contact_opted_in_or_of_unknown_consent_gets_the_email(consent: dict[str, Any]) -> None:
    """With an address, no opt-out, nothing pending and no suppression there is no reason to skip."""
    assert email_skip_reason("zoe@example.com", consent, suppressed=False) is None
