"""Time-based entries: birthdays and other dates, holidays, inactivity, broadcasts.

The scheduler calls `scan` every so often. For each live journey with a time trigger
it walks the workspace's contacts in keyset batches (WHERE id > :last ORDER BY id
LIMIT :n), narrowed in SQL where it can be, and records an entry event for each
contact that is due, with an id derived from (journey, contact, key): a repeated or
overlapping scan inserts nothing twice, and the events enroll through the ordinary
evaluation path, so they show on the timeline like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.journeys.definition import (
    BroadcastTrigger,
    DateTrigger,
    HolidayTrigger,
    InactivityTrigger,
    JourneyDefinition,
)
from engine.journeys.versions import version_definition
from engine.segments.conditions import holds
from engine.segments.facts import gather_facts
from engine.store.db import JobName, defer
from engine.store.dialect import upsert
from engine.store.models import Contact, Event, Journey, JourneyStatus, JourneyVersion, Workspace
from engine.timezones import zone_of

BATCH = 1000
BROADCAST_WINDOW = timedelta(days=1)  # a broadcast missed for longer than this is not sent late


@dataclass(frozen=True)
class Due:
    contact: Contact
    key: str
    detail: dict[str, Any]


def scan(session: Session, *, now: datetime, batch: int = BATCH) -> int:
    """Record the entry events that are due now; return how many were new."""
    journeys = session.execute(
        select(Journey.id, Journey.workspace_id, Journey.live_version_id, Workspace.timezone)
        .join(Workspace, Workspace.id == Journey.workspace_id)
        .join(JourneyVersion, JourneyVersion.id == Journey.live_version_id)
        .where(Journey.status == JourneyStatus.LIVE.value,
               JourneyVersion.trigger_event.in_(["date_reached", "holiday", "inactive", "broadcast"]))
    ).all()
    created = 0
    for journey_id, workspace_id, version_id, workspace_tz in journeys:
        assert version_id is not None  # joined on it
        definition = version_definition(session, version_id)
        for due in _due(session, definition, workspace_id, zone_of(workspace_tz), now=now, batch=batch):
            created += _record(session, definition, journey_id, workspace_id, due, now=now)
    return created


def _contacts(session: Session, query: Select[Any], batch: int) -> Iterator[Contact]:
    last = 0
    while True:
        rows: list[Contact] = list(session.scalars(query.where(Contact.id > last).order_by(Contact.id).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


def _passes(session: Session, definition: JourneyDefinition, contact: Contact, *, now: datetime) -> bool:
    condition = definition.entry_filter
    return condition is None or holds(condition, gather_facts(session, contact, {}, now=now))


def _due(session: Session, definition: JourneyDefinition, workspace_id: str, workspace_tz: ZoneInfo, *,
         now: datetime, batch: int) -> Iterator[Due]:
    trigger = definition.trigger
    base = select(Contact).where(Contact.workspace_id == workspace_id)
    if isinstance(trigger, DateTrigger):
        yield from _dates_due(session, definition, trigger, base, workspace_tz, now=now, batch=batch)
    elif isinstance(trigger, HolidayTrigger):
        at = _time(trigger.at)
        for contact in _contacts(session, base, batch):
            local = now.astimezone(zone_of(contact.timezone, fallback=workspace_tz))
            for day in trigger.dates:
                if _is_holiday(local.date(), day) and local.time() >= at and _passes(session, definition, contact,
                                                                                      now=now):
                    detail = {"holiday": day} | ({"holiday_name": trigger.name} if trigger.name else {})
                    yield Due(contact, local.date().isoformat(), detail)
    elif isinstance(trigger, InactivityTrigger):
        cutoff = now - timedelta(days=trigger.days)
        last_seen = (
            select(Event.contact_id, func.max(Event.occurred_at).label("last"))
            .where(Event.workspace_id == workspace_id, Event.type == trigger.inactive_event)
            .group_by(Event.contact_id).subquery()
        )
        query = base.join(last_seen, last_seen.c.contact_id == Contact.id).where(last_seen.c.last < cutoff)
        lasts = dict(session.execute(select(last_seen.c.contact_id, last_seen.c.last)
                                     .where(last_seen.c.last < cutoff)).all())
        for contact in _contacts(session, query, batch):
            if _passes(session, definition, contact, now=now):
                last = lasts[contact.id]
                yield Due(contact, last.date().isoformat(), {"last_event": trigger.inactive_event,
                                                            "last_at": last.isoformat(), "days": trigger.days})
    elif isinstance(trigger, BroadcastTrigger):
        if trigger.broadcast_at <= now < trigger.broadcast_at + BROADCAST_WINDOW:
            for contact in _contacts(session, base, batch):
                if _passes(session, definition, contact, now=now):
                    yield Due(contact, "broadcast", {"broadcast_at": trigger.broadcast_at.isoformat()})


def _time(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    return time(hour, minute)


def _is_holiday(local_day: date, spec: str) -> bool:
    return local_day.isoformat() == spec if len(spec) == 10 else local_day.strftime("%m-%d") == spec


def _anniversary(month_day: str, year: int) -> date | None:
    """This year's occurrence of MM-DD; 29 February falls on the 28th in other years."""
    try:
        month, day = (int(part) for part in month_day.split("-"))
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28) if month_day == "02-29" else None


def _dates_due(session: Session, definition: JourneyDefinition, trigger: DateTrigger, base: Select[Any],
               workspace_tz: ZoneInfo, *, now: datetime, batch: int) -> Iterator[Due]:
    if trigger.date == "birthday":
        column: Any = Contact.birthday
    else:
        column = Contact.attributes[trigger.date.split(".", 1)[1]].as_string()
    # Only contacts whose MM-DD can be due somewhere on Earth today: local dates span
    # UTC yesterday..tomorrow, shifted back by the offset.
    candidates = set()
    for spread in (-1, 0, 1):
        day = now.date() + timedelta(days=spread) - timedelta(days=trigger.offset_days)
        candidates.add(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28:
            candidates.add("02-29")
    query = base.where(column.is_not(None), func.substr(column, 6, 5).in_(sorted(candidates)))
    at = _time(trigger.at)
    for contact in _contacts(session, query, batch):
        value = str(contact.birthday if trigger.date == "birthday" else contact.attributes.get(
            trigger.date.split(".", 1)[1]))
        local = now.astimezone(zone_of(contact.timezone, fallback=workspace_tz))
        if local.time() < at:
            continue
        for year in (local.year - 1, local.year, local.year + 1):
            occurrence = _anniversary(value[5:10], year)
            if occurrence and occurrence + timedelta(days=trigger.offset_days) == local.date():
                if _passes(session, definition, contact, now=now):
                    yield Due(contact, str(year), {"date": trigger.date, "occurrence": occurrence.isoformat(),
                                                   "offset_days": trigger.offset_days})


def _record(session: Session, definition: JourneyDefinition, journey_id: int, workspace_id: str, due: Due, *,
            now: datetime) -> int:
    row = {
        "workspace_id": workspace_id, "external_id": f"scan:{journey_id}:{due.contact.id}:{due.key}",
        "type": definition.entry_event, "contact_id": due.contact.id, "occurred_at": now, "received_at": now,
        "properties": {"journey_id": journey_id, "key": due.key, **due.detail}, "source": "scheduler",
        "enqueued_at": now,
    }
    stmt = upsert(session, Event).values(row).on_conflict_do_nothing(
        index_elements=["workspace_id", "external_id"])
    event_id = session.scalar(stmt.returning(Event.id))
    if event_id is None:
        return 0
    defer(session, JobName.EVALUATE_EVENTS, [event_id])
    return 1
