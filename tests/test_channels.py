"""One list of channel names (engine/channels.py): the other lists derive from it, and every label covers it."""

from __future__ import annotations

from typing import get_args

from engine.channels import CHANNELS, MESSENGERS, TEXT_CHANNELS, Channel
from engine.consent.preferences import CHANNEL_LABELS
from engine.delivery.policies import DEFAULT_QUIET_HOURS
from webapp.public.preferences import CHANNEL_WORDS
from webapp.ui.pages import CHANNEL_NAMES


def test_the_channel_type_and_the_lists_name_the_same_channels() -> None:
    """The type pydantic validates with and the tuples code loops over cannot drift apart."""
    assert get_args(Channel) == CHANNELS
    assert set(MESSENGERS) <= set(TEXT_CHANNELS) == set(CHANNELS) - {"email"}


def test_every_channel_has_a_label_wherever_a_person_reads_one() -> None:
    """The preference center, the unsubscribe page and the outbox name every channel, none by its key."""
    for labels in (CHANNEL_LABELS, CHANNEL_WORDS, CHANNEL_NAMES):
        assert set(labels) == set(CHANNELS)


def test_texts_are_quiet_at_night_by_default_and_email_is_not() -> None:
    """Default quiet hours: every text channel 21:00-09:00, email none."""
    assert set(DEFAULT_QUIET_HOURS) == set(CHANNELS)
    assert [channel for channel, window in DEFAULT_QUIET_HOURS.items() if window is None] == ["email"]
