"""The builder's draft: every change a revision, stale changes refused, undo and redo, invalid drafts kept."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import DefinitionError, NotFound, StaleDraft
from engine.journeys import drafts
from engine.journeys.lifecycle import change_status
from engine.journeys.versions import JourneyStateError, create_journey
from engine.store.models import JourneyVersion
from engine.workspaces.accounts import create_workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop


def cart(hours: int) -> dict[str, Any]:
    return {"trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [{"type": "wait", "id": "w", "hours": hours},
                      {"type": "send", "id": "s", "channel": "email", "template": "abandoned_cart"}]}


@pytest.fixture
def journey_id(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock) -> int:
    with sessions.begin() as session:
        return create_journey(session, shop.id, "Cart", cart(1), templates=SEED_TEMPLATES, now=clock(),
                              publish=False).id


def save(sessions: sessionmaker[Session], shop: Shop, journey_id: int, definition: Any, base: int,
         clock: FakeClock) -> drafts.Draft:
    with sessions.begin() as session:
        return drafts.save_draft(session, shop.id, journey_id, definition, base_revision=base,
                                 templates=SEED_TEMPLATES, now=clock())


def move(sessions: sessionmaker[Session], shop: Shop, journey_id: int, base: int, clock: FakeClock, *,
         redo: bool = False) -> drafts.Draft:
    with sessions.begin() as session:
        step = drafts.redo if redo else drafts.undo
        return step(session, shop.id, journey_id, base_revision=base, templates=SEED_TEMPLATES, now=clock())


def load(sessions: sessionmaker[Session], shop: Shop, journey_id: int) -> drafts.Draft:
    with sessions() as session:
        return drafts.load_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES)


def test_a_new_journey_s_draft_is_revision_1_with_no_problems(sessions, shop, journey_id) -> None:
    """Creating a journey saves its draft as revision 1, ready to publish, with nothing to undo."""
    draft = load(sessions, shop, journey_id)

    assert (draft.revision, draft.problems, draft.can_undo, draft.can_redo) == (1, [], False, False)
    assert draft.definition == cart(1)


def test_the_second_of_two_clients_on_the_same_revision_is_refused_and_the_first_s_change_is_kept(
    sessions, shop, journey_id, clock
) -> None:
    """Both saw revision 1: the first save makes revision 2, the second gets StaleDraft naming 2 and writes nothing."""
    first = save(sessions, shop, journey_id, cart(2), 1, clock)
    with pytest.raises(StaleDraft) as refused:
        save(sessions, shop, journey_id, cart(3), 1, clock)

    assert first.revision == 2 and refused.value.current_revision == 2
    assert load(sessions, shop, journey_id).definition == cart(2)
    with sessions() as session:
        _journey, rows = drafts.history(session, shop.id, journey_id)
    assert [(row.revision, row.definition) for row in rows] == [(2, cart(2)), (1, cart(1))]
    assert save(sessions, shop, journey_id, cart(3), 2, clock).revision == 3  # reloaded, it goes through


def test_two_saves_racing_on_the_database_make_one_revision_and_one_refusal(
    sessions, shop, journey_id, clock
) -> None:
    """A save waiting on another's open transaction finds the draft moved on when that one commits: StaleDraft."""
    outcome: list[Any] = []

    def second_client() -> None:
        try:
            outcome.append(save(sessions, shop, journey_id, cart(3), 1, clock).revision)
        except StaleDraft as exc:
            outcome.append(exc)

    with sessions.begin() as session:
        drafts.save_draft(session, shop.id, journey_id, cart(2), base_revision=1, templates=SEED_TEMPLATES,
                          now=clock())
        racer = threading.Thread(target=second_client)
        racer.start()
        time.sleep(0.3)  # the racer now waits on this transaction's write (row lock, or SQLite's write lock)
    racer.join(30)

    [refusal] = outcome
    assert isinstance(refusal, StaleDraft) and refusal.current_revision == 2
    assert load(sessions, shop, journey_id).definition == cart(2)


def test_an_invalid_draft_is_saved_and_its_problems_name_the_path_and_the_step(
    sessions, shop, journey_id, clock
) -> None:
    """A half-built draft is kept as written; problems say what is wrong, by field path and step id."""
    broken = {"trigger": {"event": "cart_updated"},
              "steps": [{"type": "condition", "id": "vip", "condition": {"attribute": "vip", "value": True},
                         "yes": [{"type": "wait", "id": "pause", "hours": -1}]}]}

    draft = save(sessions, shop, journey_id, broken, 1, clock)

    assert draft.revision == 2 and draft.definition == broken
    assert [(p["field"], p.get("step_id")) for p in draft.problems] == [("steps.0.condition.yes.0.wait.hours",
                                                                         "pause")]


def test_a_missing_template_is_a_problem_of_its_step(sessions, shop, journey_id, clock) -> None:
    """The template check publishing runs is among the problems, linked to the send step."""
    draft = save(sessions, shop, journey_id, {**cart(1), "steps": [
        {"type": "send", "id": "nudge", "channel": "email", "template": "no_such_template"}]}, 1, clock)

    assert draft.problems == [{"field": "steps[id=nudge].template", "message": "no template named 'no_such_template'",
                               "step_id": "nudge"}]


