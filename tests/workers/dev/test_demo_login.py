"""`make run`'s demo login: printed on every start, it signs in as the demo workspace's owner and stays the
same from run to run; a demo.json that has no working login gets a new one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.workspaces.sign_in import SignInProblem, sign_in
from engine.workspaces.user_sessions import signed_in
from tests.conftest import FakeClock, settle_workspace
from tests.engine.workspaces.conftest import cheap_password_hashes  # noqa: F401 (fixture)
from workers.dev.demo import DEMO_EMAIL, load_credentials
from workers.supervisor import ensure_demo_workspace


@pytest.fixture
def demo_settings(settings: Settings, sessions: sessionmaker[Session], clock: FakeClock) -> Iterator[Settings]:
    """The test's database with a data directory of its own; the demo journey is archived afterwards."""
    yield settings
    credentials = load_credentials(settings.data_dir / "demo.json")
    if credentials is not None:
        settle_workspace(sessions, credentials.workspace_id, clock())


def test_the_printed_login_signs_in_as_owner_of_the_demo_workspace(
        demo_settings: Settings, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """The login signs in to the demo workspace with the owner's role, and demo.json keeps it for the next run."""
    login = ensure_demo_workspace(demo_settings)
    assert login.email == DEMO_EMAIL and len(login.password) >= 12
    result = sign_in(sessions, login.email, login.password, address="127.0.0.1", now=clock())
    assert result.token is not None
    with sessions.begin() as session:
        current = signed_in(session, result.token, now=clock())
    saved = json.loads((demo_settings.data_dir / "demo.json").read_text())
    assert current is not None and (current.workspace_id, current.role.value) == (saved["workspace_id"], "owner")
    assert saved["login"] == asdict(login)


def test_the_next_run_prints_the_same_login(demo_settings: Settings) -> None:
    """Restarting changes neither the workspace nor the password."""
    first = ensure_demo_workspace(demo_settings)
    workspace = load_credentials(demo_settings.data_dir / "demo.json")
    assert ensure_demo_workspace(demo_settings) == first
    assert load_credentials(demo_settings.data_dir / "demo.json") == workspace


def test_a_demo_json_from_before_logins_gets_one_and_keeps_its_workspace(
        demo_settings: Settings, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    """demo.json without a login (or with a stale one): a new password that signs in; the old one no longer does."""
    old = ensure_demo_workspace(demo_settings)
    path = demo_settings.data_dir / "demo.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({key: saved[key] for key in ("workspace_id", "api_key", "signing_secret")}))
    new = ensure_demo_workspace(demo_settings)
    assert new.password != old.password
    assert json.loads(path.read_text())["workspace_id"] == saved["workspace_id"]
    assert sign_in(sessions, new.email, new.password, address="127.0.0.1", now=clock()).token
    assert sign_in(sessions, old.email, old.password, address="127.0.0.1", now=clock()).problem is (
        SignInProblem.WRONG_CREDENTIALS)
