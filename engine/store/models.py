"""The data model. The database is the source of truth; every row has a workspace.

Ids are 64-bit integers except workspaces, whose public id appears in URLs
(e.g. `/api/v1/webhooks/shopify/<workspace>`).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.channels import MESSENGERS
from engine.store import people  # noqa: F401  (its tables are part of the model: Base.metadata must see them)
from engine.store.base import NO_ID_REUSE, Base, Id, Json


class RunStatus(enum.StrEnum):
    ACTIVE = "active"  # being advanced right now, or about to be
    WAITING = "waiting"  # parked until next_at
    COMPLETED = "completed"  # walked off the end of its steps
    EXITED = "exited"  # left early: goal reached, exit step, journey archived


LIVE_RUN_STATUSES = (RunStatus.ACTIVE.value, RunStatus.WAITING.value)


class JourneyStatus(enum.StrEnum):
    """Where a journey stands; engine/journeys/versions.py says which actions move it."""

    DRAFT = "draft"  # never published: nobody enters
    LIVE = "live"
    PAUSED = "paused"  # nobody enters and timers hold, until resumed
    ARCHIVED = "archived"  # for good: its live runs exited


class MessageStatus(enum.StrEnum):
    """Where a message stands; engine/delivery/states.py says which moves are allowed."""

    SCHEDULED = "scheduled"
    CLAIMED = "claimed"  # taken by a worker with its batch, not yet handed to the provider
    SENDING = "sending"
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the provider says it reached the recipient
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    COMPLAINED = "complained"  # marked as spam
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a worker died after handing it over; never resent


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    signing_secret: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = NO_ID_REUSE
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_contacts_phone", "workspace_id", "phone",
              postgresql_where=text("phone IS NOT NULL"), sqlite_where=text("phone IS NOT NULL")),
        # Inbound messages find their sender by chat id (engine/tracking/inbound.py). PostgreSQL
        # only: it plans each statement with its values, so `messenger_ids ->> $1` meets the
        # expression; SQLite would need the key written into the SQL.
        *(Index(f"ix_contacts_{channel}_id", "workspace_id", text(f"(messenger_ids ->> '{channel}')"))
          .ddl_if(dialect="postgresql") for channel in MESSENGERS),
        NO_ID_REUSE,
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    birthday: Mapped[str | None] = mapped_column(String(10))  # ISO date; year may be 0004
    messenger_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    consent: Mapped[dict[str, Any]] = mapped_column(default=dict)  # channel -> state
    # channel -> {status, at, source, by}: when and by whom each state was set (engine/contacts/consent.py)
    consent_records: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    preferred_channel: Mapped[str | None] = mapped_column(String(16))  # chosen on the preference center
    topics: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")  # topic -> subscribed
    last_inbound_at: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")  # channel -> ISO
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Metrics kept current from events, in SQL (engine/contacts/metrics.py).
    orders_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_spent: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0), server_default="0")
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    loyalty_tier: Mapped[str | None] = mapped_column(String(32))


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_events_contact_time", "contact_id", "occurred_at"),
        # The sweeper's scan: only unevaluated events are in this index.
        Index(
            "ix_events_unevaluated",
            "enqueued_at",
            postgresql_where=text("evaluated_at IS NULL"),
            sqlite_where=text("evaluated_at IS NULL"),
        ),
        NO_ID_REUSE,
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(32), default="api")
    enqueued_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]


def _new_uuid() -> str:
    return str(uuid.uuid4())


class Journey(Base):
    """`uuid` travels in exported files: importing one updates the journey it came from.
    `recipe` names the trigger-library recipe it was installed from, if any."""

    __tablename__ = "journeys"
    __table_args__ = (Index("uq_journeys_workspace_uuid", "workspace_id", "uuid", unique=True), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36), default=_new_uuid)
    recipe: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JourneyStatus.DRAFT.value)
    draft: Mapped[dict[str, Any] | None]
    live_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("journey_versions.id", use_alter=True, name="fk_journeys_live_version")
    )
    # The draft's revision number (journey_draft_revisions): an edit based on another is stale.
    draft_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JourneyDraftRevision(Base):
    """One change to a journey's draft, never updated: the draft's history, and what undo and redo walk.

    An edit holds new content (`state_revision` is itself) and remembers the content it was made
    on (`parent_revision`, where undo goes back to). An undo or a redo holds the content of an
    earlier edit (`state_revision` names it), so it is a change of its own, with its own number.
    """

    __tablename__ = "journey_draft_revisions"
    __table_args__ = (UniqueConstraint("journey_id", "revision"),
                      Index("ix_journey_draft_revisions_parent", "journey_id", "parent_revision"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # engine/journeys/revisions.py: Action
    state_revision: Mapped[int] = mapped_column(Integer)
    parent_revision: Mapped[int | None] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    author: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]


class JourneyVersion(Base):
    """A published definition. Never updated: runs finish on the version they entered."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    trigger_event: Mapped[str] = mapped_column(String(100))  # entry event type(s), comma-separated
    definition: Mapped[dict[str, Any]]
    draft_revision: Mapped[int | None] = mapped_column(Integer)  # the draft revision it was published from
    created_at: Mapped[datetime]


