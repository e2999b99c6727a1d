"""Branching steps walked by the interpreter: conditions, waits for events, splits, and the steps that act."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.errors import DefinitionError
from engine.journeys.definition import JourneyDefinition, parse_definition
from engine.journeys.interpreter import (
    Branched,
    Completed,
    PlannedSend,
    PlannedUpdate,
    PlannedWebhook,
    Waiting,
    advance,
)
from engine.journeys.steps.decisions import UpdateContact
from engine.segments.conditions import Facts

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def journey(*steps: dict[str, Any]) -> JourneyDefinition:
    return parse_definition({"trigger": {"event": "cart_updated", "key": "cart_id"}, "steps": list(steps)})


def errors_of(*steps: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        journey(*steps)
    return caught.value.errors


def send(step_id: str, template: str = "abandoned_cart") -> dict[str, Any]:
    return {"type": "send", "id": step_id, "channel": "email", "template": template}


def wait(step_id: str, **duration: int) -> dict[str, Any]:
    return {"type": "wait", "id": step_id, **duration}


def condition(step_id: str, data: dict[str, Any], yes: list[dict[str, Any]] | None = None,
              no: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "condition", "id": step_id, "condition": data, "yes": yes or [], "no": no or []}


def wait_for_event(step_id: str, event: str, hours: int, yes: list[dict[str, Any]] | None = None,
                   no: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "wait_for_event", "id": step_id, "event": event, "timeout": {"hours": hours},
            "yes": yes or [], "no": no or []}


def split(step_id: str, *arms: dict[str, Any]) -> dict[str, Any]:
    return {"type": "split", "id": step_id, "arms": list(arms)}


def arm(name: str, weight: int, *steps: dict[str, Any], holdout: bool = False) -> dict[str, Any]:
    return {"name": name, "weight": weight, "holdout": holdout, "steps": list(steps)}


def contact(**attributes: Any) -> Callable[[], Facts]:
    return lambda: Facts(attributes, {}, {}, lambda event, since: 0, T0)


VIP = {"attribute": "vip", "value": True}


def vip_journey(no: list[dict[str, Any]] | None = None) -> JourneyDefinition:
    return journey(condition("is-vip", VIP, yes=[send("vip-offer", "vip_offer")],
                             no=[send("standard-offer", "standard_offer")] if no is None else no))


def arm_of(definition: JourneyDefinition, run_id: int, step_id: str = "subject-test") -> str:
    [branched] = [e for e in advance(definition, step_id, T0, now=T0, run_id=run_id).effects
                  if isinstance(e, Branched)]
    return branched.label


# condition


def test_a_condition_that_holds_takes_yes_and_walks_into_its_steps() -> None:
    """For a VIP the yes branch's send is planned, after a Branched effect saying why, and the run completes."""
    outcome = advance(vip_journey(), "is-vip", T0, now=T0, facts=contact(vip=True))

    assert outcome.effects == [Branched("is-vip", "yes", "vip eq True: true"),
                               PlannedSend("vip-offer", "email", "vip_offer")]
    assert outcome.passed == ["is-vip", "vip-offer"]
    assert outcome.stop == Completed()


def test_a_condition_that_fails_takes_no_and_names_the_condition_in_its_reason() -> None:
    """A contact who is not a VIP gets the no branch's send, and the reason reads "vip eq True: false"."""
    outcome = advance(vip_journey(), "is-vip", T0, now=T0, facts=contact(vip=False))

    assert outcome.effects == [Branched("is-vip", "no", "vip eq True: false"),
                               PlannedSend("standard-offer", "email", "standard_offer")]


def test_an_empty_branch_completes_the_run_without_doing_anything() -> None:
    """A contact taking the empty no branch ends the run with only the Branched effect recorded."""
    outcome = advance(vip_journey(no=[]), "is-vip", T0, now=T0, facts=contact())

    assert outcome.effects == [Branched("is-vip", "no", "vip eq True: false")]
    assert outcome.stop == Completed()


def test_a_branch_that_starts_with_a_wait_leaves_the_run_waiting_inside_the_branch() -> None:
    """The yes branch's one-day wait is entered at the branch: the run waits at it until a day later."""
    definition = journey(condition("is-vip", VIP, yes=[wait("a-day", days=1), send("vip-offer", "vip_offer")]))

    outcome = advance(definition, "is-vip", T0, now=T0, facts=contact(vip=True))

    assert outcome.stop == Waiting("a-day", T0, T0 + timedelta(days=1))
    assert outcome.sends == []


