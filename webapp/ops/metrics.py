"""GET /metrics: Prometheus text exposition format 0.0.4, computed at scrape time.

Numbers come from the database (engine/ops/metrics.py) and Redis (queue
lengths), never from this process's memory, so any web process gives the same answer.
A source that is down is reported by `rapport_scrape_source_up` instead of failing
the whole scrape.

Who may scrape: with RAPPORT_METRICS_TOKEN set, anyone presenting
`Authorization: Bearer <token>`. Without it, only loopback clients that did not come
through a proxy (no Forwarded / X-Forwarded-For / X-Real-IP header): that is the
embedded `rapport run`, whose web server listens on 127.0.0.1, and a Prometheus on the
same host. A reverse proxy on the same host would otherwise make every client look
local, so proxied requests need the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, request

from engine.batches import dead_letters
from engine.channels import CHANNELS
from engine.delivery.channel_health import CLOSED, HALF_OPEN, OPEN
from engine.ops import metrics as ops_metrics
from engine.store.db import JobName
from engine.store.models import MessageStatus
from webapp import context
from webapp.api.errors import error
from workers.queues import INBOX_JOBS, inbox_key, make_queues

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
BREAKER_STATES = (CLOSED, OPEN, HALF_OPEN)

Labels = dict[str, str]


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class Exposition:
    """Metric families written in the text format: HELP and TYPE once, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[str, Labels, float]]) -> None:
        """`samples` are (name suffix such as "_bucket" or "", labels, value)."""
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            pairs = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{suffix}{{{pairs}}} {format_value(value)}" if pairs
                              else f"{name}{suffix} {format_value(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _allowed() -> Any | None:
    """None when the caller may scrape, else the error response."""
    token = context.settings().metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        response, status = error(401, "unauthorized", "send the metrics token as 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rapport-metrics"'
        return response, status
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:  # a unix socket or no address at all
        local = False
    if local and not any(h in request.headers for h in PROXY_HEADERS):
        return None
    return error(403, "forbidden", "set RAPPORT_METRICS_TOKEN to scrape /metrics from another host or via a proxy")


def _database_families(out: Exposition) -> None:
    with context.sessions()() as session:
        counts = ops_metrics.message_counts(session)
        latency = ops_metrics.send_latency(session, now=context.now())
        errors = ops_metrics.provider_errors(session)
        doubtful = ops_metrics.in_doubt_counts(session)
        health = ops_metrics.channel_health(session)
        letters = dead_letters.counts(session)
    # Every channel and status is always present (0 when none), so dashboards have no gaps.
    by_key = {(channel, status): 0 for channel in CHANNELS for status in MessageStatus}
    by_key.update({(channel, status): n for channel, status, n in counts})
    out.family("rapport_messages", "gauge", "Messages in the outbox, by channel and status.",
               (("", {"channel": c, "status": s}, n) for (c, s), n in sorted(by_key.items())))
    out.family("rapport_send_latency_seconds", "histogram",
               "Seconds from a message's scheduled time to its hand-over to the provider, over messages "
               "sent in the last hour (a sliding window: use histogram_quantile() without rate()).",
               _latency_samples(latency))
    out.family("rapport_provider_errors_total", "counter",
               "Send attempts the provider refused: transient (retried) or permanent (failed), from the journal.",
               (("", {"channel": c, "kind": k}, n) for c, k, n in sorted(errors)))
    # Both outcomes for every channel, 0 when none: an alert on "skipped" needs the series to exist.
    in_doubt = {(channel, outcome): 0 for channel in CHANNELS for outcome in ("resent", "skipped")}
    in_doubt.update({(channel, outcome): n for channel, outcome, n in doubtful})
    out.family("rapport_in_doubt_messages_total", "counter",
               "Messages whose body may have reached the provider without its answer being recorded (a worker "
               "killed mid-send, a connection lost after the body), by what the workspace's in-doubt policy did: "
               "resent, or skipped (left unknown).",
               (("", {"channel": c, "outcome": o}, n) for (c, o), n in sorted(in_doubt.items())))
    # Every job kind and both open statuses always present, so an alert on dead letters has its series.
    open_statuses = (dead_letters.FAILING, dead_letters.DEAD)
    by_letter = {(name.value, status): 0 for name in JobName for status in open_statuses}
    by_letter.update({(kind, status): n for kind, status, n in letters})
    out.family("rapport_dead_letters", "gauge",
               "Items (events, runs, messages) whose job failed on them alone, by job kind: failing (retried by the "
               "sweep) or dead (set aside after repeated failures; GET /api/v1/dead-letters, rapport dead-letters).",
               (("", {"kind": k, "status": st}, n) for (k, st), n in sorted(by_letter.items())))
    out.family("rapport_channel_state", "gauge",
               "1 for the state the workspace's channel breaker is in: closed, open (paused by failures or a "
               "person) or half_open (a probe is out).",
               (("", {"workspace": b.workspace, "channel": b.channel, "state": state}, int(b.state == state))
                for b in health for state in BREAKER_STATES))
    out.family("rapport_channel_paused", "gauge", "1 when the workspace's channel is paused (its breaker is not "
               "closed): its messages are held or take their fallback.",
               (("", {"workspace": b.workspace, "channel": b.channel}, int(b.paused)) for b in health))
    out.family("rapport_channel_opened_total", "counter",
               "Times the workspace's channel breaker opened by itself after failures.",
               (("", {"workspace": b.workspace, "channel": b.channel}, b.opened_total) for b in health))
    out.family("rapport_channel_consecutive_failures", "gauge",
               "Counted send failures in a row on the workspace's channel (a success resets it).",
               (("", {"workspace": b.workspace, "channel": b.channel}, b.consecutive_failures) for b in health))


def _latency_samples(latency: dict[str, ops_metrics.LatencyHistogram]) -> Iterable[tuple[str, Labels, float]]:
    for channel, histogram in sorted(latency.items()):
        for bound, count in histogram.buckets:
            yield "_bucket", {"channel": channel, "le": format_value(bound)}, count
        yield "_bucket", {"channel": channel, "le": "+Inf"}, histogram.count
        yield "_sum", {"channel": channel}, histogram.total_seconds
        yield "_count", {"channel": channel}, histogram.count


def _redis_families(out: Exposition) -> None:
    redis, namespace = context.redis(), context.settings().namespace
    queues = make_queues(redis, namespace)
    with redis.pipeline(transaction=False) as pipe:
        for queue in queues.values():
            pipe.llen(queue.key)
        for job_name in INBOX_JOBS:
            pipe.llen(inbox_key(namespace, job_name))
        lengths = pipe.execute()
    names = [*queues, *(f"inbox:{job_name.value}" for job_name in INBOX_JOBS)]
    out.family("rapport_queue_depth", "gauge",
               "Jobs waiting in each RQ queue, and ids waiting in the inbox the scheduler relays into jobs.",
               (("", {"queue": name}, int(n)) for name, n in zip(names, lengths, strict=True)))


@bp.get("/metrics")
def metrics() -> Any:
    refused = _allowed()
    if refused is not None:
        return refused
    out = Exposition()
    up: dict[str, int] = {}
    for source, write in (("database", _database_families), ("redis", _redis_families)):
        try:
            write(out)
            up[source] = 1
        except Exception:  # report the outage as a metric; the other source may still answer
            log.exception("metrics: %s is not answering", source)
            up[source] = 0
    out.family("rapport_scrape_source_up", "gauge", "1 when the source answered this scrape.",
               (("", {"source": source}, value) for source, value in up.items()))
    return Response(out.text(), mimetype=None, content_type=CONTENT_TYPE)