class Run(Base):
    """One contact's enrollment in one journey version, for one correlation key."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("journey_version_id", "contact_id", "key"),
        Index("ix_runs_contact_status", "contact_id", "status"),
        Index(
            "ix_runs_due",
            "next_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
        NO_ID_REUSE,
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    journey_version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    trigger_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16))
    step_id: Mapped[str | None] = mapped_column(String(64))
    step_entered_at: Mapped[datetime]
    next_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")  # branch memory, e.g. split arm
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Message(Base):
    """The outbox: decided before it is sent, one per run and step."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id"),
        Index("ix_messages_contact", "contact_id", "created_at"),
        # Partial: only a sent message has these, and every other version of a row (claimed,
        # sending) skips them — dispatch writes three versions of each message.
        Index("ix_messages_provider_id", "provider_id",  # receipts find their message by it
              postgresql_where=text("provider_id IS NOT NULL"), sqlite_where=text("provider_id IS NOT NULL")),
        Index("ix_messages_sent_at", "sent_at",  # /metrics: send latency over the last hour
              postgresql_where=text("sent_at IS NOT NULL"), sqlite_where=text("sent_at IS NOT NULL")),
        Index("ix_messages_workspace_created", "workspace_id", "created_at"),  # channel status, last 24 h
        Index(
            "ix_messages_pending",
            "scheduled_at",
            postgresql_where=text("status IN ('scheduled', 'claimed', 'sending')"),
            sqlite_where=text("status IN ('scheduled', 'claimed', 'sending')"),
        ),
        NO_ID_REUSE,
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    journey_id: Mapped[int | None] = mapped_column(ForeignKey("journeys.id", ondelete="SET NULL"))
    step_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(100))
    template_version: Mapped[str | None] = mapped_column(String(16))
    to_address: Mapped[str | None] = mapped_column(String(320))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # the batch that holds the claim
    sent_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(998))
    arm: Mapped[str | None] = mapped_column(String(64))  # the split-test arm that chose this message
    transactional: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # What routing still may try if this channel fails for good (["sms", "email"]), and what
    # the provider told us (SMS segments and encoding, WhatsApp template or free text).
    fallback: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    delivered_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class JournalEntry(Base):
    """Why things happened: enrollments, steps, waits, skips and exits, per contact."""

    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_contact", "contact_id", "at"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))  # engine.contacts.journal.JournalKind
    step_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))  # the sentence a person reads
    # What is counted, beside the sentence (engine/contacts/journal.py builds every row).
    label: Mapped[str | None] = mapped_column(String(64))  # the branch taken
    reason: Mapped[str | None] = mapped_column(String(32))  # engine.reasons.Reason
    arm: Mapped[str | None] = mapped_column(String(129))  # "<split step id>:<arm name>"
    goal: Mapped[str | None] = mapped_column(String(100))  # the goal's label


