"""Revenue attribution: an order goes to the last click within 5 days, else the last open within 1 day."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.contacts.ingest import ingest_events
from engine.delivery.ports import DeliveryEvent
from engine.journeys.stats import journey_stats
from engine.store.models import Attribution, Journey, Message, Workspace
from engine.tracking.attribution import attribute_orders, attribution_windows
from engine.tracking.receipts import apply_deliveries
from tests.conftest import FakeClock, Shop, drain
from workers.jobs import Jobs


class Scene:
    """One contact of the shop, messages sent to them, their opens and clicks, and their orders."""

    def __init__(self, sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, runtime: Any):
        self.sessions, self.shop, self.clock, self.runtime = sessions, shop, clock, runtime
        self.contact_id = self._contact()

    def _contact(self) -> int:
        with self.sessions.begin() as session:
            [result] = ingest_events(session, self.shop.id, [{
                "id": "seed", "type": "contact_updated",
                "contact": {"external_id": "ada", "email": "ada@example.com"}}], now=self.clock())
        assert result.contact_id is not None
        return result.contact_id

    def journey(self, name: str = "Cart reminder") -> int:
        with self.sessions.begin() as session:
            journey = Journey(workspace_id=self.shop.id, name=name, status="live", created_at=self.clock(),
                              updated_at=self.clock())
            session.add(journey)
            session.flush()
            return journey.id

    def message(self, *, channel: str = "email", journey_id: int | None = None, step_id: str | None = None,
                arm: str | None = None) -> int:
        with self.sessions.begin() as session:
            message = Message(workspace_id=self.shop.id, contact_id=self.contact_id, channel=channel,
                              template="welcome", status="sent", scheduled_at=self.clock(), sent_at=self.clock(),
                              created_at=self.clock(), context={}, journey_id=journey_id, step_id=step_id, arm=arm)
            session.add(message)
            session.flush()
            return message.id

    def touch(self, message_id: int, status: str, at: datetime, url: str = "https://shop.example/") -> None:
        key = f"open:{message_id}" if status == "opened" else f"click:{message_id}:{url}"
        with self.sessions.begin() as session:
            apply_deliveries(session, self.shop.id, [DeliveryEvent(
                channel="email", status=status, receipt_key=key, occurred_at=at, message_id=message_id,  # type: ignore[arg-type]
                detail=url if status == "clicked" else "")], now=at)

    def order(self, event_id: str, at: datetime, total: Any = "59.90", currency: str | None = "EUR",
              order_id: str | None = None) -> int:
        properties: dict[str, Any] = {"order_id": order_id or event_id, "total": total}
        if currency:
            properties["currency"] = currency
        with self.sessions.begin() as session:
            [result] = ingest_events(session, self.shop.id, [{
                "id": event_id, "type": "order_placed", "occurred_at": at.isoformat(),
                "contact": {"external_id": "ada"}, "properties": properties}], now=self.clock())
        assert result.id is not None
        drain(self.runtime)  # the real evaluate_events job: metrics, attribution, journeys
        return result.id

    def attributions(self) -> list[Attribution]:
        with self.sessions() as session:
            return list(session.scalars(select(Attribution).where(Attribution.workspace_id == self.shop.id)
                                        .order_by(Attribution.id)))


@pytest.fixture
def scene(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, runtime: Any) -> Scene:
    return Scene(sessions, shop, clock, runtime)


def test_a_click_four_days_before_an_order_gets_the_order_and_its_revenue(scene: Scene, clock: FakeClock) -> None:
    """Message, journey, step, arm, channel, touch, revenue and currency are recorded."""
    journey_id = scene.journey()
    message_id = scene.message(journey_id=journey_id, step_id="reminder", arm="B")
    scene.touch(message_id, "clicked", clock() - timedelta(days=4))
    order_event = scene.order("o-1", clock())
    [row] = scene.attributions()
    assert (row.order_event_id, row.message_id, row.contact_id) == (order_event, message_id, scene.contact_id)
    assert (row.journey_id, row.step_id, row.arm, row.channel, row.touch) == (journey_id, "reminder", "B", "email",
                                                                              "click")
    assert row.revenue == Decimal("59.90") and row.currency == "EUR"


def test_a_click_six_days_before_an_order_is_outside_the_window(scene: Scene, clock: FakeClock) -> None:
    """Five days is the default click window."""
    scene.touch(scene.message(), "clicked", clock() - timedelta(days=6))
    scene.order("o-1", clock())
    assert scene.attributions() == []


def test_an_open_within_a_day_is_attributed_as_an_open(scene: Scene, clock: FakeClock) -> None:
    """Without a click, the last open within a day counts; an open two days before does not."""
    older, recent = scene.message(), scene.message()
    scene.touch(older, "opened", clock() - timedelta(days=2))
    scene.touch(recent, "opened", clock() - timedelta(hours=20))
    scene.order("o-1", clock())
    [row] = scene.attributions()
    assert row.message_id == recent and row.touch == "open"


def test_a_click_beats_a_later_open_and_the_latest_click_wins(scene: Scene, clock: FakeClock) -> None:
    """Clicks first: the latest click in five days, even when another message was opened after it."""
    first, second, opened = scene.message(), scene.message(channel="sms"), scene.message()
    scene.touch(first, "clicked", clock() - timedelta(days=3))
    scene.touch(second, "clicked", clock() - timedelta(days=2))
    scene.touch(opened, "opened", clock() - timedelta(hours=1))
    scene.order("o-1", clock())
    [row] = scene.attributions()
    assert (row.message_id, row.channel, row.touch) == (second, "sms", "click")


def test_a_touch_after_the_order_does_not_count(scene: Scene, clock: FakeClock) -> None:
    """Only what came before the order can have led to it."""
    scene.touch(scene.message(), "clicked", clock() + timedelta(minutes=5))
    scene.order("o-1", clock())
    assert scene.attributions() == []


def test_two_orders_are_two_attributions(scene: Scene, clock: FakeClock) -> None:
    """Each order is credited on its own, with its own revenue."""
    message_id = scene.message()
    scene.touch(message_id, "clicked", clock() - timedelta(days=1))
    scene.order("o-1", clock(), total=20)
    scene.order("o-2", clock() + timedelta(hours=3), total="15.5")
    assert [(r.message_id, r.revenue) for r in scene.attributions()] == [(message_id, Decimal("20.00")),
                                                                         (message_id, Decimal("15.50"))]


def test_an_order_evaluated_twice_is_attributed_once(scene: Scene, clock: FakeClock, sessions) -> None:
    """The job run again, and the service called again, add nothing."""
    scene.touch(scene.message(), "clicked", clock() - timedelta(days=1))
    order_event = scene.order("o-1", clock())
    Jobs(scene.runtime).evaluate_events([order_event])
    with sessions.begin() as session:
        assert attribute_orders(session, [order_event], now=clock()) == 0
    assert len(scene.attributions()) == 1


def test_the_same_order_sent_twice_under_two_event_ids_is_attributed_once(scene: Scene, clock: FakeClock) -> None:
    """A shop retrying its webhook with a new event id does not double the revenue."""
    scene.touch(scene.message(), "clicked", clock() - timedelta(days=1))
    scene.order("evt-1", clock(), order_id="1001")
    scene.order("evt-2", clock() + timedelta(minutes=1), order_id="1001")
    assert len(scene.attributions()) == 1


def test_the_workspace_can_widen_the_click_window(scene: Scene, clock: FakeClock, sessions, shop: Shop) -> None:
    """settings["attribution"]["click_days"] = 7 credits a click six days before."""
    with sessions.begin() as session:
        session.execute(update(Workspace).where(Workspace.id == shop.id)
                        .values(settings={"attribution": {"click_days": 7}}))
    scene.touch(scene.message(), "clicked", clock() - timedelta(days=6))
    scene.order("o-1", clock())
    assert [r.touch for r in scene.attributions()] == ["click"]


def test_unusable_window_settings_fall_back_to_the_defaults() -> None:
    """Negative, absurd or non-numeric windows are ignored, one by one."""
    windows = attribution_windows({"attribution": {"click_days": -1, "open_days": "2"}})
    assert (windows.click, windows.open) == (timedelta(days=5), timedelta(days=1))
    assert attribution_windows({"attribution": {"open_days": 0.5}}).open == timedelta(hours=12)
    assert attribution_windows(None).click == timedelta(days=5)


def test_journey_stats_show_attributed_orders_and_revenue_per_step_and_arm(
    scene: Scene, clock: FakeClock, sessions, shop: Shop
) -> None:
    """Per step and per split arm: orders and revenue by currency; the journey's totals add them up."""
    journey_id = scene.journey()
    arm_a = scene.message(journey_id=journey_id, step_id="reminder", arm="A")
    arm_b = scene.message(journey_id=journey_id, step_id="reminder", arm="B")
    scene.touch(arm_a, "clicked", clock() - timedelta(days=2))
    scene.order("o-1", clock(), total="10.00")
    scene.touch(arm_b, "clicked", clock() + timedelta(hours=1))
    scene.order("o-2", clock() + timedelta(hours=2), total="25.50")
    scene.order("o-3", clock() + timedelta(hours=3), total="4.50")
    with sessions() as session:
        stats = journey_stats(session, shop.id, journey_id)
    step = stats["steps"]["reminder"]["attributed"]
    assert step["orders"] == 3 and step["revenue"] == {"EUR": "40.00"}
    assert step["arms"] == {"A": {"orders": 1, "revenue": {"EUR": "10.00"}},
                            "B": {"orders": 2, "revenue": {"EUR": "30.00"}}}
    assert stats["attributed"]["orders"] == 3 and stats["attributed"]["revenue"] == {"EUR": "40.00"}
