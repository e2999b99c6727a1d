"""Browser fixtures: the real app under gunicorn, and Debian's Chromium driven by Playwright.

The app runs as `make run` serves it (gunicorn, `webapp.app:create_app()` reading the environment,
the bundle built by `make setup` as a static file) on the suite's database and Redis, in a Redis
namespace of its own; tests add their workspace and people to that database as the other UI tests
do. The browser is Debian's Chromium at /usr/bin/chromium: `playwright install` downloads browsers
from a host this project cannot reach, so it is never run. Without Chromium every browser test is
skipped with one reason. Each test keeps a screenshot of every page it visits under
test-results/browser/<test>/ (git-ignored), to look at what a person would have seen.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

import webapp
from engine.clock import utcnow
from engine.workspaces.roles import Role
from tests.conftest import Shop
from tests.e2e.processes import healthy, spawn, stop, wait_for
from tests.engine.workspaces.conftest import add_member
from workers.queues import connect_redis
from workers.supervisor import free_port

CHROMIUM = Path("/usr/bin/chromium")
NOT_INSTALLED = "Chromium not installed: apt-get install chromium"
BUNDLE = Path(webapp.__file__).parent / "static" / "bundle" / "main.js"
RESULTS = Path(__file__).resolve().parents[4] / "test-results" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without Chromium, skip every test that would open it, before anything starts, for one stated reason
    (`pytest -ra`, as `make test` runs it, prints it once per file)."""
    if CHROMIUM.exists():
        return
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=NOT_INSTALLED))


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole run (each test gets a context of its own)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[str]:
    """The web process on a free port, as gunicorn runs it in production; its base URL."""
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE} is missing: `make setup` builds it (npm ci, then esbuild)")
    port = free_port()
    namespace = f"browser-{secrets.token_hex(4)}"
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, RAPPORT_NAMESPACE=namespace,
               RAPPORT_DATA_DIR=str(tmp_path_factory.mktemp("browser-app")), SECRET_KEY=secrets.token_hex(16),
               PORT=str(port), PYTHONUNBUFFERED="1")
    proc = spawn([sys.executable, "-m", "gunicorn", "webapp.app:create_app()", "--bind", f"127.0.0.1:{port}",
                  "--workers", "2", "--log-level", "warning"], env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or healthy(f"{base_url}/healthz"), what="the web process")
        assert proc.poll() is None, f"gunicorn exited with {proc.returncode}"
        yield base_url
    finally:
        stop(proc)
        _forget_namespace(redis_url, namespace)


def _forget_namespace(redis_url: str, namespace: str) -> None:
    """The sign-in throttle's counters and whatever else the app kept under its namespace."""
    redis: Redis = connect_redis(redis_url)
    keys = list(redis.scan_iter(f"*{namespace}*", count=1000))
    if keys:
        redis.delete(*keys)
    redis.close()


@dataclass
class Tab:
    """A browser tab on the served app, with what its pages logged as errors and a screenshot of each."""

    page: Page
    base_url: str
    folder: Path
    console_errors: list[str] = field(default_factory=list)
    shots: int = 0

    def visit(self, path: str, name: str) -> None:
        """Open `path` of the app and keep a screenshot of the page it ends on, named `name`."""
        self.page.goto(self.base_url + path)
        self.screenshot(name)

    def screenshot(self, name: str) -> Path:
        self.shots += 1
        path = self.folder / f"{self.shots:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def record(self, message: ConsoleMessage) -> None:
        """Errors only: a Content-Security-Policy violation and a script error are logged as such."""
        if message.type == "error":
            self.console_errors.append(message.text)


@pytest.fixture
def tab(chromium: Browser, served_app: str, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh browser context (no cookies) and one page in it, for this test only."""
    folder = RESULTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = chromium.new_context(base_url=served_app)
    page = context.new_page()
    opened = Tab(page, served_app, folder)
    page.on("console", opened.record)
    page.on("pageerror", lambda error: opened.console_errors.append(f"uncaught: {error}"))
    yield opened
    context.close()


@pytest.fixture
def owner(sessions: sessionmaker[Session], shop: Shop, domain: str) -> str:
    """An owner of the test's workspace ("Test Shop"), added as `rapport user create` adds one; their email."""
    email = f"olga@{domain}"
    add_member(sessions, shop.id, email, Role.OWNER, now=utcnow())
    return email


def sign_in(tab: Tab, email: str, password: str) -> None:
    """Type the email and password into their labelled fields and press the button, as a person does."""
    tab.page.get_by_label("Email").fill(email)
    tab.page.get_by_label("Password").fill(password)
    tab.page.get_by_role("button", name="Sign in").click()

