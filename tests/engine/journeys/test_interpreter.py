"""The journey walk: waits, sends and exits decided from `now`, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.journeys.definition import JourneyDefinition, parse_definition
from engine.journeys.interpreter import Completed, Exited, Outcome, PlannedSend, Waiting, advance
from engine.journeys.steps import HANDLERS

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def journey(*steps: dict[str, Any]) -> JourneyDefinition:
    return parse_definition({"trigger": {"event": "cart_updated", "key": "cart_id"}, "steps": list(steps)})


def wait(step_id: str, **duration: int) -> dict[str, Any]:
    return {"type": "wait", "id": step_id, **duration}


def send(step_id: str, template: str = "abandoned_cart") -> dict[str, Any]:
    return {"type": "send", "id": step_id, "channel": "email", "template": template}


def test_a_wait_before_its_due_time_leaves_the_run_waiting_until_entry_plus_duration() -> None:
    """Half-way through a one-hour wait, nothing is sent and the run waits until entered_at + 1 h."""
    definition = journey(wait("wait-1h", hours=1), send("reminder"))

    outcome = advance(definition, "wait-1h", T0, now=T0 + timedelta(minutes=30))

    assert outcome == Outcome(Waiting("wait-1h", T0, T0 + timedelta(hours=1)), effects=[], state={}, passed=[])


def test_a_wait_that_fell_due_lets_the_following_send_be_planned_and_the_run_complete() -> None:
    """At the due time the wait is passed, the send after it is planned and the run completes."""
    definition = journey(wait("wait-1h", hours=1), send("reminder"))

    outcome = advance(definition, "wait-1h", T0, now=T0 + timedelta(hours=1))

    assert outcome.sends == [PlannedSend("reminder", "email", "abandoned_cart")]
    assert outcome.stop == Completed()
    assert outcome.passed == ["wait-1h", "reminder"]


def test_a_chained_wait_is_measured_from_the_previous_due_time_not_from_now() -> None:
    """A wait processed two minutes late starts the next wait at its due time, so delays do not add up."""
    definition = journey(wait("first", hours=1), wait("second", hours=1), send("reminder"))

    outcome = advance(definition, "first", T0, now=T0 + timedelta(hours=1, minutes=2))

    assert outcome.stop == Waiting("second", T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert outcome.sends == []


def test_chained_waits_processed_late_are_all_passed_in_one_walk() -> None:
    """Processed after both waits fell due, the walk goes through both and plans the send at once."""
    definition = journey(wait("first", hours=1), wait("second", minutes=30), send("reminder"))

    outcome = advance(definition, "first", T0, now=T0 + timedelta(hours=1, minutes=31))

    assert outcome.stop == Completed()
    assert outcome.sends == [PlannedSend("reminder", "email", "abandoned_cart")]


def test_an_exit_step_stops_the_run_with_its_reason_and_plans_nothing_after_it() -> None:
    """Sends before an exit are planned; the exit stops the walk with its reason; later steps never run."""
    definition = journey(
        send("welcome", "welcome"),
        {"type": "exit", "id": "stop-here", "reason": "customer already bought"},
        send("never", "never_sent"),
    )

    outcome = advance(definition, "welcome", T0, now=T0)

    assert outcome.stop == Exited("stop-here", "customer already bought")
    assert outcome.sends == [PlannedSend("welcome", "email", "welcome")]
    assert outcome.passed == ["welcome", "stop-here"]


def test_the_same_walk_repeated_with_the_same_inputs_plans_the_same_sends() -> None:
    """advance is deterministic: a repeated walk (a job run twice) plans identical sends and stop."""
    definition = journey(wait("w", hours=1), send("a", "first_mail"), send("b", "second_mail"), wait("w2", days=1))
    now = T0 + timedelta(hours=1, minutes=5)

    first = advance(definition, "w", T0, now=now)
    second = advance(definition, "w", T0, now=now)

    assert first == second
    assert [s.step_id for s in first.sends] == ["a", "b"]
    assert isinstance(first.stop, Waiting) and first.stop.step_id == "w2"


def test_every_step_type_of_the_definition_model_has_a_handler() -> None:
    """The step kinds the model accepts (read from its discriminator) are exactly the registered handlers."""
    steps_schema = JourneyDefinition.model_json_schema()["properties"]["steps"]["items"]
    step_types = set(steps_schema["discriminator"]["mapping"])

    assert step_types  # the schema really lists the kinds, so the comparison below means something
    assert step_types == set(HANDLERS)
