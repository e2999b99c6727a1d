"""Which time zone a contact's local times are in: one rule for every reader.

A contact's own zone when it names one this machine knows, else the workspace's, else
UTC. Walks (wait until ten o'clock), time triggers (birthdays), routing (quiet hours,
send at a local time), dispatch and the simulation all ask here, so a backtest and a
real run agree on when "ten in the morning" is.

A stored name that is not a zone (saved before it was checked, or missing from this
machine's tz database after an update) falls back instead of failing the walk or the
send: a message at the workspace's ten o'clock beats none. Ingest refuses such names
up front with `is_time_zone`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_ZONE = ZoneInfo("UTC")

# What ZoneInfo raises for a name that is not a zone: unknown (KeyError's subclass), malformed
# ("", "../x", a NUL), or naming a folder of the tz database ("America": IsADirectoryError).
_NOT_A_ZONE = (ZoneInfoNotFoundError, ValueError, OSError)


def zone_of(name: str | None, *, fallback: ZoneInfo = UTC_ZONE) -> ZoneInfo:
    """The zone `name` names, or `fallback` when it is empty or names none."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except _NOT_A_ZONE:
        return fallback


def contact_zone(timezone: str | None, workspace_timezone: str | None) -> ZoneInfo:
    """A contact's local zone: their own, else their workspace's, else UTC."""
    return zone_of(timezone, fallback=zone_of(workspace_timezone))


def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA zone this machine knows (`Europe/Berlin`; not `America` or `CET+1`)."""
    try:
        ZoneInfo(name)
    except _NOT_A_ZONE:
        return False
    return True
