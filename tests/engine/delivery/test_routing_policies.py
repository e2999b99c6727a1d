"""Routing, quiet hours and frequency caps: pure decisions that take `now`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.delivery.policies import (
    Recipient,
    candidate_channels,
    cap_hit,
    parse_frequency_caps,
    parse_quiet_hours,
    quiet_until,
    route,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOBODY_SUPPRESSED = lambda channel, address: False  # noqa: E731


def test_the_first_channel_with_address_and_consent_wins() -> None:
    """Telegram -> SMS -> email: no chat linked and no SMS opt-in, so email takes it."""
    who = Recipient(email="ann@example.com", phone="+4915112345678", consent={"sms": "opted_out"})
    chosen = route(["telegram", "sms", "email"], who, transactional=False, suppressed=NOBODY_SUPPRESSED)
    assert (chosen.channel, chosen.address, chosen.remaining) == ("email", "ann@example.com", ())
    assert chosen.passed_over == ("no telegram account linked", "contact opted out of sms")


def test_sms_marketing_needs_an_explicit_opt_in_but_order_updates_do_not() -> None:
    """Unknown SMS consent blocks marketing; a transactional message goes."""
    who = Recipient(phone="+4915112345678")
    assert route(["sms"], who, transactional=False, suppressed=NOBODY_SUPPRESSED).channel is None
    assert route(["sms"], who, transactional=True, suppressed=NOBODY_SUPPRESSED).channel == "sms"


def test_a_suppressed_address_is_never_used_even_for_transactional_mail() -> None:
    """Hard suppression wins over the transactional bypass."""
    who = Recipient(email="gone@example.com")
    chosen = route(["email"], who, transactional=True, suppressed=lambda ch, a: a == "gone@example.com")
    assert chosen.channel is None
    assert chosen.skip_reason == "skipped: email address is suppressed"


def test_a_topic_the_contact_left_skips_marketing() -> None:
    """Unsubscribed from the newsletter topic: the newsletter send is skipped on every channel."""
    who = Recipient(email="ann@example.com", topics={"newsletter": False})
    chosen = route(["email"], who, transactional=False, topic="newsletter", suppressed=NOBODY_SUPPRESSED)
    assert chosen.skip_reason == "skipped: unsubscribed from topic newsletter"


def test_preferred_and_reply_channels_come_first() -> None:
    """The contact's chosen channel, or the channel the trigger came in on, leads the fallbacks."""
    who = Recipient(preferred_channel="viber")
    assert candidate_channels("preferred", ["telegram", "email"], who) == ["viber", "telegram", "email"]
    assert candidate_channels("preferred", ["email"], Recipient()) == ["email"]
    assert candidate_channels("reply", ["email"], who, reply_channel="whatsapp") == ["whatsapp", "email"]
    assert candidate_channels("sms", ["sms", "email"], who) == ["sms", "email"]


def test_quiet_hours_defer_to_nine_in_the_morning_local_time() -> None:
    """An SMS at 22:30 Berlin time waits for 09:00 the next day; one at 12:00 goes now."""
    window = parse_quiet_hours({})["sms"]
    late = datetime(2030, 1, 7, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    assert quiet_until(window, BERLIN, now=late) == datetime(2030, 1, 8, 8, 0, tzinfo=UTC)
    early = datetime(2030, 1, 8, 5, 0, tzinfo=UTC)  # 06:00 in Berlin: same morning
    assert quiet_until(window, BERLIN, now=early) == datetime(2030, 1, 8, 8, 0, tzinfo=UTC)
    assert quiet_until(window, BERLIN, now=datetime(2030, 1, 8, 11, 0, tzinfo=UTC)) is None
    assert parse_quiet_hours({})["email"] is None


def test_a_workspace_can_move_or_lift_quiet_hours() -> None:
    """Settings override the defaults per channel; null lifts them."""
    hours = parse_quiet_hours({"quiet_hours": {"sms": {"start": "20:00", "end": "08:00"}, "telegram": None}})
    assert hours["sms"] == (time(20, 0), time(8, 0))
    assert hours["telegram"] is None


def test_a_daytime_quiet_window_is_supported() -> None:
    """A window that does not cross midnight (e.g. a lunch break) defers to its end the same day."""
    at = datetime(2030, 1, 7, 11, 30, tzinfo=UTC)  # 12:30 Berlin
    assert quiet_until((time(12, 0), time(14, 0)), BERLIN, now=at) == datetime(2030, 1, 7, 13, 0, tzinfo=UTC)


def test_quiet_hours_end_at_the_right_instant_across_a_dst_change() -> None:
    """The night before summer time starts, 09:00 local is 07:00 UTC, not 08:00."""
    night = datetime(2030, 3, 30, 22, 0, tzinfo=UTC)  # 23:00 CET; 31 March is the switch
    assert quiet_until((time(21, 0), time(9, 0)), BERLIN, now=night) == datetime(2030, 3, 31, 7, 0, tzinfo=UTC)


def test_a_frequency_cap_counts_across_journeys_and_says_when_it_frees() -> None:
    """Three emails this week with a 3/7d cap: the next waits until the oldest is a week old."""
    now = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
    recent = [("email", now - timedelta(days=d)) for d in (6, 3, 1)] + [("sms", now - timedelta(days=2))]
    caps = parse_frequency_caps({"frequency_caps": {"email": {"max": 3, "days": 7}}})
    hit = cap_hit("email", recent, caps, now=now)
    assert hit is not None and hit.reason == "frequency cap 3/7d on email"
    assert hit.frees_at == now + timedelta(days=1)
    assert cap_hit("sms", recent, caps, now=now) is None


def test_a_global_cap_counts_every_channel() -> None:
    """An 'all' cap of 2 per day stops a third message on any channel."""
    now = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
    recent = [("email", now - timedelta(hours=5)), ("sms", now - timedelta(hours=1))]
    hit = cap_hit("telegram", recent, {"all": (2, 1)}, now=now)
    assert hit is not None and hit.reason == "frequency cap 2/1d on all channels"
    assert hit.frees_at == now + timedelta(hours=19)
