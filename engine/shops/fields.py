"""Reading shop platforms' payloads: field cleaning shared by the Shopify and WooCommerce mappers.

Shops send what their admins typed: phone numbers with words in them, empty strings
for absent names, amounts as strings. A webhook must not be lost over one odd field,
so `finish` drops optional contact fields our validation refuses and keeps the event;
only an event that cannot be identified at all becomes unmapped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from engine.contacts.ingest import parse_event
from engine.field_errors import field_path
from engine.shops.webhooks import Mapped, Unmapped

# Fields an event is still worth storing without: the contact stays identified by its
# external_id or email, and occurred_at defaults to the time of receipt.
DROPPABLE = {("occurred_at",), *(("contact", name) for name in (
    "email", "phone", "first_name", "last_name", "locale", "birthday", "timezone"))}


def finish(*events: dict[str, Any]) -> Mapped | Unmapped:
    """Validate the events as ingest will, dropping optional fields it would refuse."""
    done = []
    for event in events:
        for _ in range(len(DROPPABLE) + 1):
            try:
                parse_event(event)
                break
            except ValidationError as exc:
                locs = {tuple(err["loc"][:2]) for err in exc.errors()}
                if not locs <= DROPPABLE:
                    messages = "; ".join(f"{field_path(e['loc'])}: {e['msg']}"
                                         for e in exc.errors() if tuple(e["loc"][:2]) not in DROPPABLE)
                    return Unmapped(f"the payload maps to an invalid event: {messages}")
                event = _without(event, locs)
        done.append(event)
    return Mapped(tuple(done))


def _without(event: dict[str, Any], locs: set[tuple[Any, ...]]) -> dict[str, Any]:
    event = {k: v for k, v in event.items() if (k,) not in locs}
    contact = event.get("contact")
    if isinstance(contact, dict):
        event["contact"] = {k: v for k, v in contact.items() if ("contact", k) not in locs}
    return event


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without its None values, empty strings and empty dicts."""
    return {k: v for k, v in data.items() if v is not None and v != "" and v != {}}


def text(value: Any, limit: int = 200) -> str | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    value = str(value).strip()
    return value[:limit] if value else None


def ident(value: Any) -> str | None:
    """A platform's id (an integer in JSON) as a string; 0 and blanks mean none."""
    if isinstance(value, bool) or value in (None, 0, "", "0"):
        return None
    return text(value)


def amount(value: Any) -> float | None:
    """Amounts arrive as strings ("19.90") or numbers; both become floats, as the API takes."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def quantity(value: Any) -> int | None:
    try:
        return int(value) if not isinstance(value, bool) and value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def timestamp(value: Any, *, assume_utc: bool = False) -> str | None:
    """An ISO 8601 time with its offset, or None. `assume_utc` reads one without an offset
    as UTC (WooCommerce's `*_gmt` fields); otherwise such a time is unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not assume_utc:
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def items(lines: Any, read: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """`read(line)` for each dict in `lines`, dropping the ones it cannot name."""
    if not isinstance(lines, list):
        return []
    found = [read(line) for line in lines if isinstance(line, dict)]
    return [item for item in found if item.get("name")]
