"""The consent rule on its own: who may grant a channel again after the person said no or 'ask me first'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.contacts.consent import ConsentClaim, claim_from_event, persons, refusal

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WITHDRAWN = {"status": "opted_out", "at": (NOW - timedelta(days=3)).isoformat(), "source": "sms STOP",
             "by": "person"}


def event_claim(consent: dict[str, Any]) -> ConsentClaim:
    return claim_from_event(consent, occurred_at=NOW, event_id="evt-1", source="api")


def test_a_timed_person_sourced_claim_from_the_future_is_not_believed() -> None:
    """A checkout time later than now (a wrong clock, or a forged field) cannot outrank a withdrawal."""
    ahead = event_claim({"status": "opted_in", "at": NOW + timedelta(days=1), "source": "checkout_checkbox"})
    assert refusal(WITHDRAWN, "opted_out", ahead, now=NOW) == "withdrawn by the person on 2026-12-01 (sms STOP)"
    skewed = event_claim({"status": "opted_in", "at": NOW + timedelta(minutes=2), "source": "checkout_checkbox"})
    assert refusal(WITHDRAWN, "opted_out", skewed, now=NOW) is None


def test_opting_out_and_the_persons_own_actions_always_apply() -> None:
    """A shop's opt-out is never refused, nor is the person's START or preference-center choice."""
    assert refusal(WITHDRAWN, "opted_out", event_claim({"status": "opted_out"}), now=NOW) is None
    assert refusal(WITHDRAWN, "opted_out", persons("opted_in", "sms START", now=NOW), now=NOW) is None


def test_a_shop_opt_in_waits_for_the_persons_double_opt_in_confirmation() -> None:
    """After the person asked to confirm first (pending), the shop's plain opt-in does not skip the confirmation."""
    pending = {"status": "pending", "at": NOW.isoformat(), "source": "signup form", "by": "person"}
    reason = refusal(pending, "pending", event_claim({"status": "opted_in"}), now=NOW)
    assert reason == "the person has not confirmed the double opt-in asked for on 2026-12-04 (signup form)"


def test_a_timed_claim_older_than_the_stored_state_is_out_of_date() -> None:
    """The shop's own records too are taken in time order when they say when they were made."""
    shop_out = {"status": "opted_out", "at": NOW.isoformat(), "source": "api event", "by": "shop"}
    older = event_claim({"status": "opted_in", "at": NOW - timedelta(hours=1), "source": "admin_import"})
    assert (refusal(shop_out, "opted_out", older, now=NOW) or "").startswith("older than the opted_out recorded")
    assert refusal(shop_out, "opted_out", event_claim({"status": "opted_in"}), now=NOW) is None