def test_an_invalid_draft_cannot_be_published_and_publishing_lists_its_problems(
    sessions, shop, journey_id, clock
) -> None:
    """Publishing refuses the draft with every problem and makes no version; fixed, it publishes."""
    save(sessions, shop, journey_id, {"trigger": {"event": "cart_updated"}, "steps": []}, 1, clock)
    with pytest.raises(DefinitionError) as refused, sessions.begin() as session:
        drafts.publish_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES, now=clock())

    assert [e["field"] for e in refused.value.errors] == ["steps"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(JourneyVersion)
                              .where(JourneyVersion.journey_id == journey_id)) == 0
    save(sessions, shop, journey_id, cart(4), 2, clock)
    with sessions.begin() as session:
        version = drafts.publish_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES, now=clock(),
                                       base_revision=3)
        assert (version.version, version.draft_revision) == (1, 3)


def test_publishing_a_draft_changed_since_it_was_reviewed_is_refused(sessions, shop, journey_id, clock) -> None:
    """With base_revision, publishing what someone else has changed since is a StaleDraft, not a surprise."""
    save(sessions, shop, journey_id, cart(2), 1, clock)
    with pytest.raises(StaleDraft) as refused, sessions.begin() as session:
        drafts.publish_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES, now=clock(), base_revision=1)

    assert refused.value.current_revision == 2


def test_undo_and_redo_walk_the_history_and_each_is_a_revision_of_its_own(sessions, shop, journey_id, clock) -> None:
    """Two edits undone and redone come back in order; every step is a new revision; the ends say so."""
    save(sessions, shop, journey_id, cart(2), 1, clock)
    save(sessions, shop, journey_id, cart(3), 2, clock)

    undone = move(sessions, shop, journey_id, 3, clock)
    first = move(sessions, shop, journey_id, 4, clock)
    redone = move(sessions, shop, journey_id, 5, clock, redo=True)
    last = move(sessions, shop, journey_id, 6, clock, redo=True)

    assert [(d.revision, d.definition) for d in (undone, first, redone, last)] == [
        (4, cart(2)), (5, cart(1)), (6, cart(2)), (7, cart(3))]
    assert (first.can_undo, first.can_redo, last.can_undo, last.can_redo) == (False, True, True, False)
    with pytest.raises(JourneyStateError, match="nothing to redo"):
        move(sessions, shop, journey_id, 7, clock, redo=True)


def test_an_edit_after_an_undo_is_what_redo_reaches_from_there(sessions, shop, journey_id, clock) -> None:
    """Undo, then a new edit: redo has nothing left; undo then redo returns to the new edit, not the undone one."""
    save(sessions, shop, journey_id, cart(2), 1, clock)
    move(sessions, shop, journey_id, 2, clock)  # back to cart(1), revision 3
    edited = save(sessions, shop, journey_id, cart(5), 3, clock)
    assert edited.can_redo is False
    move(sessions, shop, journey_id, 4, clock)

    assert move(sessions, shop, journey_id, 5, clock, redo=True).definition == cart(5)


def test_an_undo_from_a_stale_revision_is_refused(sessions, shop, journey_id, clock) -> None:
    """An undo is a change like any other: one based on an old revision cannot undo someone else's edit."""
    save(sessions, shop, journey_id, cart(2), 1, clock)
    with pytest.raises(StaleDraft):
        move(sessions, shop, journey_id, 1, clock)

    assert load(sessions, shop, journey_id).definition == cart(2)


def test_saving_the_same_content_again_makes_no_revision(sessions, shop, journey_id, clock) -> None:
    """A save that changes nothing keeps the revision (history holds changes only)."""
    assert save(sessions, shop, journey_id, cart(1), 1, clock).revision == 1


def test_a_draft_is_a_json_object(sessions, shop, journey_id, clock) -> None:
    """An incomplete draft is fine; a list or a string is not a draft at all."""
    with pytest.raises(DefinitionError) as refused:
        save(sessions, shop, journey_id, ["steps"], 1, clock)

    assert refused.value.errors[0]["field"] == "definition"


def test_an_archived_journey_s_draft_cannot_be_changed(sessions, shop, journey_id, clock) -> None:
    """Archived is for good: saving, undoing and redoing are refused."""
    with sessions.begin() as session:
        change_status(session, shop.id, journey_id, "archive", now=clock())
    with pytest.raises(JourneyStateError):
        save(sessions, shop, journey_id, cart(2), 1, clock)


def test_another_workspace_s_draft_is_not_found(sessions, shop, journey_id, clock) -> None:
    """A journey id of another workspace names nothing: no reading, no saving."""
    with sessions.begin() as session:
        other = create_workspace(session, "Other", now=clock()).workspace_id
    with pytest.raises(NotFound), sessions.begin() as session:
        drafts.save_draft(session, other, journey_id, cart(2), base_revision=1, templates=SEED_TEMPLATES,
                          now=clock())

    assert load(sessions, shop, journey_id).definition == cart(1)
