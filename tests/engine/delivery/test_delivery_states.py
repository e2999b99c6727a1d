"""The delivery state machine: receipts move a message only forward."""

from __future__ import annotations

import pytest

from engine.delivery.states import next_status


@pytest.mark.parametrize(("current", "reported", "expected"), [
    ("sent", "delivered", "delivered"),
    ("delivered", "opened", "opened"),
    ("sent", "clicked", "clicked"),
    ("opened", "clicked", "clicked"),
    ("clicked", "replied", "replied"),
    ("sending", "delivered", "delivered"),
])
def test_a_receipt_moves_a_message_forward(current: str, reported: str, expected: str) -> None:
    """Each later stage of the lifecycle replaces an earlier one."""
    assert next_status(current, reported) == expected


@pytest.mark.parametrize(("current", "reported"), [
    ("opened", "delivered"),  # the delivery receipt arrived after the open
    ("clicked", "opened"),
    ("delivered", "sent"),
    ("delivered", "delivered"),  # a duplicate
])
def test_a_late_or_repeated_receipt_changes_nothing(current: str, reported: str) -> None:
    """Out-of-order and duplicate receipts never move a message backwards."""
    assert next_status(current, reported) is None


def test_bounces_and_complaints_are_final() -> None:
    """Nothing moves a bounced, failed or complained message, and a bounce cannot follow an open."""
    assert next_status("sent", "bounced") == "bounced"
    assert next_status("bounced", "delivered") is None
    assert next_status("failed", "opened") is None
    assert next_status("opened", "complained") == "complained"
    assert next_status("complained", "clicked") is None
    assert next_status("opened", "bounced") is None


def test_a_receipt_settles_a_message_whose_fate_was_unknown() -> None:
    """A worker died after handing the message over; the provider's receipt says what happened."""
    assert next_status("unknown", "delivered") == "delivered"
    assert next_status("unknown", "bounced") == "bounced"


def test_messages_never_sent_take_no_receipts() -> None:
    """A skipped or still scheduled message cannot be delivered."""
    assert next_status("skipped", "delivered") is None
    assert next_status("scheduled", "delivered") is None
