"""The pure accessors policies read: quiet hours, frequency caps and attribution, defaults applied."""

from __future__ import annotations

from datetime import time

import pytest

from engine.delivery.settings import (
    attribution_for,
    frequency_caps_for,
    held_expiry_hours,
    parse_delivery_settings,
    quiet_hours_for,
)
from engine.errors import FieldErrors

NIGHT = (time(21, 0), time(9, 0))


def test_unset_settings_mean_no_night_sms_or_messengers_and_no_caps() -> None:
    """Defaults: SMS, Telegram, WhatsApp, Viber quiet 21:00-09:00; email never; no caps; 5/1 day windows."""
    for settings in (None, {}, {"quiet_hours": None, "frequency_caps": None, "other": 1}):
        assert quiet_hours_for(settings) == {"email": None, "sms": NIGHT, "telegram": NIGHT,
                                             "whatsapp": NIGHT, "viber": NIGHT}
        assert frequency_caps_for(settings) == {}
        assert attribution_for(settings) == {"click_days": 5, "open_days": 1}


def test_stored_windows_override_the_defaults_channel_by_channel() -> None:
    """A channel set to null has no quiet hours; channels not named keep the default."""
    settings = {"quiet_hours": {"telegram": None, "email": {"start": "23:00", "end": "06:30"}}}
    assert quiet_hours_for(settings) == {"email": (time(23, 0), time(6, 30)), "sms": NIGHT, "telegram": None,
                                         "whatsapp": NIGHT, "viber": NIGHT}


def test_caps_are_max_and_days_and_a_null_cap_is_no_cap() -> None:
    """{"sms": {"max": 2, "days": 7}, "email": null, "all": ...} -> {"sms": (2, 7), "all": (5, 7)}."""
    settings = {"frequency_caps": {"sms": {"max": 2, "days": 7}, "email": None, "all": {"max": 5, "days": 7}}}
    assert frequency_caps_for(settings) == {"sms": (2, 7), "all": (5, 7)}


def test_a_partial_attribution_setting_keeps_the_other_default() -> None:
    """Setting only click_days leaves open_days at 1."""
    assert attribution_for({"attribution": {"click_days": 10}}) == {"click_days": 10, "open_days": 1}


def test_settings_broken_behind_the_apis_back_raise_field_errors() -> None:
    """Stored settings are validated when read too; a broken one is reported, never guessed at."""
    with pytest.raises(FieldErrors, match=r"quiet_hours\.sms\.start"):
        quiet_hours_for({"quiet_hours": {"sms": {"start": "9pm", "end": "09:00"}}})


def test_held_messages_expire_after_a_day_unless_set_otherwise() -> None:
    """24 hours by default; 0 keeps held messages however old; out of range is a field error."""
    assert held_expiry_hours(None) == 24
    assert held_expiry_hours({"held_messages": {"expire_after_hours": 0}}) == 0
    with pytest.raises(FieldErrors) as caught:
        parse_delivery_settings({"held_messages": {"expire_after_hours": -1}})
    assert [e["field"] for e in caught.value.errors] == ["held_messages.expire_after_hours"]
