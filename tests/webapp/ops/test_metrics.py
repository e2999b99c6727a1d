"""GET /metrics: Prometheus text format computed from the database and Redis, and who may scrape it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.delivery import channel_health
from engine.delivery.channel_health import record_failure
from engine.settings import Settings
from engine.store.db import DeferredJob, JobName
from engine.store.models import JournalEntry, Message
from tests.conftest import FakeClock
from tests.webapp.api.test_channels_api import add_messages
from tests.webapp.conftest import close_app
from webapp.app import create_app
from webapp.ops.metrics import escape_label
from workers.queues import make_job_sink
from workers.supervisor import free_port

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass
class Scrape:
    types: dict[str, str]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def parse_exposition(text: str) -> Scrape:
    """A strict reader of text format 0.0.4: HELP and TYPE precede each family's samples, once."""
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in types and kind in ("counter", "gauge", "histogram", "summary")
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, label_text, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in types, f"{name} has no TYPE line before it"
            labels = {k: re.sub(r'\\[\\"n]', lambda m: UNESCAPE[m.group()], v)
                      for k, v in LABEL.findall(label_text or "")}
            key = (name, frozenset(labels.items()))
            assert key not in samples, f"duplicate sample {line!r}"
            samples[key] = float(value)
    return Scrape(types, samples)


def scrape(client: FlaskClient, **kwargs: object) -> Scrape:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(response.get_data(as_text=True))


def app_with(settings: Settings, clock: FakeClock, **changes: object) -> Iterator[FlaskClient]:
    app: Flask = create_app(replace(settings, **changes), clock=clock)  # type: ignore[arg-type]
    yield app.test_client()
    close_app(app)


@pytest.fixture
def token_client(settings: Settings, clock: FakeClock) -> Iterator[FlaskClient]:
    yield from app_with(settings, clock, metrics_token="s3cret-token")


def test_every_family_is_declared_and_messages_cover_every_channel_and_status(client) -> None:
    """HELP/TYPE once per family; rapport_messages has a sample for each channel x status, even at 0."""
    result = scrape(client)
    assert result.types == {
        "rapport_messages": "gauge", "rapport_send_latency_seconds": "histogram",
        "rapport_provider_errors_total": "counter", "rapport_channel_paused": "gauge",
        "rapport_channel_state": "gauge", "rapport_channel_opened_total": "counter",
        "rapport_channel_consecutive_failures": "gauge", "rapport_queue_depth": "gauge",
        "rapport_in_doubt_messages_total": "counter",
        "rapport_dead_letters": "gauge",
        "rapport_scrape_source_up": "gauge"}
    assert ("rapport_messages", frozenset({("channel", "viber"), ("status", "unknown")})) in result.samples
    assert result.value("rapport_scrape_source_up", source="database") == 1
    assert result.value("rapport_scrape_source_up", source="redis") == 1


def test_message_counts_follow_the_outbox(client, shop, sessions, clock) -> None:
    """Rows added to messages show up, by channel and status, at the next scrape."""
    before = scrape(client)
    add_messages(sessions, shop.id, [("sms", "delivered"), ("sms", "delivered"), ("telegram", "failed")],
                 created_at=clock())
    after = scrape(client)
    assert after.value("rapport_messages", channel="sms", status="delivered") == \
        before.value("rapport_messages", channel="sms", status="delivered") + 2
    assert after.value("rapport_messages", channel="telegram", status="failed") == \
        before.value("rapport_messages", channel="telegram", status="failed") + 1


def test_send_latency_is_a_histogram_of_the_last_hours_sends(client, shop, sessions, clock) -> None:
    """Seconds from scheduled to sent, bucketed in SQL; sends older than an hour are left out."""
    now = clock()
    before = scrape(client)
    due = now - timedelta(minutes=10)
    for seconds in (0.3, 3, 20):
        add_messages(sessions, shop.id, [("whatsapp", "sent")], created_at=due, scheduled_at=due,
                     sent_at=due + timedelta(seconds=seconds))
    add_messages(sessions, shop.id, [("whatsapp", "sent")], created_at=now - timedelta(hours=2),
                 sent_at=now - timedelta(hours=2) + timedelta(seconds=1))
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, channel="whatsapp", **labels) - before.value(name, channel="whatsapp", **labels)

    assert [delta("rapport_send_latency_seconds_bucket", le=le) for le in ("0.5", "2.5", "5", "30", "+Inf")] == [
        1, 1, 2, 3, 3]
    assert delta("rapport_send_latency_seconds_count") == 3
    assert delta("rapport_send_latency_seconds_sum") == pytest.approx(23.3, abs=0.01)


def test_provider_errors_are_counted_from_the_journal(client, shop, sessions, clock) -> None:
    """Each "retrying" line is a transient error and each "failed" line a permanent one, per channel."""
    before = scrape(client)
    [message_id] = add_messages(sessions, shop.id, [("viber", "failed")], created_at=clock())
    with sessions.begin() as session:
        contact_id = session.get_one(Message, message_id).contact_id
        for kind in ("retrying", "retrying", "failed", "sent"):
            session.add(JournalEntry(workspace_id=shop.id, contact_id=contact_id, message_id=message_id,
                                     at=clock(), kind=kind))
    after = scrape(client)
    for kind, added in (("transient", 2), ("permanent", 1)):
        assert after.value("rapport_provider_errors_total", channel="viber", kind=kind) == \
            before.value("rapport_provider_errors_total", channel="viber", kind=kind) + added


