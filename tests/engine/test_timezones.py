"""One time-zone rule: the contact's zone, else the workspace's, else UTC; a name that is no zone falls through."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from engine.timezones import UTC_ZONE, contact_zone, is_time_zone, zone_of

BERLIN, TOKYO = ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")


def test_a_contacts_own_zone_comes_first() -> None:
    """A contact in Tokyo of a Berlin shop gets their ten o'clock in Tokyo."""
    assert contact_zone("Asia/Tokyo", "Europe/Berlin") == TOKYO


@pytest.mark.parametrize("stored", [None, "", "Mars/Olympus_Mons", "America", "../etc/passwd"],
                         ids=["none", "empty", "unknown", "a-folder-of-the-tz-database", "a-path"])
def test_a_contact_without_a_usable_zone_gets_the_workspaces(stored: str | None) -> None:
    """No zone, or a stored name that is no zone, falls back to the shop's zone instead of failing the walk."""
    assert contact_zone(stored, "Europe/Berlin") == BERLIN


def test_without_any_usable_zone_it_is_utc() -> None:
    """Neither the contact nor the workspace names a zone: UTC."""
    assert contact_zone(None, "Nowhere/Special") == UTC_ZONE
    assert zone_of("America") == UTC_ZONE


def test_ingest_and_the_rule_agree_on_what_a_zone_is() -> None:
    """What ingest accepts is what the rule uses, and a name that would fall back is refused up front."""
    for name in ("Europe/Berlin", "UTC", "Etc/GMT+3", "America/Argentina/Buenos_Aires"):
        assert is_time_zone(name) and zone_of(name) == ZoneInfo(name)
    for name in ("America", "Mars/Olympus_Mons", "", "Europe/Berlin\x00", "x" * 300):
        assert not is_time_zone(name) and zone_of(name, fallback=TOKYO) == TOKYO
