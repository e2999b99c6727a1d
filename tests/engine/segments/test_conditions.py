"""Conditions on a contact: each comparison, each kind of fact, nesting, descriptions and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from engine.errors import DefinitionError
from engine.journeys.definition import ConditionStep, parse_definition
from engine.segments.conditions import (
    AllOf,
    AnyOf,
    AttributeIs,
    Condition,
    EventHistory,
    Facts,
    MetricIs,
    NotOf,
    Op,
    PropertyIs,
    compare,
    describe,
    holds,
    needs_history,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


class EventCounter:
    """Stands in for the event-history query: answers `count` and remembers what it was asked."""

    def __init__(self, count: int = 0):
        self.count = count
        self.asked: list[tuple[str, datetime | None]] = []

    def __call__(self, event: str, since: datetime | None) -> int:
        self.asked.append((event, since))
        return self.count


def facts(attributes: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
          properties: dict[str, Any] | None = None, events: EventCounter | None = None) -> Facts:
    return Facts(attributes or {}, metrics or {}, properties or {}, events or EventCounter(), NOW)


def condition(data: Any) -> Condition:
    return CONDITION.validate_python(data)


def definition_errors(condition_data: Any) -> list[dict[str, str]]:
    step = {"type": "condition", "id": "check", "condition": condition_data}
    with pytest.raises(DefinitionError) as caught:
        parse_definition({"trigger": {"event": "cart_updated"}, "steps": [step]})
    return caught.value.errors


# compare, op by op


@pytest.mark.parametrize(
    ("actual", "expected", "result"),
    [("3", 3, True), (3.0, "3", True), (" 3 ", 3, True), ("gold", "gold", True),
     ("3", 4, False), ("gold", "Gold", False), (None, 0, False)],
)
def test_eq_treats_numbers_given_as_text_as_numbers(actual: Any, expected: Any, result: bool) -> None:
    """"3" equals 3 (shops send numbers as text), text is compared exactly, and a missing value equals nothing."""
    assert compare(actual, "eq", expected) is result


@pytest.mark.parametrize(("actual", "expected", "result"), [("3", 3, False), ("3", 4, True), (None, 0, True)])
def test_ne_is_the_opposite_of_eq(actual: Any, expected: Any, result: bool) -> None:
    """"3" ne 3 is false, "3" ne 4 is true, and a missing value differs from everything."""
    assert compare(actual, "ne", expected) is result


@pytest.mark.parametrize(
    ("actual", "op", "expected", "result"),
    [(5, "gt", 3, True), (3, "gt", 3, False), ("10", "gt", "9", True),
     (3, "gte", 3, True), (2.5, "gte", "3", False),
     (2, "lt", 3, True), (3, "lt", 3, False), ("9", "lt", "10", True),
     (3, "lte", 3, True), ("3.5", "lte", 3, False)],
)
def test_orderings_compare_numerically_even_when_given_as_text(actual: Any, op: Op, expected: Any,
                                                               result: bool) -> None:
    """gt/gte/lt/lte compare as numbers: "10" gt "9" holds, which text comparison would get wrong."""
    assert compare(actual, op, expected) is result


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
@pytest.mark.parametrize("actual", [None, "plenty", True, [1], {"n": 1}])
def test_a_missing_or_non_numeric_value_never_satisfies_an_ordering(actual: Any, op: Op) -> None:
    """A missing value (or text, a bool, a list) is neither above nor below anything, so both gt and lt fail."""
    assert compare(actual, op, 0) is False
    assert compare(actual, op, 1_000_000) is False


@pytest.mark.parametrize(
    ("actual", "expected", "found"),
    [("gold", ["gold", "silver"], True), ("2", [1, 2], True), ("bronze", ["gold", "silver"], False),
     (None, ["gold"], False), ("gold", "gold", False)],
)
def test_in_and_not_in_look_the_value_up_in_a_list(actual: Any, expected: Any, found: bool) -> None:
    """in holds when the value is one of the list (numbers as text match), not_in exactly when in does not."""
    assert compare(actual, "in", expected) is found
    assert compare(actual, "not_in", expected) is (not found)


@pytest.mark.parametrize(
    ("actual", "expected", "result"),
    [(["vip", "newsletter"], "vip", True), ([1, 2], "2", True), (["vip"], "gold", False),
     ("ada@shop.example", "@shop.", True), ("ada@example.com", "@shop.", False),
     (None, "vip", False), (42, "4", False)],
)
def test_contains_finds_an_item_in_a_list_or_a_piece_of_text(actual: Any, expected: Any, result: bool) -> None:
    """contains looks for an element of a list or a substring of text; anything else contains nothing."""
    assert compare(actual, "contains", expected) is result


@pytest.mark.parametrize(("actual", "exists"), [(0, True), ("", True), (False, True), ([], True), (None, False)])
def test_exists_means_present_even_when_falsy(actual: Any, exists: bool) -> None:
    """0, "", false and [] exist; only a missing (None) value does not; not_exists is the opposite."""
    assert compare(actual, "exists", None) is exists
    assert compare(actual, "not_exists", None) is (not exists)


# holds, fact by fact


def test_an_attribute_condition_follows_a_dotted_path_into_nested_attributes() -> None:
    """address.country reads attributes["address"]["country"]; a path through a missing or plain value is missing."""
    contact = facts(attributes={"address": {"country": "DE"}, "plan": "pro"})

    assert holds(AttributeIs(attribute="address.country", value="DE"), contact)
    assert not holds(AttributeIs(attribute="address.country", value="FR"), contact)
    assert holds(AttributeIs(attribute="address.city", op="not_exists"), contact)
    assert holds(AttributeIs(attribute="plan.tier", op="not_exists"), contact)


def test_a_property_condition_reads_the_trigger_event_not_the_contact() -> None:
    """PropertyIs looks at the event's properties: a cart total of "59.90" is above 50 even if an attribute says 1."""
    contact = facts(attributes={"total": 1}, properties={"total": "59.90", "cart": {"items": 3}})

    assert holds(PropertyIs(property="total", op="gt", value=50), contact)
    assert holds(PropertyIs(property="cart.items", op="gte", value=3), contact)
    assert not holds(AttributeIs(attribute="total", op="gt", value=50), contact)


