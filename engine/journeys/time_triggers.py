"""Time-based entries: birthdays and other dates, holidays, inactivity, broadcasts.

The scheduler calls `scan` every minute. For each live journey with a time trigger, the
contacts due are a set, and SQL finds them: one statement per key (a holiday's local date
groups the time zones where it is that date) selects those who are due and have no entry
event yet, by an anti-join on the event's id, which is derived from (journey, contact, key).
Contacts who entered earlier are never read again: a holiday, a broadcast or a win-back
keeps everyone due for hours or months, and a scan that finds nobody new costs one indexed
query per key, not one insert per contact. The new ones are read in keyset batches (WHERE
id > :last ORDER BY id LIMIT :n), checked against the journey's entry filter, and their
entry events inserted with one statement per batch (ON CONFLICT DO NOTHING, so a scan
overlapping another inserts nothing twice). The events enroll through the ordinary
evaluation path, so they show on the timeline like any other.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, Select, String, Subquery, Table, cast, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from engine.journeys.definition import (
    BroadcastTrigger,
    DateTrigger,
    HolidayTrigger,
    InactivityTrigger,
    JourneyDefinition,
)
from engine.journeys.enrollment import time_entry_id, time_entry_id_prefix, time_entry_properties
from engine.journeys.versions import version_definition
from engine.segments.conditions import holds
from engine.segments.facts import gather_facts
from engine.store.db import JobName, defer
from engine.store.dialect import insert_rows, utc_date_text
from engine.store.models import Contact, Event, Journey, JourneyStatus, JourneyVersion, Workspace
from engine.timezones import zone_of

BATCH = 1000
BROADCAST_WINDOW = timedelta(days=1)  # a broadcast missed for longer than this is not sent late


@dataclass(frozen=True)
class DueSet:
    """Contacts due under one key: `where` narrows the workspace's contacts; `key` is the entry
    key in SQL (text); `detail` what the entry event adds to its properties, made from the row,
    which holds `columns` (of `joined`, a subquery on contact_id, when they come from one)."""

    key: ColumnElement[str]
    detail: Callable[[Row[Any]], dict[str, Any]]
    where: list[ColumnElement[bool]] = field(default_factory=list)
    joined: Subquery | None = None
    columns: dict[str, ColumnElement[Any]] = field(default_factory=dict)


def _always(detail: dict[str, Any]) -> Callable[[Row[Any]], dict[str, Any]]:
    return lambda _row: detail


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
        for due in _due(session, definition, workspace_id, zone_of(workspace_tz), now=now):
            created += _enter(session, definition, journey_id, workspace_id, due, now=now, batch=batch)
    return created


def _due(session: Session, definition: JourneyDefinition, workspace_id: str, workspace_tz: ZoneInfo, *,
         now: datetime) -> Iterator[DueSet]:
    trigger = definition.trigger
    if isinstance(trigger, DateTrigger):
        yield from _dates_due(session, trigger, workspace_id, workspace_tz, now=now)
    elif isinstance(trigger, HolidayTrigger):
        at = _time(trigger.at)
        by_day: dict[tuple[str, str], list[str | None]] = defaultdict(list)
        for zone_name in _zone_names(session, [Contact.workspace_id == workspace_id]):
            local = now.astimezone(zone_of(zone_name, fallback=workspace_tz))
            day = next((spec for spec in trigger.dates if _is_holiday(local.date(), spec)), None)
            if day is not None and local.time() >= at:
                by_day[(local.date().isoformat(), day)].append(zone_name)
        for (local_date, day), zone_names in by_day.items():
            detail = {"holiday": day} | ({"holiday_name": trigger.name} if trigger.name else {})
            yield DueSet(literal(local_date, String), _always(detail), [_in_zones(zone_names)])
    elif isinstance(trigger, InactivityTrigger):
        last_seen = (
            select(Event.contact_id, func.max(Event.occurred_at).label("last"))
            .where(Event.workspace_id == workspace_id, Event.type == trigger.inactive_event)
            .group_by(Event.contact_id).subquery()
        )
        yield DueSet(utc_date_text(last_seen.c.last),
                     lambda row: {"last_event": trigger.inactive_event, "last_at": row.last.isoformat(),
                                  "days": trigger.days},
                     [last_seen.c.last < now - timedelta(days=trigger.days)], last_seen, {"last": last_seen.c.last})
    elif isinstance(trigger, BroadcastTrigger):
        if trigger.broadcast_at <= now < trigger.broadcast_at + BROADCAST_WINDOW:
            yield DueSet(literal("broadcast", String), _always({"broadcast_at": trigger.broadcast_at.isoformat()}))


def _zone_names(session: Session, where: list[ColumnElement[bool]]) -> list[str | None]:
    """The time zones the contacts matching `where` are in (few: one query, not one per contact)."""
    return list(session.scalars(select(Contact.timezone).where(*where).distinct()))


def _in_zones(zone_names: list[str | None]) -> ColumnElement[bool]:
    named = [name for name in zone_names if name is not None]
    return or_(*([Contact.timezone.in_(named)] if named else []),
               *([Contact.timezone.is_(None)] if None in zone_names else []))


def _time(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    return time(hour, minute)


def _is_holiday(local_day: date, spec: str) -> bool:
    return local_day.isoformat() == spec if len(spec) == 10 else local_day.strftime("%m-%d") == spec


def _month_days(occurrence: date) -> list[str]:
    """The MM-DD of dates whose anniversary is `occurrence`: 29 February falls on the 28th in other years."""
    leap = occurrence.year % 4 == 0 and (occurrence.year % 100 != 0 or occurrence.year % 400 == 0)
    on_28_february = (occurrence.month, occurrence.day) == (2, 28)
    return [occurrence.strftime("%m-%d")] + (["02-29"] if on_28_february and not leap else [])


def _dates_due(session: Session, trigger: DateTrigger, workspace_id: str, workspace_tz: ZoneInfo, *,
               now: datetime) -> Iterator[DueSet]:
    """Contacts whose date (MM-DD), shifted by the offset, is today where they are, after the hour.

    Local dates span UTC yesterday..tomorrow: the time zones are grouped by their local
    date, each group a statement on the MM-DD due there (keyed by the occurrence's year)."""
    if trigger.date == "birthday":
        column: Any = Contact.birthday
    else:
        column = Contact.attributes[trigger.date.split(".", 1)[1]].as_string()
    month_day = func.substr(column, 6, 5)
    somewhere = sorted({md for spread in (-1, 0, 1)
                        for md in _month_days(now.date() + timedelta(days=spread - trigger.offset_days))})
    dated = [Contact.workspace_id == workspace_id, column.is_not(None), month_day.in_(somewhere)]
    at = _time(trigger.at)
    by_occurrence: dict[date, list[str | None]] = defaultdict(list)
    for zone_name in _zone_names(session, dated):
        local = now.astimezone(zone_of(zone_name, fallback=workspace_tz))
        if local.time() >= at:
            by_occurrence[local.date() - timedelta(days=trigger.offset_days)].append(zone_name)
    for occurrence, zone_names in by_occurrence.items():
        yield DueSet(literal(str(occurrence.year), String),
                     _always({"date": trigger.date, "occurrence": occurrence.isoformat(),
                              "offset_days": trigger.offset_days}),
                     [_in_zones(zone_names), column.is_not(None), month_day.in_(_month_days(occurrence))])


def _not_entered(query: Select[Any], due: DueSet, journey_id: int, workspace_id: str) -> Select[Any]:
    """Only contacts without this journey's entry event for the key (found by its unique id)."""
    external_id = (literal(time_entry_id_prefix(journey_id), String) + cast(Contact.id, String)
                   + literal(":", String) + due.key)  # time_entry_id, in SQL
    return query.where(~exists().where(Event.workspace_id == workspace_id, Event.external_id == external_id))


def _enter(session: Session, definition: JourneyDefinition, journey_id: int, workspace_id: str, due: DueSet, *,
           now: datetime, batch: int) -> int:
    """Record the entry events of the set's contacts not entered yet, a keyset batch at a time."""
    query = select(Contact.id, due.key.label("key"), *(column.label(name) for name, column in due.columns.items()))
    if due.joined is not None:
        query = query.join(due.joined, due.joined.c.contact_id == Contact.id)
    query = _not_entered(query.where(Contact.workspace_id == workspace_id, *due.where), due, journey_id, workspace_id)
    created, last = 0, 0
    while True:
        after = [Contact.id > last]
        if due.joined is not None:  # said of the subquery too, or each batch aggregates it from the start
            after.append(due.joined.c.contact_id > last)
        rows = list(session.execute(query.where(*after).order_by(Contact.id).limit(batch)))
        entering = _passing(session, definition, rows, now=now)
        created += _record(session, definition, journey_id, workspace_id, due, entering, now=now)
        if len(rows) < batch:
            return created
        last = rows[-1].id


def _passing(session: Session, definition: JourneyDefinition, rows: list[Row[Any]], *, now: datetime) -> list[Row[Any]]:
    """The rows whose contact meets the journey's entry filter (all of them without one)."""
    condition = definition.entry_filter
    if condition is None or not rows:
        return rows
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_([row.id for row in rows])))}
    return [row for row in rows if holds(condition, gather_facts(session, contacts[row.id], {}, now=now))]


def _record(session: Session, definition: JourneyDefinition, journey_id: int, workspace_id: str, due: DueSet,
            rows: list[Row[Any]], *, now: datetime) -> int:
    """Insert the rows' entry events with one statement; defer the evaluation of the new ones."""
    if not rows:
        return 0
    events = [{
        "workspace_id": workspace_id, "external_id": time_entry_id(journey_id, row.id, row.key),
        "type": definition.entry_event, "contact_id": row.id, "occurred_at": now, "received_at": now,
        "properties": time_entry_properties(journey_id, row.key, due.detail(row)), "source": "scheduler",
        "enqueued_at": now,
    } for row in rows]
    insert = insert_rows(session, EVENTS, events)
    new = list(session.scalars(_new_entries(insert.statement), insert.parameters))
    defer(session, JobName.EVALUATE_EVENTS, new)
    return len(new)



EVENTS = typing.cast(Table, Event.__table__)


@cache  # built once per database on insert_rows' statement: building costs more than a small batch's insert
def _new_entries(insert: Any) -> Any:
    return insert.on_conflict_do_nothing(index_elements=["workspace_id", "external_id"]).returning(EVENTS.c.id)
