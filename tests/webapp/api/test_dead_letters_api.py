"""GET /api/v1/dead-letters: a workspace sees its own set-aside items, paged, and nobody else's."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.batches import dead_letters
from engine.contacts.ingest import ingest_events
from engine.store.db import JobName
from tests.conftest import FakeClock, Shop
from tests.webapp.conftest import auth_headers
from tests.webapp.ops.test_metrics import scrape


def poisoned_events(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, count: int) -> list[int]:
    """`count` events, each of which has failed its evaluation three times (set aside)."""
    payloads = [{"id": f"e-{n}", "type": "cart_updated", "contact": {"external_id": f"c-{n}"}} for n in range(count)]
    with sessions.begin() as session:
        ids = [r.id for r in ingest_events(session, shop.id, payloads, now=clock())]
    for attempt in range(dead_letters.MAX_FAILURES):
        with sessions.begin() as session:
            for event_id in ids:
                dead_letters.record_failure(session, JobName.EVALUATE_EVENTS, event_id,
                                            OverflowError("int too large to convert to float"),
                                            now=clock() + timedelta(minutes=attempt))
    return ids


def test_the_api_lists_a_workspaces_dead_letters_with_their_reason(client, sessions, shop, second_shop,
                                                                    clock) -> None:
    """Each letter says what failed, why, how often and when; another workspace's key sees none of them."""
    [event_id] = poisoned_events(sessions, shop, clock, 1)
    response = client.get("/api/v1/dead-letters", headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    [letter] = response.json["dead_letters"]
    assert {k: letter[k] for k in ("kind", "item_type", "item_id", "contact", "status", "error_type", "error",
                                   "attempts")} == {
        "kind": "evaluate_events", "item_type": "event", "item_id": event_id, "contact": "c-0", "status": "dead",
        "error_type": "OverflowError", "error": "int too large to convert to float", "attempts": 3}
    assert letter["first_failed_at"] == clock().isoformat()
    assert letter["last_failed_at"] == letter["dead_at"] == (clock() + timedelta(minutes=2)).isoformat()
    assert response.json["next_before"] is None

    other = client.get("/api/v1/dead-letters?status=all", headers=auth_headers(second_shop.credentials))
    assert other.status_code == 200 and other.json == {"dead_letters": [], "next_before": None}


def test_the_list_is_paged_newest_first(client, sessions, shop, clock) -> None:
    """Three letters, two per page: the second page is what `next_before` points to."""
    poisoned_events(sessions, shop, clock, 3)
    first = client.get("/api/v1/dead-letters?limit=2", headers=auth_headers(shop.credentials)).json
    assert [letter["contact"] for letter in first["dead_letters"]] == ["c-2", "c-1"]
    second = client.get(f"/api/v1/dead-letters?limit=2&before={first['next_before']}",
                        headers=auth_headers(shop.credentials)).json
    assert [letter["contact"] for letter in second["dead_letters"]] == ["c-0"] and second["next_before"] is None


def test_bad_query_parameters_are_named(client, shop) -> None:
    """An unknown status or a limit out of range is a 422 naming the parameter, never a 500."""
    for query, field in (("status=gone", "status"), ("limit=0", "limit"), ("limit=x", "limit"),
                         ("before=99999999999999999999", "before")):
        response = client.get(f"/api/v1/dead-letters?{query}", headers=auth_headers(shop.credentials))
        assert response.status_code == 422, query
        assert [e["field"] for e in response.json["errors"]] == [field]


def test_the_list_needs_the_workspace_key(client) -> None:
    """Without a key: 401."""
    assert client.get("/api/v1/dead-letters").status_code == 401


def test_metrics_count_dead_letters_by_job_kind(client, sessions, shop, clock) -> None:
    """rapport_dead_letters{kind,status} counts the set-aside items; every kind is there, even at 0."""
    before = scrape(client)
    assert ("rapport_dead_letters", frozenset({("kind", "advance_runs"), ("status", "dead")})) in before.samples
    poisoned_events(sessions, shop, clock, 2)
    after = scrape(client)
    assert after.value("rapport_dead_letters", kind="evaluate_events", status="dead") == \
        before.value("rapport_dead_letters", kind="evaluate_events", status="dead") + 2