def test_a_metric_condition_reads_the_contact_metrics_and_a_missing_metric_fails_orderings() -> None:
    """orders_count 3 is at least 2; with no total_spent recorded, neither "above" nor "below" holds."""
    contact = facts(metrics={"orders_count": 3})

    assert holds(MetricIs(metric="orders_count", op="gte", value=2), contact)
    assert not holds(MetricIs(metric="orders_count", op="lt", value=3), contact)
    assert not holds(MetricIs(metric="total_spent", op="gt", value=0), contact)
    assert not holds(MetricIs(metric="total_spent", op="lte", value=0), contact)


@pytest.mark.parametrize(
    ("bounds", "count", "result"),
    [({"at_least": 2}, 2, True), ({"at_least": 2}, 1, False),
     ({"at_most": 0}, 0, True), ({"at_most": 0}, 1, False),
     ({"at_least": 1, "at_most": 3}, 3, True), ({"at_least": 1, "at_most": 3}, 4, False),
     ({"at_least": 0}, 0, True)],
)
def test_event_history_counts_against_at_least_and_at_most(bounds: dict[str, int], count: int, result: bool) -> None:
    """at_least and at_most are inclusive bounds on the count, and both must hold when both are given."""
    assert holds(EventHistory(event="order_placed", **bounds), facts(events=EventCounter(count))) is result


@pytest.mark.parametrize(("count", "result"), [(0, False), (1, True), (7, True)])
def test_event_history_without_bounds_means_at_least_one(count: int, result: bool) -> None:
    """With neither at_least nor at_most, the condition asks whether the contact had the event at all."""
    assert holds(EventHistory(event="order_placed"), facts(events=EventCounter(count))) is result


