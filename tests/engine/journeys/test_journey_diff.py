"""The publish preview's diff: steps added, removed, changed (with the fields) and moved, by step id."""

from __future__ import annotations

from typing import Any

from engine.journeys.definition import parse_definition
from engine.journeys.diff import diff_definitions
from engine.journeys.versions import definition_json

TRIGGER = {"event": "cart_updated", "key": "cart_id"}
VIP = {"attribute": "vip", "value": True}


def journey(*steps: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"trigger": TRIGGER, **settings, "steps": list(steps)}


def wait(step_id: str, hours: int = 1) -> dict[str, Any]:
    return {"type": "wait", "id": step_id, "hours": hours}


def exit_(step_id: str) -> dict[str, Any]:
    return {"type": "exit", "id": step_id}


def test_added_removed_changed_and_moved_steps_are_told_apart() -> None:
    """A new step is added, a deleted one removed, an edited one changed with its field, one moved branches."""
    old = journey(wait("w", 1), {"type": "condition", "id": "vip", "condition": VIP,
                                 "yes": [{"type": "send", "id": "s", "template": "abandoned_cart"}],
                                 "no": [{"type": "webhook", "id": "hook", "url": "https://x.example"}, exit_("e")]})
    new = journey(wait("w", 2), {"type": "send", "id": "n", "template": "abandoned_cart"},
                  {"type": "condition", "id": "vip", "condition": VIP,
                   "yes": [{"type": "send", "id": "s", "template": "abandoned_cart"}, exit_("e")], "no": []})

    diff = diff_definitions(old, new)

    assert diff["added"] == [{"step_id": "n", "type": "send", "path": "steps.1"}]
    assert diff["removed"] == [{"step_id": "hook", "type": "webhook", "path": "steps.1.no.0"}]
    assert diff["changed"] == [{"step_id": "w", "type": "wait", "path": "steps.0",
                                "fields": [{"field": "hours", "from": 1, "to": 2}]}]
    assert diff["moved"] == [{"step_id": "e", "type": "exit", "from": "steps.1.no.1", "to": "steps.2.yes.1"}]
    assert diff["settings"] == []


def test_a_step_put_first_is_the_one_that_moved() -> None:
    """d moved to the front: a, b and c kept their order and did not move, though their positions changed."""
    diff = diff_definitions(journey(wait("a"), wait("b"), wait("c"), exit_("d")),
                            journey(exit_("d"), wait("a"), wait("b"), wait("c")))

    assert [m["step_id"] for m in diff["moved"]] == ["d"]
    assert diff["added"] == diff["removed"] == diff["changed"] == []


def test_inserting_a_step_moves_nothing() -> None:
    """Steps after an insertion shift down; that is not a move."""
    diff = diff_definitions(journey(wait("a"), exit_("b")), journey(wait("new"), wait("a"), exit_("b")))

    assert diff["moved"] == [] and [a["step_id"] for a in diff["added"]] == ["new"]


def test_split_arms_are_compared_without_their_steps_and_their_steps_by_id() -> None:
    """A weight change is the split's change; a step changed inside an arm is that step's change only."""
    def split(weight: int, hours: int) -> dict[str, Any]:
        return {"type": "split", "id": "ab", "arms": [
            {"name": "a", "weight": weight, "steps": [wait("in-a", hours)]}, {"name": "b", "weight": 1}]}

    diff = diff_definitions(journey(split(1, 1)), journey(split(3, 5)))

    assert [(c["step_id"], [f["field"] for f in c["fields"]]) for c in diff["changed"]] == [
        ("ab", ["arms"]), ("in-a", ["hours"])]
    assert diff["changed"][1]["path"] == "steps.0.arms.0.steps.0"


def test_defaults_spelled_out_in_a_version_are_no_change_against_the_draft_that_left_them_out() -> None:
    """A published version stores every default; the draft it came from differs in nothing."""
    draft = journey({"type": "wait_for_event", "id": "order", "event": "order_placed", "timeout": {"hours": 1},
                     "yes": [exit_("bought")], "no": [{"type": "send", "id": "s", "template": "abandoned_cart"}]})

    diff = diff_definitions(definition_json(parse_definition(draft)), draft)

    assert diff == {"added": [], "removed": [], "changed": [], "moved": [], "settings": []}


def test_journey_wide_settings_that_changed_are_listed_with_both_values() -> None:
    """A new entry event and a goal added are settings changes; an unchanged reentry is not listed."""
    diff = diff_definitions(journey(exit_("e")),
                            {**journey(exit_("e"), goals=[{"event": "order_placed"}]),
                             "trigger": {"event": "checkout_started", "key": "cart_id"}})

    assert [s["field"] for s in diff["settings"]] == ["trigger", "goals"]
    assert diff["settings"][1]["to"] == [{"event": "order_placed", "name": None}]


def test_a_draft_that_does_not_validate_is_still_compared() -> None:
    """A negative wait is reported as written; a step with no id cannot be followed and is left out."""
    diff = diff_definitions(journey(wait("w", 1)), journey(wait("w", -1), {"type": "exit"}))

    assert diff["changed"] == [{"step_id": "w", "type": "wait", "path": "steps.0",
                                "fields": [{"field": "hours", "from": 1, "to": -1}]}]
    assert diff["added"] == []


def test_nothing_at_all_on_one_side_makes_every_step_added() -> None:
    """A journey never published: against no live version, every step of the draft is new."""
    diff = diff_definitions(None, journey(wait("w"), exit_("e")))

    assert [a["step_id"] for a in diff["added"]] == ["w", "e"]
