"""A workspace's delivery settings: quiet hours, frequency caps and attribution windows.

They live in `Workspace.settings` under these keys, each optional:

- `quiet_hours`: {channel: {"start": "21:00", "end": "09:00"} or null}. Channels not
  named keep the default: no SMS or messenger messages 21:00-09:00 in the contact's
  time zone, none for email. null turns quiet hours off for that channel. A window
  whose start is after its end runs over midnight.
- `frequency_caps`: {channel or "all": {"max": 3, "days": 7} or null}: at most `max`
  marketing messages per contact in any `days` days, per channel ("all": across
  channels). No caps by default.
- `attribution`: {"click_days": 5, "open_days": 1}: how long after a click (open) an
  order is credited to the message. 0 turns that kind of touch off.
- `held_messages`: {"expire_after_hours": 24}: a marketing message held for a paused
  channel that is older than this when the channel is resumed is skipped, not sent late
  (transactional ones always go). 0 sends them however old.
- `in_doubt`: {"transactional": "resend", "marketing": "skip"}: what happens to a message
  whose body may have reached the provider without its answer being recorded (its worker
  was killed mid-send, or the connection broke after the body went out). "resend" sends it
  again (a possible duplicate, with the same Message-ID); "skip" leaves it `unknown` (a
  possible loss). Defaults: resend transactional, skip marketing.

`update_delivery_settings` validates before anything is stored; the pure accessors
(`quiet_hours_for`, `frequency_caps_for`, `attribution_for`, `held_expiry_hours`,
`in_doubt_policy`) apply
the defaults and are what the policies and dispatch read.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.channels import Channel
from engine.delivery.policies import parse_frequency_caps, parse_quiet_hours
from engine.errors import FieldErrors, NotFound
from engine.field_errors import field_errors, key_names_its_mapping
from engine.store.models import Workspace

KEYS = ("quiet_hours", "frequency_caps", "attribution", "held_messages", "in_doubt")
DEFAULT_ATTRIBUTION = {"click_days": 5, "open_days": 1}
DEFAULT_HELD_EXPIRY_HOURS = 24
InDoubtPolicy = Literal["resend", "skip"]
DEFAULT_IN_DOUBT: dict[str, InDoubtPolicy] = {"transactional": "resend", "marketing": "skip"}
_CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock_time(value: Any) -> time:
    """Only "HH:MM" or "H:MM" (24-hour): pydantic's own time parsing would also take 75600 or "21:00:00.5"."""
    match = _CLOCK_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("a time of day as HH:MM, 24-hour (e.g. 21:00)")
    return time(int(match[1]), int(match[2]))


ClockTime = Annotated[time, BeforeValidator(_clock_time)]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end must differ (set the channel to null for no quiet hours)")
        return self


class Cap(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=365)


