"""What a worker or scheduler process holds for its whole life: settings, sessions, Redis, senders,
and the templates messages are rendered from (the engine's templates port)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import utcnow
from engine.delivery.ports import Channels, MessageSender
from engine.delivery.templates import Templates
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from templates.stored import StoredTemplates
from workers.channels.email.smtp import DkimKey, SmtpSender
from workers.channels.webhook import HttpWebhookSender
from workers.queues import connect_redis, make_job_sink
from workers.rate_limit import RedisRateLimiter


@dataclass
class Runtime:
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    # Set when the process was asked to stop (SIGTERM): a dispatch job then finishes the
    # message it is handing over and gives its other claims back at once.
    stopping: threading.Event = field(default_factory=threading.Event)

    @cached_property
    def redis(self) -> Redis:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (rapport run sets it for the processes it starts)")
        return connect_redis(self.settings.redis_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        sink = make_job_sink(self.redis, self.settings.namespace, self.settings.batch_size)
        return make_sessionmaker(make_engine(self.settings.database_url), sink)

    @cached_property
    def templates(self) -> Templates:
        """Each workspace's published templates, the seeds shipped in templates/ where it has none."""
        return StoredTemplates(self.sessions)

    @cached_property
    def email_sender(self) -> SmtpSender:
        if not self.settings.smtp_url:
            raise RuntimeError("SMTP_URL is not set")
        return SmtpSender(self.settings.smtp_url, dkim=DkimKey.from_settings(self.settings))

    @cached_property
    def senders(self) -> dict[str, MessageSender]:
        """Every configured channel's adapter; email when SMTP_URL is set, the others per provider settings."""
        from workers.channels import build_senders

        senders: dict[str, MessageSender] = dict(build_senders(self.settings))
        if self.settings.smtp_url:
            senders["email"] = self.email_sender
        return senders

    @cached_property
    def channels(self) -> Channels:
        return Channels(senders=self.senders, webhook=HttpWebhookSender(), mail_from=self.settings.mail_from,
                        base_url=self.settings.base_url, link_secret=self.settings.secret_key,
                        bounce_domain=self.settings.bounce_domain,
                        limiter=RedisRateLimiter.from_text(self.redis, self.settings.namespace,
                                                           self.settings.rate_limits))


# The runtime of the worker performing the job at hand. RQ calls a job by its stored path with
# its stored ids, so the worker (workers/worker.py) cannot pass it as an argument: it sets it
# here around each job it performs, and the job's entry point reads it once.
_serving: ContextVar[Runtime | None] = ContextVar("rapport_runtime", default=None)


@contextmanager
def serving(rt: Runtime) -> Iterator[Runtime]:
    """Make `rt` the runtime of the jobs performed inside."""
    token = _serving.set(rt)
    try:
        yield rt
    finally:
        _serving.reset(token)


def job_runtime() -> Runtime:
    """The runtime of the worker performing this job."""
    rt = _serving.get()
    if rt is None:
        raise RuntimeError("workers.jobs run in a Rapport worker (`rapport worker`), which gives them its runtime")
    return rt
