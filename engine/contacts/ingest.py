"""Ingest events: validate, upsert the contact, store the event, then evaluate it.

An event answered 202 is in the database: the event row commits first and the
evaluation job is sent only after the commit (engine.store.db.defer). Event ids are unique
per workspace, so a shop that retries a webhook changes nothing the second time.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from engine.channels import Channel
from engine.contacts.consent import PERSON_SOURCES, apply_claim, claim_from_event, record_of
from engine.contacts.phones import normalize_phone
from engine.field_errors import field_errors
from engine.store.db import JobName, defer
from engine.store.dialect import insert_rows, json_merge, one_of
from engine.store.models import Contact, Event
from engine.timezones import is_time_zone

MAX_BATCH = 1000
CANONICAL_TYPES = ("contact_updated", "cart_updated", "checkout_started", "order_placed")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ConsentState = Literal["opted_in", "opted_out", "pending"]
CONSENT_STATES = ("opted_in", "opted_out", "pending")
MAX_OFFSET = timedelta(hours=15, minutes=59)  # PostgreSQL's timestamptz takes no larger UTC offset
# Far enough from datetime's limits that converting to UTC or adding a journey's windows cannot overflow.
OCCURRED_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC))


def _storable_text(value: str) -> str:
    """PostgreSQL cannot store NUL in text (the strict JSON reader refuses it too; this guards other callers)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which cannot be stored")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
