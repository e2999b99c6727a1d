"""Accounts fixtures: cheap password hashes, and members added the way `rapport user create` adds them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from engine.workspaces import passwords
from engine.workspaces.accounts import create_workspace
from engine.workspaces.audit import COMMAND_LINE
from engine.workspaces.roles import Role
from engine.workspaces.users import add_user, find_user
from tests.conftest import FakeClock, Shop

PASSWORD = "correct horse battery staple"
REAL_HASHER = passwords.HASHER
# argon2id still, at its smallest cost: the default costs some 0.1-0.5 s a hash on a busy 2-core machine.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """Hash with CHEAP_HASHER for the test (test_passwords.py checks REAL_HASHER's parameters)."""
    passwords.HASHER = CHEAP_HASHER
    yield
    passwords.HASHER = REAL_HASHER


@pytest.fixture
def domain() -> str:
    """An email domain of this test's own: users are not per workspace, and the suite shares one database."""
    return f"t{secrets.token_hex(4)}.example.com"


@pytest.fixture
def second_shop(sessions: sessionmaker[Session], clock: FakeClock) -> Shop:
    """Another workspace, for what one workspace's people must not reach in another."""
    with sessions.begin() as session:
        return Shop(create_workspace(session, "Other Shop", now=clock()))


def add_member(sessions: sessionmaker[Session], workspace_id: str, email: str, role: Role, *, now: datetime,
               password: str = PASSWORD) -> int:
    """A user with `role` in the workspace (created with `password` if new); their id."""
    with sessions.begin() as session:
        new = find_user(session, email) is None
        added = add_user(session, workspace_id, email, role, password=password if new else None, by=COMMAND_LINE,
                         now=now)
        return added.user.id