class MessageReceipt(Base):
    """One provider receipt or tracking hit, kept once (the provider's event id is unique)."""

    __tablename__ = "message_receipts"
    __table_args__ = (UniqueConstraint("channel", "receipt_key"), Index("ix_receipts_message", "message_id"),
                      NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    receipt_key: Mapped[str] = mapped_column(String(200))  # provider event id, or a digest of the receipt
    status: Mapped[str] = mapped_column(String(16))
    applied: Mapped[bool] = mapped_column(default=False)  # False: arrived late or out of order, kept for the record
    detail: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class ChannelHealth(Base):
    """A workspace channel's circuit breaker (engine/delivery/channel_health.py): its counted
    failures in a row, its state, and whether a person or the breaker paused it."""

    __tablename__ = "channel_health"
    __table_args__ = (UniqueConstraint("workspace_id", "channel"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None]  # set while messages are held: open, half_open or paused by a person
    updated_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="closed", server_default="closed")
    paused_by: Mapped[str | None] = mapped_column(String(16))  # "breaker" | "person" | None
    state_since: Mapped[datetime | None]
    next_probe_at: Mapped[datetime | None]  # when a probe may go (open), or a lost probe may be replaced
    failed_probes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # since it opened
    opened_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # automatic openings


class Attribution(Base):
    """An order credited to the message whose click (or open) came last before it."""

    __tablename__ = "attributions"
    __table_args__ = (UniqueConstraint("order_event_id"), Index("ix_attributions_journey", "journey_id"),
                      NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    order_event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    journey_id: Mapped[int | None] = mapped_column(ForeignKey("journeys.id", ondelete="SET NULL"))
    step_id: Mapped[str | None] = mapped_column(String(64))
    arm: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    touch: Mapped[str] = mapped_column(String(8))  # click | open
    revenue: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    currency: Mapped[str | None] = mapped_column(String(3))
    attributed_at: Mapped[datetime]


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "channel", "address"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Erasure(Base):
    """A record that a contact was erased, holding no personal data.

    `subject_digest` is a keyed hash of the external id, so an operator can answer
    "was customer X erased?" given X, while the table alone reveals nothing.
    """

    __tablename__ = "erasures"
    __table_args__ = NO_ID_REUSE
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    subject_digest: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookReceipt(Base):
    """One delivery of a shop platform's webhook (Shopify, WooCommerce), de-duplicated.

    The payload is kept only when it could not be mapped, for inspection; mapped ones
    become events and their personal data lives there.
    """

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("workspace_id", "source", "delivery_id"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))  # shopify | woocommerce
    delivery_id: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # mapped | unmapped | ignored
    warning: Mapped[str | None] = mapped_column(String(500))
    event_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"ids": [...]}
    payload: Mapped[dict[str, Any] | None]
    received_at: Mapped[datetime]


class OutboxCapture(Base):
    """What the built-in SMTP sink (and later the fake providers) received."""

    __tablename__ = "outbox_captures"
    __table_args__ = (Index("ix_outbox_workspace", "workspace_id", "id"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    channel: Mapped[str] = mapped_column(String(16))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(998))
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")  # buttons, template name…
    received_at: Mapped[datetime]


class DeadLetter(Base):
    """An item of a job (an event, a run, a message) that kept failing, set aside with its error.

    One row per (job kind, item): `failing` while it is still retried, `dead` once set aside
    (its item is marked so nothing hands it out again), `resolved` when a later run of it
    went through (engine/batches/dead_letters.py).
    """

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("kind", "item_id"),
                      Index("ix_dead_letters_workspace", "workspace_id", "status", "id"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # the job: evaluate_events | advance_runs | dispatch_messages
    item_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    status: Mapped[str] = mapped_column(String(16))  # failing | dead | resolved
    error_type: Mapped[str] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    dead_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class MessageTemplate(Base):
    """A workspace's own template for one channel and name; where it has none, the seed folder in
    templates/ of that name is used. `draft` holds the parts as last saved (engine/delivery/template_versions.py
    says which), `draft_revision` counts the saves, so an edit made on a stale copy is refused instead of
    overwriting another's. `published_version_id` is what messages render from now."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "channel", "name"), NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    draft: Mapped[dict[str, Any] | None]
    draft_revision: Mapped[int] = mapped_column(Integer, default=0)
    draft_saved_by: Mapped[str | None] = mapped_column(String(320))
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_template_versions.id", use_alter=True, name="fk_message_templates_published_version")
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MessageTemplateVersion(Base):
    """One published text of a template. Never updated: a message names the version it was rendered from
    (messages.template_version holds its `digest`, a digest of the parts as templates/ computes it for
    the seed files too), so what a contact got can always be shown again."""

    __tablename__ = "message_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"), UniqueConstraint("template_id", "digest"),
                      NO_ID_REUSE)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 ... per template, for people
    digest: Mapped[str] = mapped_column(String(16))  # for messages and compiled-template caches
    subject: Mapped[str | None] = mapped_column(Text)  # email
    body_mjml: Mapped[str | None] = mapped_column(Text)  # email
    body_text: Mapped[str] = mapped_column(Text)  # email's text part; an SMS or messenger message
    buttons: Mapped[list[dict[str, str]]] = mapped_column(Json, default=list)  # [{text, url}] (Telegram, Viber)
    provider_template: Mapped[dict[str, Any] | None]  # WhatsApp's approved template {name, language, parameters}
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
