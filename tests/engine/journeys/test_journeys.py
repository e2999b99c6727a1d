"""Journey definitions are validated data whose errors name the bad field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.errors import DefinitionError
from engine.journeys.definition import Trigger, parse_definition
from templates.emails import has_email_template
from triggers import abandoned_cart


def definition(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "trigger": {"event": "cart_updated", "key": "cart_id"},
        "steps": [{"type": "wait", "id": "w", "hours": 1},
                  {"type": "send", "id": "s", "channel": "email", "template": "abandoned_cart"}],
    }
    data.update(overrides)
    return data


def errors_of(data: Any) -> list[dict[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data)
    return caught.value.errors


def test_a_valid_definition_parses() -> None:
    """The baseline the error tests start from is itself valid, so each of them fails for its one change."""
    parsed = parse_definition(definition())

    assert [s.id for s in parsed.steps] == ["w", "s"]


def test_a_negative_wait_is_reported_at_the_path_of_its_field() -> None:
    """A wait of -1 hours is rejected with the path steps.0.….hours."""
    data = definition(steps=[{"type": "wait", "id": "w", "hours": -1}])

    [error] = errors_of(data)

    assert error["field"].startswith("steps.0.")
    assert error["field"].endswith(".hours")
    assert "greater than or equal to 0" in error["message"]


def test_a_trigger_without_event_is_reported_as_trigger_event() -> None:
    """A trigger missing its event type names trigger.event as required."""
    [error] = errors_of(definition(trigger={"key": "cart_id"}))

    assert error == {"field": "trigger.event", "message": "Field required"}


def test_duplicate_step_ids_are_rejected() -> None:
    """Two steps sharing an id are refused, and the message names the id."""
    steps = [{"type": "exit", "id": "same"}, {"type": "exit", "id": "same"}]

    [error] = errors_of(definition(steps=steps))

    assert "'same' is used twice" in error["message"]


def test_an_unknown_step_type_is_rejected_at_its_step() -> None:
    """A step of a type no handler knows ("sms") is refused at steps.0, listing the known types."""
    [error] = errors_of(definition(steps=[{"type": "sms", "id": "x"}]))

    assert error["field"] == "steps.0"
    assert "'sms'" in error["message"] and "'wait'" in error["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"trigger": {"event": "cart_updated", "keys": "cart_id"}}, "trigger.keys"),
        ({"steps": [{"type": "exit", "id": "e", "why": "typo of reason"}]}, "steps.0.exit.why"),
    ],
)
def test_unknown_keys_are_rejected_where_they_appear(overrides: dict[str, Any], field: str) -> None:
    """A misspelt key is an error at its path, not silently ignored."""
    [error] = errors_of(definition(**overrides))

    assert error["field"] == field
    assert error["message"] == "Extra inputs are not permitted"


def test_a_journey_needs_at_least_one_step() -> None:
    """An empty step list is refused at steps."""
    [error] = errors_of(definition(steps=[]))

    assert error["field"] == "steps"


def test_the_abandoned_cart_recipe_is_keyed_by_cart_id_and_ends_on_order_placed() -> None:
    """The recipe validates, starts one run per cart on a cart update or a checkout, and has the order_placed goal."""
    parsed = parse_definition(abandoned_cart.recipe(wait_seconds=1800))

    assert parsed.entry_events == ("cart_updated", "checkout_started")
    assert isinstance(parsed.trigger, Trigger) and parsed.trigger.key == "cart_id"
    goal = parsed.goal_for("order_placed")
    assert goal is not None and goal.label == "order placed"
    assert parsed.goal_for("cart_updated") is None


def test_the_abandoned_cart_recipe_waits_as_asked_then_sends_an_existing_template() -> None:
    """The wait lasts wait_seconds and the send uses a template that is deployed."""
    parsed = parse_definition(abandoned_cart.recipe(wait_seconds=1800))
    wait_step, send_step = parsed.steps

    assert wait_step.type == "wait" and wait_step.duration == timedelta(minutes=30)
    assert send_step.type == "send" and has_email_template(send_step.template)
