"""Conditions on a contact: attributes, metrics, the trigger event's properties, event history.

Used by condition splits and entry filters. A condition is validated data; `holds`
evaluates it against `Facts`, which the runs service gathers (event history is asked
for through a callback, so only conditions that need it cost a query).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists", "not_exists"]
Path = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]
Metric = Literal[
    "orders_count", "total_spent", "average_order_value", "loyalty_tier",
    "days_since_last_order", "days_since_last_activity",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AttributeIs(_Model):
    attribute: Path
    op: Op = "eq"
    value: Any = None


class PropertyIs(_Model):
    """A property of the event that started the run (e.g. the cart total)."""

    property: Path
    op: Op = "eq"
    value: Any = None


class MetricIs(_Model):
    metric: Metric
    op: Op = "eq"
    value: Any = None


class EventHistory(_Model):
    """How many events of a type the contact had (within the last N days): at least / at most."""

    event: Annotated[str, Field(min_length=1, max_length=100)]
    within_days: int | None = Field(default=None, ge=1, le=3650)
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)


class AllOf(_Model):
    all: Annotated[list[Condition], Field(min_length=1)]


class AnyOf(_Model):
    any: Annotated[list[Condition], Field(min_length=1)]


class NotOf(_Model):
    not_: Condition = Field(alias="not")


_TAGS: dict[type, str] = {
    AttributeIs: "attribute", PropertyIs: "property", MetricIs: "metric", EventHistory: "event",
    AllOf: "all", AnyOf: "any", NotOf: "not",
}


def _kind(value: Any) -> str | None:
    """The kind of condition, told by its key, so an error speaks of that kind's fields alone."""
    if isinstance(value, dict):
        return next((tag for tag in _TAGS.values() if tag in value or f"{tag}_" in value), None)
    return _TAGS.get(type(value))


# Tagged by key rather than tried member by member: one typo gives one error at its field,
# not one per kind of condition (most of them "extra inputs are not permitted").
Condition = Annotated[
    Annotated[AttributeIs, Tag("attribute")] | Annotated[PropertyIs, Tag("property")]
    | Annotated[MetricIs, Tag("metric")] | Annotated[EventHistory, Tag("event")]
    | Annotated[AllOf, Tag("all")] | Annotated[AnyOf, Tag("any")] | Annotated[NotOf, Tag("not")],
    Discriminator(_kind, custom_error_type="condition_kind",
                  custom_error_message="a condition needs one of: " + ", ".join(_TAGS.values())),
]
for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()


@dataclass(frozen=True)
class Facts:
    attributes: dict[str, Any]
    metrics: dict[str, Any]
    properties: dict[str, Any]
    count_events: Callable[[str, datetime | None], int]  # (type, since) -> count
    now: datetime


def lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def compare(actual: Any, op: Op, expected: Any) -> bool:
    """Missing values never satisfy an ordering; numbers given as text compare as numbers."""
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op in ("in", "not_in"):
        found = isinstance(expected, list) and any(_same(actual, e) for e in expected)
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(actual, list):
            return any(_same(a, expected) for a in actual)
        return isinstance(actual, str) and str(expected) in actual
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(actual: Any, expected: Any) -> bool:
    if actual == expected:
        return True
    left, right = _number(actual), _number(expected)
    return left is not None and left == right


def holds(condition: Condition, facts: Facts) -> bool:
    match condition:
        case AttributeIs(attribute=path, op=op, value=value):
            return compare(lookup(facts.attributes, path), op, value)
        case PropertyIs(property=path, op=op, value=value):
            return compare(lookup(facts.properties, path), op, value)
        case MetricIs(metric=metric, op=op, value=value):
            return compare(facts.metrics.get(metric), op, value)
        case EventHistory(event=event, within_days=days, at_least=low, at_most=high):
            since = facts.now - timedelta(days=days) if days else None
            count = facts.count_events(event, since)
            return (low is None or count >= low) and (high is None or count <= high) and (
                low is not None or high is not None or count > 0
            )
        case AllOf(all=parts):
            return all(holds(part, facts) for part in parts)
        case AnyOf(any=parts):
            return any(holds(part, facts) for part in parts)
        case NotOf(not_=inner):
            return not holds(inner, facts)
        case _:
            assert_never(condition)


def describe(condition: Condition) -> str:
    """A short human reading, for the timeline: `orders_count gte 2 and not vip eq true`."""
    match condition:
        case AttributeIs(attribute=path, op=op, value=value):
            return f"{path} {op} {value!r}" if op not in ("exists", "not_exists") else f"{path} {op}"
        case PropertyIs(property=path, op=op, value=value):
            return f"event.{path} {op} {value!r}" if op not in ("exists", "not_exists") else f"event.{path} {op}"
        case MetricIs(metric=metric, op=op, value=value):
            return f"{metric} {op} {value!r}" if op not in ("exists", "not_exists") else f"{metric} {op}"
        case EventHistory(event=event, within_days=days, at_least=low, at_most=high):
            window = f" in {days} days" if days else ""
            bounds = " ".join(b for b in (f">= {low}" if low is not None else "",
                                          f"<= {high}" if high is not None else "") if b) or ">= 1"
            return f"{event}{window} {bounds}"
        case AllOf(all=parts):
            return " and ".join(f"({describe(p)})" if isinstance(p, AnyOf) else describe(p) for p in parts)
        case AnyOf(any=parts):
            return " or ".join(describe(p) for p in parts)
        case NotOf(not_=inner):
            return f"not ({describe(inner)})"
        case _:
            assert_never(condition)


def needs_history(condition: Condition) -> bool:
    match condition:
        case EventHistory():
            return True
        case AllOf(all=parts) | AnyOf(any=parts):
            return any(needs_history(p) for p in parts)
        case NotOf(not_=inner):
            return needs_history(inner)
        case _:
            return False