def test_a_condition_after_a_late_wait_starts_its_branch_at_the_wait_due_time() -> None:
    """Walked five minutes late, wait 1 h → condition → wait 1 h ends two hours after entry, not 2 h 05."""
    definition = journey(wait("first", hours=1), condition("is-vip", VIP, yes=[wait("second", hours=1)]))

    outcome = advance(definition, "first", T0, now=T0 + timedelta(hours=1, minutes=5), facts=contact(vip=True))

    assert outcome.stop == Waiting("second", T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_a_walk_that_reaches_no_condition_never_gathers_facts() -> None:
    """Facts cost queries: a walk through waits and sends alone never calls for them."""
    def forbidden() -> Facts:
        raise AssertionError("facts were gathered")

    outcome = advance(journey(wait("w", hours=1), send("s")), "w", T0, now=T0 + timedelta(hours=1), facts=forbidden)

    assert outcome.stop == Completed()


# wait_for_event


ORDER_WAIT = wait_for_event("await-order", "order_placed", hours=24,
                            yes=[send("thanks", "thank_you")], no=[send("reminder", "abandoned_cart")])


def test_wait_for_event_waits_until_the_timeout_while_nothing_arrives() -> None:
    """Before the 24 h timeout and with no event received, the run waits until entry + 24 h with no effects."""
    outcome = advance(journey(ORDER_WAIT), "await-order", T0, now=T0 + timedelta(hours=23, minutes=59))

    assert outcome.stop == Waiting("await-order", T0, T0 + timedelta(hours=24))
    assert outcome.effects == []


def test_wait_for_event_takes_no_at_the_timeout() -> None:
    """At exactly 24 h without the event, the no branch is taken and its reminder planned."""
    outcome = advance(journey(ORDER_WAIT), "await-order", T0, now=T0 + timedelta(hours=24))

    assert outcome.effects == [Branched("await-order", "no", "no order_placed before the timeout"),
                               PlannedSend("reminder", "email", "abandoned_cart")]


def test_wait_for_event_takes_yes_as_soon_as_the_event_is_recorded_for_this_step() -> None:
    """With state["received"]["await-order"] set, yes is taken before the timeout and the reason names the event."""
    state = {"received": {"await-order": "evt-9"}}

    outcome = advance(journey(ORDER_WAIT), "await-order", T0, now=T0 + timedelta(hours=2), state=state)

    assert outcome.effects == [Branched("await-order", "yes", "order_placed received (evt-9)"),
                               PlannedSend("thanks", "email", "thank_you")]
    assert outcome.state == state


def test_an_event_received_for_another_step_does_not_wake_this_one() -> None:
    """A record under a different step id leaves this wait waiting for its own event."""
    state = {"received": {"earlier-wait": "evt-1"}}

    outcome = advance(journey(ORDER_WAIT), "await-order", T0, now=T0 + timedelta(hours=2), state=state)

    assert outcome.stop == Waiting("await-order", T0, T0 + timedelta(hours=24))


def test_a_timeout_walked_late_starts_the_no_branch_at_the_deadline() -> None:
    """The no branch's one-hour wait, walked ten minutes after the timeout, ends an hour after the timeout."""
    definition = journey(wait_for_event("await-order", "order_placed", hours=24, no=[wait("grace", hours=1)]))
    deadline = T0 + timedelta(hours=24)

    outcome = advance(definition, "await-order", T0, now=deadline + timedelta(minutes=10))

    assert outcome.stop == Waiting("grace", deadline, deadline + timedelta(hours=1))


# split


SUBJECT_TEST = journey(
    send("welcome", "welcome"),
    split("subject-test", arm("a", 50, send("mail-a", "subject_a")), arm("b", 50, send("mail-b", "subject_b"))),
)


def test_a_split_puts_the_same_run_in_the_same_arm_every_time() -> None:
    """The arm is a function of (run id, step id): walking each of 200 runs twice lands it in the same arm."""
    first = [arm_of(SUBJECT_TEST, run_id) for run_id in range(200)]
    second = [arm_of(SUBJECT_TEST, run_id) for run_id in range(200)]

    assert first == second
    assert set(first) == {"a", "b"}


def test_two_splits_with_different_ids_assign_arms_independently() -> None:
    """The same runs through a split with another id do not land in the same arms: the step id is in the hash."""
    renamed = journey(split("other-test", arm("a", 50, send("mail-a")), arm("b", 50, send("mail-b"))))

    ours = [arm_of(SUBJECT_TEST, run_id) for run_id in range(200)]
    theirs = [arm_of(renamed, run_id, "other-test") for run_id in range(200)]

    assert ours != theirs


def test_an_80_20_split_sends_close_to_80_percent_of_runs_to_the_first_arm() -> None:
    """Over 10,000 run ids an 80/20 split gives the first arm 80 % within ±2 percentage points."""
    definition = journey(split("subject-test", arm("a", 80, send("mail-a")), arm("b", 20, send("mail-b"))))

    counts = Counter(arm_of(definition, run_id) for run_id in range(1, 10_001))

    assert abs(counts["a"] / 10_000 - 0.80) <= 0.02
    assert counts["a"] + counts["b"] == 10_000


@pytest.mark.parametrize("weights", [(0, 5, 0), (5, 0, 0), (0, 0, 5)], ids=["middle", "first", "last"])
def test_a_zero_weight_arm_is_never_chosen(weights: tuple[int, int, int]) -> None:
    """Whichever position the one weighted arm has, 2,000 runs all land in it and none in a zero-weight arm."""
    named = list(zip(("x", "y", "z"), weights, strict=True))
    definition = journey(split("subject-test", *(arm(name, weight, send(f"mail-{name}")) for name, weight in named)))
    [weighted] = [name for name, weight in named if weight]

    assert {arm_of(definition, run_id) for run_id in range(2_000)} == {weighted}


def test_a_holdout_arm_completes_the_run_without_sending_anything() -> None:
    """Runs in the holdout arm end at once with no send; the reason says the arm receives nothing."""
    definition = journey(split("promo", arm("control", 50, holdout=True), arm("promo-mail", 50, send("mail"))))
    outcomes = [advance(definition, "promo", T0, now=T0, run_id=run_id) for run_id in range(100)]
    held_out = [o for o in outcomes if not any(isinstance(e, Branched) and e.label == "promo-mail" for e in o.effects)]

    assert 0 < len(held_out) < 100
    for outcome in held_out:
        assert outcome.effects == [Branched("promo", "control", "arm control (50/100) holdout: receives nothing",
                                            "promo:control")]
        assert outcome.sends == []
        assert outcome.stop == Completed()


def test_sends_after_a_split_carry_the_split_and_arm_but_sends_before_it_do_not() -> None:
    """The welcome before the split has no arm; the arm's send is tagged "subject-test:<arm>", as is the state."""
    outcome = advance(SUBJECT_TEST, "welcome", T0, now=T0, run_id=7)
    label = arm_of(SUBJECT_TEST, 7)

    assert outcome.sends == [PlannedSend("welcome", "email", "welcome"),
                             PlannedSend(f"mail-{label}", "email", f"subject_{label}", arm=f"subject-test:{label}")]
    assert outcome.state == {"arm": f"subject-test:{label}"}
    assert Branched("subject-test", label, f"arm {label} (50/100)", f"subject-test:{label}") in outcome.effects


def test_the_arm_is_kept_across_a_wait_through_the_run_state() -> None:
    """A later walk, given the state saved at the split, still tags the arm's sends with it."""
    definition = journey(split("subject-test", arm("a", 1, wait("pause", hours=1), send("mail-a")),
                               arm("b", 1, send("mail-b"))))

    outcome = advance(definition, "pause", T0, now=T0 + timedelta(hours=1), state={"arm": "subject-test:a"})

    assert outcome.sends == [PlannedSend("mail-a", "email", "abandoned_cart", arm="subject-test:a")]


# steps that act


def test_an_update_contact_step_plans_the_change_and_the_walk_goes_on() -> None:
    """update_contact yields a PlannedUpdate with its set/unset/tags, then the next send is planned."""
    definition = journey(
        {"type": "update_contact", "id": "mark", "set": {"stage": "nurtured"}, "unset": ["coupon"],
         "add_tags": ["engaged"], "remove_tags": ["cold"]},
        send("next"),
    )

    outcome = advance(definition, "mark", T0, now=T0)

    assert outcome.effects == [
        PlannedUpdate("mark", UpdateContact({"stage": "nurtured"}, ["coupon"], ["engaged"], ["cold"])),
        PlannedSend("next", "email", "abandoned_cart"),
    ]
    assert outcome.stop == Completed()


def test_a_webhook_step_plans_the_call_and_the_walk_goes_on() -> None:
    """webhook yields a PlannedWebhook with its URL and payload, then the walk continues to the wait after it."""
    definition = journey(
        {"type": "webhook", "id": "notify", "url": "https://shop.example/hooks/rapport", "payload": {"tag": "vip"}},
        wait("after", hours=1),
    )

    outcome = advance(definition, "notify", T0, now=T0)

    assert outcome.effects == [PlannedWebhook("notify", "https://shop.example/hooks/rapport", {"tag": "vip"})]
    assert outcome.stop == Waiting("after", T0, T0 + timedelta(hours=1))


# validation


def test_a_branching_step_followed_by_another_step_is_rejected_naming_its_place() -> None:
    """A condition with a send after it is refused: its path and id are named and the fix suggested."""
    [error] = errors_of(condition("is-vip", VIP), send("after"))

    assert "steps.0 (is-vip)" in error["message"]
    assert "must be the last of its sequence" in error["message"]


def test_a_branching_step_not_last_inside_a_branch_is_rejected_with_its_nested_path() -> None:
    """A split followed by a send inside a yes branch is refused at steps.0.yes.0 (the split's id)."""
    nested = split("subject-test", arm("a", 1), arm("b", 1))

    [error] = errors_of(condition("is-vip", VIP, yes=[nested, send("after")]))

    assert "steps.0.yes.0 (subject-test)" in error["message"]


@pytest.mark.parametrize(
    "steps",
    [[condition("is-vip", VIP, yes=[send("offer")], no=[send("offer")])],
     [send("offer"), wait_for_event("await-order", "order_placed", hours=1, no=[send("offer")])],
     [split("subject-test", arm("a", 1, wait("pause", hours=1)), arm("b", 1, wait("pause", hours=2)))]],
    ids=["yes-and-no", "top-level-and-branch", "two-arms"],
)
def test_a_step_id_used_twice_anywhere_in_the_tree_is_rejected(steps: list[dict[str, Any]]) -> None:
    """Ids are unique across branches too (runs record where they are by id); the message names the id."""
    [error] = errors_of(*steps)

    assert "is used twice" in error["message"]
    assert "'offer'" in error["message"] or "'pause'" in error["message"]


def test_a_holdout_arm_with_steps_is_rejected_at_that_arm() -> None:
    """A holdout receives nothing, so steps in it are refused at steps.0.split.arms.0."""
    [error] = errors_of(split("promo", arm("control", 1, send("mail"), holdout=True), arm("promo-mail", 1)))

    assert error["field"] == "steps.0.split.arms.0"
    assert "holdout" in error["message"]


def test_a_split_whose_weights_are_all_zero_is_rejected() -> None:
    """With every weight 0 no arm could be chosen; the split at steps.0.split says one needs a weight above 0."""
    [error] = errors_of(split("subject-test", arm("a", 0), arm("b", 0)))

    assert error["field"] == "steps.0.split"
    assert "weight above 0" in error["message"]


def test_a_split_with_two_arms_of_the_same_name_is_rejected() -> None:
    """Arm names label sends and reports, so a repeated name is refused at steps.0.split."""
    [error] = errors_of(split("subject-test", arm("a", 1), arm("a", 1)))

    assert error["field"] == "steps.0.split"
    assert "arm names must be unique" in error["message"]


def test_a_split_needs_at_least_two_arms() -> None:
    """A single arm is no split: it is refused at steps.0.split.arms."""
    [error] = errors_of(split("subject-test", arm("a", 1)))

    assert error["field"] == "steps.0.split.arms"


# the step index


NESTED = journey(
    send("welcome", "welcome"),
    condition("is-vip", VIP,
              yes=[wait("pause", hours=1), send("vip-offer")],
              no=[split("subject-test",
                        arm("a", 1, wait_for_event("await-order", "order_placed", hours=24,
                                                   no=[send("reminder"), send("last-call")])),
                        arm("b", 1, holdout=True))]),
)


def test_the_step_index_finds_steps_at_any_depth() -> None:
    """Every step, however deeply nested in branches and arms, is found by its id."""
    ids = ["welcome", "is-vip", "pause", "vip-offer", "subject-test", "await-order", "reminder", "last-call"]

    assert sorted(step.id for step in NESTED.all_steps()) == sorted(ids)
    assert all(NESTED.has_step(step_id) for step_id in ids)
    assert NESTED.step("last-call").type == "send"
    assert not NESTED.has_step("b")  # an arm's name is not a step


@pytest.mark.parametrize(
    ("step_id", "following"),
    [("welcome", "is-vip"), ("pause", "vip-offer"), ("reminder", "last-call"),
     ("is-vip", None), ("vip-offer", None), ("subject-test", None), ("await-order", None), ("last-call", None)],
)
def test_next_step_id_follows_the_sequence_a_step_is_in_and_ends_with_its_branch(step_id: str,
                                                                                 following: str | None) -> None:
    """Inside a branch the next step is the branch's next one; at a branch's end (or after a branching step) None."""
    assert NESTED.next_step_id(step_id) == following