def test_event_history_within_days_counts_since_that_many_days_before_now() -> None:
    """within_days 30 asks count_events for the event type since now − 30 days."""
    events = EventCounter(1)

    holds(EventHistory(event="order_placed", within_days=30), facts(events=events))

    assert events.asked == [("order_placed", NOW - timedelta(days=30))]


def test_event_history_without_within_days_counts_all_time() -> None:
    """Without within_days the count has no lower bound in time (since is None)."""
    events = EventCounter(1)

    holds(EventHistory(event="product_viewed", at_least=1), facts(events=events))

    assert events.asked == [("product_viewed", None)]


# nesting, from the JSON forms


def test_the_json_forms_all_any_and_not_parse_into_nested_conditions() -> None:
    """{"all": …}, {"any": …} and {"not": …} become AllOf, AnyOf and NotOf, each leaf by its telling key."""
    parsed = condition({"all": [{"any": [{"metric": "orders_count", "op": "gte", "value": 2},
                                         {"event": "order_placed", "within_days": 30}]},
                                {"not": {"attribute": "vip", "value": True}},
                                {"property": "total", "op": "gt", "value": 50}]})

    assert parsed == AllOf(all=[
        AnyOf(any=[MetricIs(metric="orders_count", op="gte", value=2),
                   EventHistory(event="order_placed", within_days=30)]),
        NotOf(not_=AttributeIs(attribute="vip", value=True)),
        PropertyIs(property="total", op="gt", value=50),
    ])


VIP_OR_BIG_SPENDER_WHO_IS_NOT_BLOCKED = {
    "all": [
        {"any": [{"attribute": "vip", "value": True}, {"metric": "total_spent", "op": "gte", "value": 500}]},
        {"not": {"attribute": "tags", "op": "contains", "value": "blocked"}},
    ]
}


@pytest.mark.parametrize(
    ("attributes", "metrics", "result"),
    [({"vip": True}, {}, True), ({}, {"total_spent": "750"}, True), ({}, {"total_spent": 100}, False),
     ({"vip": True, "tags": ["blocked"]}, {}, False),
     ({"vip": False, "tags": ["newsletter"]}, {"total_spent": 500}, True)],
)
def test_nested_all_any_and_not_combine_as_written(attributes: dict[str, Any], metrics: dict[str, Any],
                                                    result: bool) -> None:
    """(vip or spent ≥ 500) and not tagged blocked: each way in and each way out is decided correctly."""
    parsed = condition(VIP_OR_BIG_SPENDER_WHO_IS_NOT_BLOCKED)

    assert holds(parsed, facts(attributes=attributes, metrics=metrics)) is result


def test_a_condition_step_in_a_definition_parses_its_json_condition() -> None:
    """Through parse_definition, a step's {"not": {…}} is a NotOf, and dumping by alias gives the same JSON back."""
    data = {"not": {"event": "order_placed", "within_days": 7}}
    parsed = parse_definition({"trigger": {"event": "cart_updated"},
                               "steps": [{"type": "condition", "id": "check", "condition": data}]})
    step = parsed.step("check")

    assert isinstance(step, ConditionStep)
    assert step.condition == NotOf(not_=EventHistory(event="order_placed", within_days=7))
    assert CONDITION.dump_python(step.condition, by_alias=True, exclude_defaults=True) == data


# describe and needs_history


def test_describe_reads_a_nested_condition_as_a_sentence() -> None:
    """Any inside all is bracketed, not is bracketed, events read "in N days", and exists carries no value."""
    parsed = condition({"all": [
        {"any": [{"metric": "orders_count", "op": "gte", "value": 2}, {"attribute": "vip", "value": True}]},
        {"not": {"property": "coupon", "op": "exists"}},
        {"event": "order_placed", "within_days": 30, "at_most": 3},
        {"metric": "loyalty_tier", "op": "not_exists"},
    ]})

    assert describe(parsed) == (
        "(orders_count gte 2 or vip eq True) and not (event.coupon exists) and order_placed in 30 days <= 3"
        " and loyalty_tier not_exists"
    )


