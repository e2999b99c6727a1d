"""Ratings and comments from review links, recorded as the contact's events.

A click on a rating link becomes a `review_submitted` event (order_id, score) and a
comment a `review_comment` event (order_id, score, comment), ingested like any event:
journeys start on them (review follow-up), goals end on them (the review request),
and the contact's timeline shows them. Event ids come from the link, so a double
click or a resent form records once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.contacts.ingest import ingest_events
from engine.links.reviews import ReviewLink
from engine.store.models import Contact, Workspace

MAX_COMMENT = 2000
SOURCE = "review_link"


@dataclass(frozen=True)
class Recorded:
    workspace_name: str
    link: ReviewLink
    first_time: bool  # False: this rating (or comment) was recorded before


def record_rating(session: Session, link: ReviewLink, *, now: datetime) -> Recorded | None:
    """Record the rating a link stands for; None when its workspace or contact is gone (erased)."""
    return _record(session, link, link.event_id, "review_submitted", {}, now=now)


def record_comment(session: Session, link: ReviewLink, comment: str, *, now: datetime) -> Recorded | None:
    comment = comment.strip()
    if not comment or len(comment) > MAX_COMMENT:
        raise ValueError(f"a comment has 1 to {MAX_COMMENT} characters")
    return _record(session, link, link.comment_event_id(comment), "review_comment", {"comment": comment}, now=now)


def shop_name(session: Session, link: ReviewLink) -> str | None:
    """The name of the shop a link belongs to; None when its workspace or contact is gone."""
    owner = _owner(session, link)
    return owner[0].name if owner else None


def _owner(session: Session, link: ReviewLink) -> tuple[Workspace, Contact] | None:
    workspace = session.get(Workspace, link.workspace_id)
    contact = session.get(Contact, link.contact_id)
    if workspace is None or contact is None or contact.workspace_id != workspace.id:
        return None
    return workspace, contact


def _record(session: Session, link: ReviewLink, event_id: str, event_type: str, extra: dict[str, Any], *,
            now: datetime) -> Recorded | None:
    owner = _owner(session, link)
    if owner is None:
        return None
    workspace, contact = owner
    payload = {
        "id": event_id, "type": event_type, "occurred_at": now.isoformat(),
        "contact": {"external_id": contact.external_id},
        "properties": {"order_id": link.order_id, "score": link.score, **extra},
    }
    [result] = ingest_events(session, workspace.id, [payload], now=now, source=SOURCE)
    if result.status == "invalid":  # our own payload: a contact stored with an id ingest now refuses
        raise ValueError(f"review event refused: {result.errors}")
    return Recorded(workspace.name, link, first_time=result.status == "accepted")