def test_in_doubt_messages_are_counted_by_what_the_policy_did(client, shop, sessions, clock) -> None:
    """Each in-doubt line of the journal counts once, as resent or skipped, per channel."""
    before = scrape(client)
    [message_id] = add_messages(sessions, shop.id, [("email", "unknown")], created_at=clock())
    with sessions.begin() as session:
        contact_id = session.get_one(Message, message_id).contact_id
        for kind in ("in_doubt_resent", "in_doubt_resent", "in_doubt_skipped", "sent"):
            session.add(JournalEntry(workspace_id=shop.id, contact_id=contact_id, message_id=message_id,
                                     at=clock(), kind=kind))
    after = scrape(client)
    for outcome, added in (("resent", 2), ("skipped", 1)):
        assert after.value("rapport_in_doubt_messages_total", channel="email", outcome=outcome) == \
            before.value("rapport_in_doubt_messages_total", channel="email", outcome=outcome) + added


def test_paused_channels_and_failure_streaks_are_shown_per_workspace(client, shop, sessions, clock) -> None:
    """A channel paused after failures reads 1, with its streak; a failing but running one reads 0."""
    with sessions.begin() as session:
        for _ in range(3):
            record_failure(session, shop.id, "sms", "HTTP 500", now=clock(), pause_after=3)
        record_failure(session, shop.id, "email", "421 try later", now=clock(), pause_after=3)
    result = scrape(client)
    assert result.value("rapport_channel_paused", workspace=shop.id, channel="sms") == 1
    assert result.value("rapport_channel_consecutive_failures", workspace=shop.id, channel="sms") == 3
    assert result.value("rapport_channel_paused", workspace=shop.id, channel="email") == 0
    assert result.value("rapport_channel_consecutive_failures", workspace=shop.id, channel="email") == 1


def test_each_channel_breaker_shows_its_state_and_how_often_it_opened(client, shop, sessions, clock) -> None:
    """SMS opened, probed and failed again (open, opened once); Telegram's probe is out (half_open);
    email is failing but closed; Viber was paused by a person (open, never opened by itself)."""
    with sessions.begin() as session:
        record_failure(session, shop.id, "sms", "HTTP 500", now=clock(), pause_after=1)
        record_failure(session, shop.id, "telegram", "HTTP 502", now=clock(), pause_after=1)
        record_failure(session, shop.id, "email", "421 try later", now=clock(), pause_after=3)
        channel_health.pause(session, shop.id, "viber", now=clock())
    clock.advance(minutes=1)
    with sessions.begin() as session:
        assert channel_health.start_probe(session, shop.id, "sms", now=clock())
        assert channel_health.record_failure(session, shop.id, "sms", "HTTP 500", now=clock(), counted=False)
        assert channel_health.start_probe(session, shop.id, "telegram", now=clock())
    result = scrape(client)
    states = {channel: {s: result.value("rapport_channel_state", workspace=shop.id, channel=channel, state=s)
                        for s in ("closed", "open", "half_open")} for channel in ("sms", "telegram", "email", "viber")}
    assert states == {"sms": {"closed": 0, "open": 1, "half_open": 0},
                      "telegram": {"closed": 0, "open": 0, "half_open": 1},
                      "email": {"closed": 1, "open": 0, "half_open": 0},
                      "viber": {"closed": 0, "open": 1, "half_open": 0}}
    assert [result.value("rapport_channel_opened_total", workspace=shop.id, channel=c)
            for c in ("sms", "telegram", "email", "viber")] == [1, 1, 0, 0]
    assert [result.value("rapport_channel_paused", workspace=shop.id, channel=c)
            for c in ("sms", "telegram", "email", "viber")] == [1, 1, 0, 1]


def test_queue_depths_come_from_redis(client, redis, namespace) -> None:
    """Jobs waiting in the RQ queues and ids waiting in the evaluation inbox are reported."""
    sink = make_job_sink(redis, namespace, batch_size=2)
    sink([DeferredJob(JobName.DISPATCH_MESSAGES, (1, 2, 3)), DeferredJob(JobName.ADVANCE_RUNS, (4,)),
          DeferredJob(JobName.EVALUATE_EVENTS, (5, 6, 7, 8))])
    result = scrape(client)
    assert {q: result.value("rapport_queue_depth", queue=q) for q in
            ("messages", "runs", "events", "inbox:evaluate_events")} == {
        "messages": 2, "runs": 1, "events": 0, "inbox:evaluate_events": 4}


def test_with_redis_down_the_database_metrics_still_answer(settings, clock) -> None:
    """A source that is down is reported as rapport_scrape_source_up 0, not as a failed scrape."""
    for client in app_with(settings, clock, redis_url=f"redis://127.0.0.1:{free_port()}/0"):
        result = scrape(client)
        assert result.value("rapport_scrape_source_up", source="redis") == 0
        assert result.value("rapport_scrape_source_up", source="database") == 1
        assert "rapport_queue_depth" not in result.types and "rapport_messages" in result.types


def test_without_a_token_only_local_unproxied_clients_may_scrape(client) -> None:
    """Loopback (v4 or v6) is allowed; another host, or anything via a proxy, gets 403."""
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert remote.status_code == 403 and "RAPPORT_METRICS_TOKEN" in remote.get_json()["message"]
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403


def test_with_a_token_every_scrape_must_present_it(token_client) -> None:
    """Even from localhost: no token or a wrong one is 401; the right one is allowed from anywhere."""
    assert token_client.get("/metrics").status_code == 401
    wrong = token_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    scrape(token_client, headers={"Authorization": "Bearer s3cret-token"},
           environ_base={"REMOTE_ADDR": "10.0.0.5"})


def test_label_values_are_escaped_so_any_text_parses_back() -> None:
    """Backslashes, quotes and newlines in a label value survive the round trip."""
    raw = 'ws "a"\\b\nc'
    line = f'# HELP m x\n# TYPE m gauge\nm{{workspace="{escape_label(raw)}"}} 1\n'
    assert parse_exposition(line).value("m", workspace=raw) == 1