@pytest.mark.parametrize(
    ("data", "text"),
    [({"event": "order_placed"}, "order_placed >= 1"),
     ({"event": "order_placed", "at_least": 2, "at_most": 5}, "order_placed >= 2 <= 5"),
     ({"any": [{"all": [{"attribute": "a", "value": 1}, {"attribute": "b", "value": 2}]},
               {"attribute": "c", "value": 3}]}, "a eq 1 and b eq 2 or c eq 3")],
)
def test_describe_spells_out_default_bounds_and_unbracketed_all_inside_any(data: Any, text: str) -> None:
    """An unbounded event history reads ">= 1"; "and" binds tighter than "or", so all inside any needs no brackets."""
    assert describe(condition(data)) == text


@pytest.mark.parametrize(
    ("data", "needed"),
    [({"event": "order_placed"}, True),
     ({"any": [{"attribute": "vip"}, {"not": {"event": "order_placed", "within_days": 7}}]}, True),
     ({"all": [{"attribute": "vip"}, {"metric": "orders_count", "op": "gt", "value": 0},
               {"not": {"property": "total", "op": "exists"}}]}, False)],
)
def test_needs_history_is_true_only_when_an_event_history_appears_somewhere(data: Any, needed: bool) -> None:
    """An EventHistory at any depth (even under not inside any) costs a query; other conditions do not."""
    assert needs_history(condition(data)) is needed


# validation


def test_an_unknown_op_is_rejected_at_the_op_field_of_its_condition() -> None:
    """op "like" is one error, at steps.0.condition.condition.attribute.op, listing the known ops."""
    [error] = definition_errors({"attribute": "email", "op": "like", "value": "%@shop.example"})

    assert error["field"] == "steps.0.condition.condition.attribute.op"
    assert "'contains'" in error["message"]


def test_an_unknown_metric_is_rejected_at_the_metric_field() -> None:
    """metric "lifetime_value" is one error at …metric.metric, listing the metrics there are."""
    [error] = definition_errors({"metric": "lifetime_value", "op": "gt", "value": 100})

    assert error["field"] == "steps.0.condition.condition.metric.metric"
    assert "'orders_count'" in error["message"]


def test_an_empty_all_is_rejected_at_its_list() -> None:
    """{"all": []} would hold vacuously, so it is refused at …all.all as needing at least one item."""
    [error] = definition_errors({"all": []})

    assert error["field"] == "steps.0.condition.condition.all.all"
    assert "at least 1 item" in error["message"]


def test_an_error_deep_inside_nesting_names_the_whole_path() -> None:
    """A bad op under all → not is reported with every level of the path, ending in .op."""
    [error] = definition_errors({"all": [{"attribute": "vip"}, {"not": {"metric": "orders_count", "op": "bigger"}}]})

    assert error["field"] == "steps.0.condition.condition.all.all.1.not.not.metric.op"


def test_a_condition_of_no_known_kind_is_rejected_saying_which_keys_it_may_have() -> None:
    """A condition without attribute/property/metric/event/all/any/not is one error naming those keys."""
    [error] = definition_errors({"colour": "blue"})

    assert error["field"] == "steps.0.condition.condition"
    assert "attribute" in error["message"] and "not" in error["message"]


def test_a_trigger_filter_is_validated_like_a_condition_step() -> None:
    """An entry filter with a bad op is refused at the filter's property.op under its trigger."""
    data = {"trigger": {"event": "cart_updated", "filter": {"property": "total", "op": "over", "value": 5}},
            "steps": [{"type": "exit", "id": "done"}]}

    with pytest.raises(DefinitionError) as caught:
        parse_definition(data)

    assert [e["field"] for e in caught.value.errors] == ["trigger.filter.property.op"]