Text200 = Annotated[Text, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


CONSENT_SHAPE = "a state ('opted_in', 'opted_out' or 'pending') or an object {status, at, source}"


def _plain_consent(value: Any) -> Any:
    """`"opted_in"` is short for `{"status": "opted_in"}`; errors in either form name the channel's field."""
    if isinstance(value, str):
        if value not in CONSENT_STATES:
            raise ValueError(f"should be {CONSENT_SHAPE}")
        return {"status": value}
    if not isinstance(value, dict):
        raise ValueError(f"should be {CONSENT_SHAPE}")
    return value


class ConsentIn(_In):
    """One channel's consent as an event states it; `at` and `source` say when and how it was given."""

    status: ConsentState
    at: datetime | None = None
    source: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2026-12-01T10:00:00Z")
        return value


class ContactIn(_In):
    external_id: Text200 | None = None
    email: Annotated[Text, Field(max_length=320)] | None = None
    phone: Annotated[Text, Field(max_length=32)] | None = None
    first_name: Annotated[Text, Field(max_length=200)] | None = None
    last_name: Annotated[Text, Field(max_length=200)] | None = None
    timezone: Annotated[Text, Field(max_length=64)] | None = None
    locale: Annotated[str, Field(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None = None
    birthday: date | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: dict[Channel, Annotated[ConsentIn, BeforeValidator(_plain_consent)]] = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_RE.match(value):
            raise ValueError("not an email address")
        return value.lower() if value else value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        # One form (E.164) for storage, suppression and matching replies: normalize_phone says why not.
        return normalize_phone(value) if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise ValueError("not an IANA time zone such as Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _identified(self) -> ContactIn:
        if not self.external_id and not self.email:
            raise ValueError("a contact needs an external_id or an email")
        return self

    @property
    def key(self) -> str:
        return self.external_id or f"email:{self.email}"


class EventIn(_In):
    id: Text200
    type: Annotated[Text, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:/-]+$")]
    occurred_at: datetime | None = None
    contact: ContactIn
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2026-11-23T10:00:00Z")
        offset = value.utcoffset() if value is not None else None
        if offset is not None and abs(offset) > MAX_OFFSET:
            raise ValueError("the time zone offset must lie between -15:59 and +15:59")
        if value is not None and not OCCURRED_RANGE[0] <= value <= OCCURRED_RANGE[1]:
            raise ValueError("must lie between the years 1900 and 2999")
        return value


@dataclass(frozen=True)
class ItemResult:
    index: int
    status: Literal["accepted", "duplicate", "invalid"]
    event_id: str | None = None
    id: int | None = None
    contact_id: int | None = None
    errors: list[dict[str, str]] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "status": self.status}
        for name in ("event_id", "id", "contact_id", "errors"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


def parse_event(payload: Any) -> EventIn:
    """Raise pydantic's ValidationError; callers turn it into field errors."""
    return EventIn.model_validate(payload)


def ingest_events(
    session: Session,
    workspace_id: str,
    payloads: list[Any],
    *,
    now: datetime,
    check_existing: bool = True,
    source: str = "api",
    refused: Mapping[int, list[dict[str, str]]] | None = None,
) -> list[ItemResult]:
    """Store the valid events of `payloads`; report on each item by its index.

    `check_existing=False` skips the look-up of already-seen ids (one query fewer for a
    single event); the caller must then roll back when the result is a duplicate, so the
    contact update it made is undone. `source` records where the events came from
    (`api`, `shopify`, `woocommerce`). `refused` are items already found invalid (by the
    strict JSON reader: values that cannot be stored), by index with their field errors.
    """
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, EventIn]] = []
    seen: set[str] = set()
    for index, payload in enumerate(payloads):
        if refused and index in refused:
            results[index] = ItemResult(index, "invalid", errors=refused[index])
            continue
        try:
            event = parse_event(payload)
        except ValidationError as exc:
            results[index] = ItemResult(index, "invalid", errors=field_errors(exc))
            continue
        if event.id in seen:
            results[index] = ItemResult(index, "duplicate", event_id=event.id)
            continue
        seen.add(event.id)
        valid.append((index, event))

    if valid and check_existing:
        existing = set(
            session.scalars(
                select(Event.external_id).where(
                    Event.workspace_id == workspace_id,
                    one_of(Event.external_id, [e.id for _, e in valid]),
                )
            )
        )
        for index, event in valid:
            if event.id in existing:
                results[index] = ItemResult(index, "duplicate", event_id=event.id)
        valid = [(i, e) for i, e in valid if e.id not in existing]

    if valid:
        consent_now: dict[int, StoredConsent] = {}
        contact_ids = upsert_contacts(session, workspace_id, [e.contact for _, e in valid], now=now,
                                      initial_consent=_initial_consent([e for _, e in valid], now=now, source=source),
                                      consent_now=consent_now)
        rows = [
            {
                "workspace_id": workspace_id,
                "external_id": e.id,
                "type": e.type,
                "contact_id": contact_ids[e.contact.key],
                "occurred_at": e.occurred_at or now,
                "received_at": now,
                "properties": e.properties,
                "source": source,
                "enqueued_at": now,
            }
            for _, e in valid
        ]
        stored = {ext: (id_, cid) for id_, ext, cid in _insert_events(session, rows)}
        for index, event in valid:
            if event.id in stored:
                id_, contact_id = stored[event.id]
                results[index] = ItemResult(index, "accepted", event_id=event.id, id=id_, contact_id=contact_id)
            else:  # another request stored the same id a moment ago
                results[index] = ItemResult(index, "duplicate", event_id=event.id)
        _apply_consent(session, [(contact_ids[e.contact.key], e) for _, e in valid if e.id in stored],
                       consent_now, now=now, source=source)
        defer(session, JobName.EVALUATE_EVENTS, sorted(id_ for id_, _ in stored.values()))
    return [results[i] for i in range(len(payloads))]


@dataclass(frozen=True)
class StoredConsent:
    """A contact's consent as the upsert left it (its RETURNING clause): states and records."""

    consent: dict[str, Any] | None
    consent_records: dict[str, Any] | None


def _apply_consent(session: Session, events: list[tuple[int, EventIn]], stored: Mapping[int, StoredConsent], *,
                   now: datetime, source: str) -> None:
    """Each stored event's consent, in order, through the consent rule (engine.contacts.consent).

    Not merged in the upsert's SQL: a person's withdrawal must be able to refuse a shop's
    stale opt-in, and the refusal must reach the timeline. Events without consent cost nothing.
    """
    with_consent = [(contact_id, event) for contact_id, event in events if event.contact.consent]
    if not with_consent:
        return
    # Most events repeat the state stored (a shop sends its whole customer record each time):
    # the upsert returned the states, and only the contacts a claim would touch are loaded as objects.
    touched = sorted({contact_id for contact_id, event in with_consent
                      if _may_change(stored[contact_id], event.contact.consent)})
    if not touched:
        return
    load = select(Contact).where(one_of(Contact.id, touched))
    contacts = {c.id: c for c in session.scalars(load.execution_options(populate_existing=True))}
    for contact_id, event in with_consent:
        if contact_id not in contacts:
            continue
        for channel, value in event.contact.consent.items():
            claim = claim_from_event(value.model_dump(), occurred_at=event.occurred_at or now, event_id=event.id,
                                     source=source)
            apply_claim(session, contacts[contact_id], channel, claim, now=now)
    session.flush()


def _initial_consent(events: list[EventIn], *, now: datetime,
                     source: str) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """The consent a contact inserted now starts with: its events' claims, later ones winning.

    Nobody withdrew anything from a contact that did not exist, so nothing can be refused;
    for a contact that turns out to exist the values are not used.
    """
    initial: dict[str, tuple[dict[str, str], dict[str, Any]]] = {}
    for event in events:
        states, records = initial.setdefault(event.contact.key, ({}, {}))
        for channel, value in event.contact.consent.items():
            claim = claim_from_event(value.model_dump(), occurred_at=event.occurred_at or now, event_id=event.id,
                                     source=source)
            states[channel], records[channel] = claim.status, record_of(claim, now=now)
    return initial


def _may_change(stored: Any, consent: Mapping[Any, ConsentIn]) -> bool:
    """Whether applying `consent` could change or be refused (else it is the stored state again)."""
    records = stored.consent_records or {}
    return any(value.status != (stored.consent or {}).get(channel)
               or (value.source in PERSON_SOURCES and (records.get(channel) or {}).get("by") != "person")
               for channel, value in consent.items())


EVENTS = typing.cast(Table, Event.__table__)
CONTACTS = typing.cast(Table, Contact.__table__)


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    insert = insert_rows(session, EVENTS, rows)
    result = session.execute(_new_events(insert.statement), insert.parameters)
    return [(row[0], row[1], row[2]) for row in result]


# Built once per database and columns, on insert_rows' statement, and cached: building one
# costs more than the ~0.2 ms a single event's INSERT takes to run.
@cache
def _new_events(insert: Any) -> Any:
    stmt = insert.on_conflict_do_nothing(index_elements=["workspace_id", "external_id"])
    return stmt.returning(EVENTS.c.id, EVENTS.c.external_id, EVENTS.c.contact_id)


PROFILE_FIELDS = ("email", "phone", "first_name", "last_name", "timezone", "locale", "birthday")


def upsert_contacts(
    session: Session, workspace_id: str, contacts: list[ContactIn], *, now: datetime,
    initial_consent: Mapping[str, tuple[dict[str, str], dict[str, Any]]] | None = None,
    consent_now: dict[int, StoredConsent] | None = None,
) -> dict[str, int]:
    """Insert or update contacts in one statement; return {contact key: id}.

    Fields an event leaves out keep their stored value; attributes are merged key by
    key. Consent is written only into a contact inserted now (`initial_consent`: contact
    key -> (states, records)); a stored contact's is left to `_apply_consent`, which may refuse it,
    and which finds each contact's consent as it now stands in `consent_now` (filled from the
    statement's RETURNING: no second query).
    Repeats of one contact in a batch are merged first, in order,
    because one statement may not update the same row twice.
    """
    merged: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        row = merged.setdefault(
            contact.key,
            {"workspace_id": workspace_id, "external_id": contact.key, "attributes": {}, "consent": {},
             "messenger_ids": {}, "created_at": now, "updated_at": now,
             **{f: None for f in PROFILE_FIELDS}},
        )
        for name in PROFILE_FIELDS:
            value = getattr(contact, name)
            if value is not None:
                row[name] = value.isoformat() if isinstance(value, date) else value
        row["attributes"].update(contact.attributes)
        row["consent"], row["consent_records"] = (initial_consent or {}).get(contact.key, ({}, {}))

    insert = insert_rows(session, CONTACTS, list(merged.values()))
    result = session.execute(_contacts_upsert(insert.statement), insert.parameters)
    ids = {}
    for id_, external_id, consent, records in result:
        ids[external_id] = id_
        if consent_now is not None:
            consent_now[id_] = StoredConsent(consent, records)
    return ids


@cache
def _contacts_upsert(insert: Any) -> Any:
    table = CONTACTS
    excluded = insert.excluded
    updates: dict[str, Any] = {name: func.coalesce(excluded[name], table.c[name]) for name in PROFILE_FIELDS}
    updates |= {"attributes": json_merge(table.c.attributes, excluded.attributes), "updated_at": excluded.updated_at}
    stmt = insert.on_conflict_do_update(index_elements=["workspace_id", "external_id"], set_=updates)
    return stmt.returning(table.c.id, table.c.external_id, table.c.consent, table.c.consent_records)