class Attribution(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    click_days: int = Field(default=DEFAULT_ATTRIBUTION["click_days"], ge=0, le=90)
    open_days: int = Field(default=DEFAULT_ATTRIBUTION["open_days"], ge=0, le=90)


class HeldMessages(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    expire_after_hours: int = Field(default=DEFAULT_HELD_EXPIRY_HOURS, ge=0, le=24 * 30)


class InDoubt(BaseModel):
    # strict: only the two words themselves, never a boolean or a number standing for one
    model_config = ConfigDict(extra="forbid", strict=True)
    transactional: InDoubtPolicy = DEFAULT_IN_DOUBT["transactional"]
    marketing: InDoubtPolicy = DEFAULT_IN_DOUBT["marketing"]


class DeliverySettings(BaseModel):
    """A PUT body: each section given replaces the stored one; null restores its defaults.

    Strict: a wrong type is refused, never coerced (`false` is not 0 hours, "3" is not 3).
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    quiet_hours: dict[Channel, Window | None] | None = None
    frequency_caps: dict[Channel | Literal["all"], Cap | None] | None = None
    attribution: Attribution | None = None
    held_messages: HeldMessages | None = None
    in_doubt: InDoubt | None = None


def parse_delivery_settings(data: Any) -> DeliverySettings:
    """Validate; FieldErrors name each bad field by its path ("quiet_hours.sms.start")."""
    try:
        return DeliverySettings.model_validate(data)
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc, rename=key_names_its_mapping)) from None


def _stored(settings: dict[str, Any] | None) -> DeliverySettings:
    return parse_delivery_settings({key: value for key, value in (settings or {}).items() if key in KEYS})


def quiet_hours_for(settings: dict[str, Any] | None) -> dict[str, tuple[time, time] | None]:
    """Every channel's quiet window (start, end) in the contact's local time, or None: no quiet hours.

    Validated first (FieldErrors if the stored JSON is broken); the hot path (routing, dispatch)
    reads the same JSON with engine.delivery.policies.parse_quiet_hours, which this agrees with by using it.
    """
    _stored(settings)
    return parse_quiet_hours(settings or {})


def frequency_caps_for(settings: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """{channel or "all": (max messages, per days)}, only for what is capped."""
    _stored(settings)
    return parse_frequency_caps(settings or {})


def attribution_for(settings: dict[str, Any] | None) -> dict[str, int]:
    """{"click_days": n, "open_days": n}: the attribution windows in days."""
    return (_stored(settings).attribution or Attribution()).model_dump()


def held_expiry_hours(settings: dict[str, Any] | None) -> int:
    """Hours after which a held marketing message is skipped on resume; 0: never."""
    return (_stored(settings).held_messages or HeldMessages()).expire_after_hours


def in_doubt_policy(settings: dict[str, Any] | None, *, transactional: bool) -> InDoubtPolicy:
    """"resend" or "skip": what to do with a message of this kind that may have reached the provider."""
    policy = _stored(settings).in_doubt or InDoubt()
    return policy.transactional if transactional else policy.marketing


def effective_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """What applies now, defaults filled in, in the shape a PUT takes (so GET -> PUT round-trips)."""
    return {
        "quiet_hours": {
            channel: {"start": window[0].strftime("%H:%M"), "end": window[1].strftime("%H:%M")} if window else None
            for channel, window in quiet_hours_for(settings).items()
        },
        "frequency_caps": {key: {"max": cap[0], "days": cap[1]} for key, cap in frequency_caps_for(settings).items()},
        "attribution": attribution_for(settings),
        "held_messages": {"expire_after_hours": held_expiry_hours(settings)},
        "in_doubt": (_stored(settings).in_doubt or InDoubt()).model_dump(),
    }


def delivery_settings(session: Session, workspace_id: str) -> dict[str, Any]:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    return effective_settings(workspace.settings)


def update_delivery_settings(session: Session, workspace_id: str, body: Any) -> dict[str, Any]:
    """Store the sections given in `body` (validated first); return the settings now in effect."""
    parsed = parse_delivery_settings(body)
    # Row lock: other settings (loyalty tiers…) live in the same JSON and must not be lost
    # to a concurrent read-modify-write.
    workspace = session.scalar(select(Workspace).where(Workspace.id == workspace_id).with_for_update())
    if workspace is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    settings = dict(workspace.settings or {})
    given = parsed.model_dump(mode="json", include=set(parsed.model_fields_set))
    for key in KEYS:
        if key not in given:
            continue
        if given[key] is None:
            settings.pop(key, None)
        elif key == "quiet_hours":
            settings[key] = {channel: _window_json(window) for channel, window in given[key].items()}
        else:
            settings[key] = given[key]
    workspace.settings = settings  # a new dict: the JSON column does not track in-place changes
    return effective_settings(settings)


def _window_json(window: dict[str, str] | None) -> dict[str, str] | None:
    # model_dump(mode="json") writes times as "21:00:00"; store them as they are written.
    return {"start": window["start"][:5], "end": window["end"][:5]} if window else None
