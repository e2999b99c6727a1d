"""Send policies: pure functions that say why a message must not go (now), or None.

A skip is a value: the reason is stored on the message and shown on the timeline.
Routing tries a step's channels in order (the contact's preferred one first when the
step says so) and takes the first that has an address, consent and no suppression.
Quiet hours and frequency caps do not drop a send: they say when it may go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.channels import TEXT_CHANNELS
from engine.reasons import Reason

OPT_IN_REQUIRED = ("sms", "whatsapp")  # marketing on these needs an explicit opt-in (TCPA, Meta policy)
DEFAULT_QUIET = (time(21, 0), time(9, 0))
# Texts arrive on a phone, and at night they wake people; an email waits in the inbox.
DEFAULT_QUIET_HOURS: dict[str, tuple[time, time] | None] = {
    "email": None, **dict.fromkeys(TEXT_CHANNELS, DEFAULT_QUIET)}


@dataclass(frozen=True)
class Recipient:
    """What routing needs to know about a contact."""

    email: str | None = None
    phone: str | None = None
    messenger_ids: Mapping[str, Any] = field(default_factory=dict)
    consent: Mapping[str, Any] = field(default_factory=dict)
    preferred_channel: str | None = None
    topics: Mapping[str, Any] = field(default_factory=dict)


def address_for(channel: str, recipient: Recipient) -> str | None:
    if channel == "email":
        return recipient.email
    if channel == "sms":
        return recipient.phone
    if channel == "whatsapp":
        found = recipient.messenger_ids.get("whatsapp")
        return str(found) if found else recipient.phone
    found = recipient.messenger_ids.get(channel)
    return str(found) if found else None


_MISSING_ADDRESS = {"email": "contact has no email address", "sms": "contact has no phone number"}


def consent_skip_reason(channel: str, recipient: Recipient, *, transactional: bool) -> tuple[Reason, str] | None:
    """Marketing needs consent; transactional messages (order updates) do not."""
    if transactional:
        return None
    state = recipient.consent.get(channel)
    if state == "opted_out":
        return Reason.OPTED_OUT, f"contact opted out of {channel}"
    if state == "pending":
        return Reason.CONSENT_PENDING, f"{channel} consent pending (double opt-in not confirmed)"
    if channel in OPT_IN_REQUIRED and state != "opted_in":
        return Reason.NO_OPT_IN, f"no {channel} marketing consent (opt-in required)"
    return None


def candidate_channels(channel: str, fallback: Sequence[str], recipient: Recipient, *,
                       reply_channel: str | None = None) -> list[str]:
    first = {"preferred": recipient.preferred_channel, "reply": reply_channel}.get(channel, channel)
    ordered = ([first] if first else []) + list(fallback)
    return list(dict.fromkeys(ordered))  # keep order, drop repeats


@dataclass(frozen=True)
class Route:
    channel: str | None  # None: no channel can take it; `skip_reason` says why
    address: str | None
    remaining: tuple[str, ...]  # the fallbacks left after the chosen channel
    passed_over: tuple[str, ...] = ()  # why earlier channels were passed over, for the timeline
    first_passed_over: Reason | None = None  # the code of the first of them: why the step's own channel did not

    @property
    def skip_reason(self) -> str:
        return "skipped: " + "; ".join(self.passed_over) if self.passed_over else "skipped: no channel to send on"

    @property
    def reason(self) -> Reason:
        """Why no channel took the message, as a code (when `channel` is None)."""
        return self.first_passed_over or Reason.NO_CHANNEL


def route(candidates: Sequence[str], recipient: Recipient, *, transactional: bool, topic: str | None = None,
          suppressed: Callable[[str, str], bool],
          unavailable: Mapping[str, tuple[Reason, str]] | None = None) -> Route:
    """The first candidate channel the message may go on, or why none may. `unavailable`: channels
    that cannot take any message now, with why."""
    if topic and not transactional and recipient.topics.get(topic) is False:
        return Route(None, None, (), (f"unsubscribed from topic {topic}",), Reason.TOPIC_UNSUBSCRIBED)
    passed_over: list[tuple[Reason, str]] = []
    for index, channel in enumerate(candidates):
        address = address_for(channel, recipient)
        why = (unavailable or {}).get(channel)
        if why is None and not address:
            why = Reason.NO_ADDRESS, _MISSING_ADDRESS.get(channel, f"no {channel} account linked")
        if why is None:
            why = consent_skip_reason(channel, recipient, transactional=transactional)
        if why is None and suppressed(channel, address or ""):
            why = Reason.SUPPRESSED, f"{channel} address is suppressed"
        if why is None:
            return _route(channel, address, tuple(candidates[index + 1:]), passed_over)
        passed_over.append(why)
    return _route(None, None, (), passed_over)


def _route(channel: str | None, address: str | None, remaining: tuple[str, ...],
           passed_over: list[tuple[Reason, str]]) -> Route:
    return Route(channel, address, remaining, tuple(text for _, text in passed_over),
                 passed_over[0][0] if passed_over else None)


def parse_quiet_hours(settings: Mapping[str, Any]) -> dict[str, tuple[time, time] | None]:
    """Workspace settings `quiet_hours` ({channel: {start, end} | null}) over the defaults."""
    merged = dict(DEFAULT_QUIET_HOURS)
    for channel, window in (settings.get("quiet_hours") or {}).items():
        merged[channel] = (time.fromisoformat(window["start"]), time.fromisoformat(window["end"])) if window else None
    return merged


def quiet_until(window: tuple[time, time] | None, tz: ZoneInfo, *, now: datetime) -> datetime | None:
    """When the quiet window `now` falls in opens again (UTC), or None if sending is fine now."""
    if window is None:
        return None
    start, end = window
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    overnight = start > end
    inside = (t >= start or t < end) if overnight else (start <= t < end)
    if not inside:
        return None
    day: date = local.date() + timedelta(days=1) if overnight and t >= start else local.date()
    # A wall time inside a spring-forward gap does not exist; zoneinfo reads it with the
    # offset before the gap, which lands just after the gap: the window's real opening.
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)


def parse_frequency_caps(settings: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Workspace settings `frequency_caps` ({channel | "all": {max, days}}) as (max, days)."""
    return {scope: (int(cap["max"]), int(cap["days"]))
            for scope, cap in (settings.get("frequency_caps") or {}).items() if cap}


@dataclass(frozen=True)
class CapHit:
    reason: str
    frees_at: datetime  # when the oldest counted message leaves the period


def cap_hit(channel: str, recent: Sequence[tuple[str, datetime]], caps: Mapping[str, tuple[int, int]], *,
            now: datetime) -> CapHit | None:
    """Is another marketing message on `channel` over a cap? `recent`: (channel, time) sent or due."""
    for scope in (channel, "all"):
        if scope not in caps:
            continue
        limit, days = caps[scope]
        period = timedelta(days=days)
        times = sorted(at for ch, at in recent if (scope == "all" or ch == channel) and at > now - period)
        if len(times) >= limit:
            where = "all channels" if scope == "all" else scope
            return CapHit(f"frequency cap {limit}/{days}d on {where}", times[len(times) - limit] + period)
    return None
