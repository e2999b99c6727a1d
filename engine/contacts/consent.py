"""Consent per channel, with when and by whom: a withdrawal by the person stays withdrawn.

Each channel's state ("opted_in", "opted_out", "pending") is kept in `contact.consent`
(what sending reads) and its origin in `contact.consent_records[channel]`:
`{"status", "at", "source", "by"}`, where `by` is "person" (the contact did it), "shop"
(the shop's record said so) or "system" (Rapport did it).

The rule: once the person withdrew (one-click unsubscribe, preference center, STOP, `/stop`,
a spam complaint) or asked to be asked first (a double opt-in not yet confirmed), nothing
may grant that channel again except
- a newer action of the person through Rapport (preference center, double opt-in
  confirmation, inbound START), or
- a claim that carries its own time, later than the withdrawal, and a source saying the
  person gave it (PERSON_SOURCES, e.g. a checkout box ticked at that time).
A shop's stale customer record ("opted_in", no time) is refused, and the refusal is
journaled. Opting out is always applied, from anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from engine.contacts.journal import JournalKind, record
from engine.store.models import Contact

OPTED_IN, OPTED_OUT, PENDING = "opted_in", "opted_out", "pending"
By = Literal["person", "shop", "system"]
PERSON: By = "person"
SHOP: By = "shop"
SYSTEM: By = "system"
# Sources an event's consent may name to say the person gave it (documented in the README).
PERSON_SOURCES = frozenset({
    "checkout_checkbox", "signup_form", "account_settings", "double_opt_in", "preference_center",
    "customer_request", "shopify_single_opt_in", "shopify_confirmed_opt_in",
})
# A claim's own time may run ahead of ours by this much (clock skew); further ahead it is not believed.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentClaim:
    """Someone says a channel's consent is `status`."""

    status: str
    at: datetime
    source: str  # "one-click unsubscribe", "checkout_checkbox", "shop event" ...
    by: By
    origin: str  # for the journal: "by the person (one-click unsubscribe)", "from shop event evt-9"
    firsthand: bool = False  # the person's own action, received by Rapport just now
    timed: bool = False  # `at` came with the claim (not the event's time)


def claim_from_event(value: dict[str, Any], *, occurred_at: datetime, event_id: str, source: str) -> ConsentClaim:
    """The claim an event's consent value makes (ingest's ConsentIn as a dict); `source` is ingest's."""
    named, at = value.get("source"), value.get("at")
    kind = "shop event" if source in ("shopify", "woocommerce") else f"{source} event"
    said = ", ".join(part for part in (named, f"at {at.isoformat()}" if at else None) if part)
    return ConsentClaim(
        status=value["status"], at=at or occurred_at, source=named or kind,
        by=PERSON if named in PERSON_SOURCES else SHOP, timed=at is not None,
        origin=f"from {kind} {event_id}" + (f" ({said})" if said else ""),
    )


def refusal(record_: dict[str, Any] | None, current: str | None, claim: ConsentClaim, *,
            now: datetime) -> str | None:
    """Why `claim` may not change the channel, or None when it may."""
    if claim.status == OPTED_OUT or claim.firsthand or current == claim.status:
        return None
    if not record_ or record_.get("by") != PERSON or current not in (OPTED_OUT, PENDING):
        return _stale(record_, claim)
    said_at = datetime.fromisoformat(record_["at"])
    if claim.by == PERSON and claim.timed and said_at < claim.at <= now + CLOCK_SKEW:
        return None
    when = f"{said_at.date().isoformat()} ({record_.get('source')})"
    if current == OPTED_OUT:
        return f"withdrawn by the person on {when}"
    return f"the person has not confirmed the double opt-in asked for on {when}"


def _stale(record_: dict[str, Any] | None, claim: ConsentClaim) -> str | None:
    """A timed claim older than the state it would replace is out of date."""
    if record_ and claim.timed and claim.at < datetime.fromisoformat(record_["at"]):
        return f"older than the {record_.get('status')} recorded at {record_['at']} ({record_.get('source')})"
    return None


def apply_claim(session: Session, contact: Contact, channel: str, claim: ConsentClaim, *, now: datetime,
                journal_change: bool = True) -> bool:
    """Apply `claim` to `contact` or journal why not; True when the channel's state changed.

    Callers that journal the change in their own words (an unsubscribe) pass
    `journal_change=False`; refusals are always journaled.
    """
    current = contact.consent.get(channel)
    previous = (contact.consent_records or {}).get(channel)
    reason = refusal(previous, current, claim, now=now)
    if reason is not None:
        record(session, workspace_id=contact.workspace_id, contact_id=contact.id, kind=JournalKind.CONSENT_REFUSED,
               at=now, detail=f"consent {channel} {claim.status} {claim.origin} not applied: {reason}")
        return False
    changed = current != claim.status
    if not changed and not (claim.by == PERSON and (previous or {}).get("by") != PERSON):
        return False  # the same state again: its first record says more
    contact.consent = {**contact.consent, channel: claim.status}  # new dicts, so the JSON columns are written
    contact.consent_records = {**(contact.consent_records or {}), channel: record_of(claim, now=now)}
    contact.updated_at = now
    if changed and journal_change:
        record(session, workspace_id=contact.workspace_id, contact_id=contact.id, kind=JournalKind.CONSENT_CHANGED,
               at=now, detail=f"consent {channel} {claim.status} {claim.origin}")
    return changed


def record_of(claim: ConsentClaim, *, now: datetime) -> dict[str, str]:
    """What `consent_records[channel]` keeps of an applied claim (a time ahead of ours is kept as now)."""
    return {"status": claim.status, "at": min(claim.at, now).isoformat(), "source": claim.source, "by": claim.by}


def persons(status: str, source: str, *, now: datetime) -> ConsentClaim:
    """A claim for the person's own action through Rapport, happening now."""
    return ConsentClaim(status=status, at=now, source=source, by=PERSON, origin=f"by the person ({source})",
                        firsthand=True)


def apply_person(session: Session, contact: Contact, changes: dict[str, str], source: str, *,
                 now: datetime, journal_change: bool = False) -> dict[str, str]:
    """The person's own choices, applied at once; return the channels that changed."""
    return {channel: status for channel, status in changes.items()
            if apply_claim(session, contact, channel, persons(status, source, now=now), now=now,
                           journal_change=journal_change)}
