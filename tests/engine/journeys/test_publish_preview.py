"""Before publishing: who is still in flight on each version and step, and the diff between named definitions."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.errors import DefinitionError, NotFound
from engine.journeys import drafts, preview
from engine.journeys.versions import create_journey
from engine.workspaces.accounts import create_workspace
from tests.conftest import SEED_TEMPLATES, FakeClock, Shop, SmtpServer, drain
from workers.runtime import Runtime
from workers.scheduler import run_once

EVENT_NUMBERS = itertools.count(1)


def cart(wait_id: str, hours: int) -> dict[str, Any]:
    return {"trigger": {"event": "cart_updated", "key": "cart_id"},
            "steps": [{"type": "wait", "id": wait_id, "hours": hours},
                      {"type": "send", "id": "s", "channel": "email", "template": "abandoned_cart"}]}


def carts(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, *customers: str) -> None:
    with sessions.begin() as session:
        ingest_events(session, shop.id, [{
            "id": f"evt-{next(EVENT_NUMBERS)}", "type": "cart_updated", "occurred_at": clock().isoformat(),
            "contact": {"external_id": customer, "email": f"{customer}@example.com"},
            "properties": {"cart_id": f"cart-{customer}", "items": [],
                           "recovery_url": "https://shop.example/cart"}} for customer in customers], now=clock())


def publish(sessions: sessionmaker[Session], shop: Shop, journey_id: int, definition: Any, clock: FakeClock) -> None:
    with sessions.begin() as session:
        base = drafts.load_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES).revision
        drafts.save_draft(session, shop.id, journey_id, definition, base_revision=base, templates=SEED_TEMPLATES,
                          now=clock())
        drafts.publish_draft(session, shop.id, journey_id, templates=SEED_TEMPLATES, now=clock())


def test_runs_in_flight_are_counted_per_version_and_step_until_they_finish(
    runtime: Runtime, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, smtp_server: SmtpServer
) -> None:
    """Three wait on v1 and two on v2 (live); once v1's wait is over and its emails sent, only v2's are left."""
    with sessions.begin() as session:
        journey_id = create_journey(session, shop.id, "Cart", cart("w", 1), templates=SEED_TEMPLATES,
                                    now=clock()).id
    carts(sessions, shop, clock, "a", "b", "c")
    drain(runtime)
    publish(sessions, shop, journey_id, cart("w-day", 24), clock)
    carts(sessions, shop, clock, "d", "e")
    drain(runtime)

    with sessions() as session:
        counts = preview.runs_in_flight(session, shop.id, journey_id)
    assert counts == {"journey_id": journey_id, "live_version": 2, "runs": 5, "versions": [
        {"version": 1, "live": False, "runs": 3, "steps": {"w": 3}},
        {"version": 2, "live": True, "runs": 2, "steps": {"w-day": 2}}]}

    clock.advance(hours=1, seconds=1)
    run_once(runtime)
    drain(runtime)
    with sessions() as session:
        later = preview.runs_in_flight(session, shop.id, journey_id)
    assert [(v["version"], v["runs"]) for v in later["versions"]] == [(2, 2)]


def test_the_diff_names_its_sides_by_version_revision_or_draft(
    sessions: sessionmaker[Session], shop: Shop, clock: FakeClock
) -> None:
    """live against draft by default; v1 against v2 too; an unknown version is not found, a bad name refused."""
    with sessions.begin() as session:
        journey_id = create_journey(session, shop.id, "Cart", cart("w", 1), templates=SEED_TEMPLATES,
                                    now=clock()).id
    publish(sessions, shop, journey_id, cart("w", 2), clock)
    with sessions.begin() as session:
        drafts.save_draft(session, shop.id, journey_id, cart("w2", 2), base_revision=2, templates=SEED_TEMPLATES,
                          now=clock())

    with sessions() as session:
        pending = preview.diff_refs(session, shop.id, journey_id)
        between = preview.diff_refs(session, shop.id, journey_id, old="v1", new="2")
        revisions = preview.diff_refs(session, shop.id, journey_id, old="r1", new="r3")
        with pytest.raises(NotFound):
            preview.diff_refs(session, shop.id, journey_id, old="v9")
        with pytest.raises(DefinitionError) as refused:
            preview.diff_refs(session, shop.id, journey_id, old="yesterday")

    assert (pending["from"], pending["to"]) == ({"ref": "live", "version": 2, "revision": 2},
                                                {"ref": "draft", "version": None, "revision": 3})
    assert ([a["step_id"] for a in pending["added"]], [r["step_id"] for r in pending["removed"]]) == (["w2"], ["w"])
    assert [c["fields"] for c in between["changed"]] == [[{"field": "hours", "from": 1, "to": 2}]]
    assert [a["step_id"] for a in revisions["added"]] == ["w2"]
    assert refused.value.errors == [{"field": "from", "message": f"expected {preview.REF_HELP}"}]


def test_a_journey_of_another_workspace_has_no_preview(sessions: sessionmaker[Session], shop: Shop,
                                                       clock: FakeClock) -> None:
    """Counts and diffs are asked by workspace: another workspace's journey id is not found."""
    with sessions.begin() as session:
        journey_id = create_journey(session, shop.id, "Cart", cart("w", 1), templates=SEED_TEMPLATES,
                                    now=clock()).id
        other = create_workspace(session, "Other", now=clock()).workspace_id
    with sessions() as session, pytest.raises(NotFound):
        preview.runs_in_flight(session, other, journey_id)
