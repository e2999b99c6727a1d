"""The journal: one line per decision, so the timeline can say why anything happened.

A line is a sentence for people (`detail`) and, beside it, the fields that are counted:
its kind, the branch label, a reason code (engine/reasons.py), the split-test arm and the
goal. Counting reads those columns, never the sentence. Every row is built here, by
`journal_row`, whoever writes it: one line recorded at once (`record`, `record_run`,
`record_message`), the lines of a batch of walks inserted with one statement
(engine/journeys/effects.py), the hand-over's `sent` line (engine/delivery/handover.py).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy.orm import Session

from engine.reasons import Reason
from engine.store.models import JournalEntry, Message, Run


class JournalKind(enum.StrEnum):
    """What a line is about; stored as its value, so a value once written is never renamed."""

    # The contact and their consent.
    CONTACT_CREATED = "contact_created"  # an unknown sender wrote in on a messenger
    MESSENGER_LINKED = "messenger_linked"
    LINK_REFUSED = "link_refused"
    CONSENT_CHANGED = "consent_changed"
    CONSENT_REFUSED = "consent_refused"  # a shop's claim that the person's own word outranks
    SUBSCRIPTION_REQUESTED = "subscription_requested"
    SUBSCRIPTION_CONFIRMED = "subscription_confirmed"
    UNSUBSCRIBED = "unsubscribed"
    PREFERENCES_UPDATED = "preferences_updated"

    # A journey run: entering, walking its steps, ending.
    ENROLLED = "enrolled"
    NOT_ENROLLED = "not_enrolled"
    WAITING = "waiting"
    BRANCH = "branch"  # label: the branch taken; arm: the split-test arm, for a split
    CONTACT_UPDATED = "contact_updated"
    GOAL = "goal"
    EXITED = "exited"
    COMPLETED = "completed"

    # A message: made, sent, and what came back.
    MESSAGE_SCHEDULED = "message_scheduled"
    MESSAGE_DEFERRED = "message_deferred"
    SKIPPED = "skipped"
    SENT = "sent"
    RETRYING = "retrying"  # a transient provider error (counted by engine/ops/metrics.py)
    FAILED = "failed"  # a permanent one
    FALLBACK = "fallback"
    SUPPRESSED = "suppressed"
    CHANNEL_PAUSED = "channel_paused"
    CHANNEL_PROBE = "channel_probe"
    CHANNEL_RESUMED = "channel_resumed"
    IN_DOUBT_RESENT = "in_doubt_resent"
    IN_DOUBT_SKIPPED = "in_doubt_skipped"
    UNKNOWN = "unknown"  # in doubt, written before the in-doubt policy existed: found in older journals
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    BOUNCE_DELAYED = "bounce_delayed"

    # A job that failed on this event, run or message (engine/batches/dead_letters.py).
    PROCESSING_FAILED = "processing_failed"
    DEAD_LETTER = "dead_letter"
    DEAD_LETTER_RETRIED = "dead_letter_retried"
    DEAD_LETTER_RESOLVED = "dead_letter_resolved"


# Every row has these columns, whoever writes it (the hand-over's statement names them all).
COLUMNS = ("workspace_id", "contact_id", "run_id", "step_id", "message_id", "kind", "at", "detail", "label", "reason",
           "arm", "goal")
# The widths of the structured columns (engine/store/models.py): a longer value is cut, as the
# sentence is, rather than failing the write of the decision it records.
DETAIL_WIDTH, LABEL_WIDTH, ARM_WIDTH, GOAL_WIDTH = 500, 64, 129, 100


class LineFields(TypedDict, total=False):
    """What a line may say beyond who, what and when."""

    step_id: str | None
    message_id: int | None
    detail: str | None  # the sentence a person reads
    label: str | None  # the branch taken
    reason: Reason | None
    arm: str | None  # "<split step id>:<arm name>", as messages and attributions store it
    goal: str | None  # the goal's label ("order placed")


def journal_row(*, workspace_id: str, contact_id: int, kind: JournalKind, at: datetime, run_id: int | None = None,
                **fields: Unpack[LineFields]) -> dict[str, Any]:
    """The row of one journal line, every column present (a batch inserts rows of one shape)."""
    detail, label, reason = fields.get("detail"), fields.get("label"), fields.get("reason")
    arm, goal = fields.get("arm"), fields.get("goal")
    return {
        "workspace_id": workspace_id, "contact_id": contact_id, "run_id": run_id,
        "step_id": fields.get("step_id"), "message_id": fields.get("message_id"),
        "kind": kind.value, "at": at, "detail": detail[:DETAIL_WIDTH] if detail else None,
        "label": label[:LABEL_WIDTH] if label else None, "reason": reason.value if reason else None,
        "arm": arm[:ARM_WIDTH] if arm else None, "goal": goal[:GOAL_WIDTH] if goal else None,
    }


def run_row(run: Run, kind: JournalKind, *, at: datetime, **fields: Unpack[LineFields]) -> dict[str, Any]:
    """A line about a run; its step defaults to the one the run stands on."""
    fields["step_id"] = fields.get("step_id") or run.step_id
    return journal_row(workspace_id=run.workspace_id, contact_id=run.contact_id, kind=kind, at=at, run_id=run.id,
                       **fields)


def message_row(message: Message, kind: JournalKind, *, at: datetime, detail: str | None = None,
                reason: Reason | None = None) -> dict[str, Any]:
    """A line about a message: it carries the message's split-test arm, so an experiment counts
    what became of each arm's messages from the journal alone."""
    return journal_row(workspace_id=message.workspace_id, contact_id=message.contact_id, kind=kind, at=at,
                       run_id=message.run_id, step_id=message.step_id, message_id=message.id, detail=detail,
                       reason=reason, arm=message.arm)


def record(session: Session, *, workspace_id: str, contact_id: int, kind: JournalKind, at: datetime,
           run_id: int | None = None, **fields: Unpack[LineFields]) -> None:
    _add(session, journal_row(workspace_id=workspace_id, contact_id=contact_id, kind=kind, at=at, run_id=run_id,
                              **fields))


def record_run(session: Session, run: Run, kind: JournalKind, *, at: datetime, **fields: Unpack[LineFields]) -> None:
    _add(session, run_row(run, kind, at=at, **fields))


def record_message(session: Session, message: Message, kind: JournalKind, *, at: datetime,
                   detail: str | None = None, reason: Reason | None = None) -> None:
    _add(session, message_row(message, kind, at=at, detail=detail, reason=reason))


def _add(session: Session, row: dict[str, Any]) -> None:
    """Through the session, so the line is flushed in its order among the other objects added."""
    session.add(JournalEntry(**row))
