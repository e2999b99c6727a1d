"""Batch rows travel to PostgreSQL as one JSON parameter: what it must write, and refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.store.db import rows_json
from engine.store.models import Event
from tests.conftest import FakeClock, Shop


def test_datetimes_keep_their_offset_and_naive_ones_are_refused() -> None:
    berlin = datetime(2026, 12, 4, 15, 0, 1, 250000, tzinfo=timezone(timedelta(hours=1)))
    assert json.loads(rows_json([{"at": berlin}])) == [{"at": "2026-12-04T15:00:01.250000+01:00"}]
    with pytest.raises(ValueError, match="naive datetime"):
        rows_json([{"at": datetime(2026, 12, 4, 15, 0)}])
    with pytest.raises(ValueError, match="naive datetime"):  # also when the stdlib writes them
        rows_json([{"at": datetime(2026, 12, 4, 15, 0), "n": 10**30}])


def test_what_the_fast_encoder_cannot_write_still_goes() -> None:
    """Integers past 64 bits and non-string keys take the stdlib's way; NaN becomes null (valid JSON)."""
    assert json.loads(rows_json([{"n": 10**30, "k": {1: "x"}, "at": datetime(2026, 1, 1, tzinfo=UTC)}])) == [
        {"n": 10**30, "k": {"1": "x"}, "at": "2026-01-01T00:00:00+00:00"}]
    assert json.loads(rows_json([{"f": float("nan"), "s": "zoë"}])) == [{"f": None, "s": "zoë"}]


def test_an_event_with_a_huge_order_number_is_stored_as_sent(sessions: sessionmaker[Session], shop: Shop,
                                                            clock: FakeClock) -> None:
    """A shop's 30-digit number survives ingest on either database."""
    with sessions.begin() as session:
        [result] = ingest_events(session, shop.id, [{
            "id": "evt-big", "type": "order_placed", "contact": {"external_id": "c1"},
            "properties": {"order_number": 123456789012345678901234567890, "total": 12.5}}], now=clock())
    assert result.status == "accepted"
    with sessions() as session:
        event = session.scalars(select(Event).where(Event.workspace_id == shop.id)).one()
    assert event.properties["order_number"] == 123456789012345678901234567890
