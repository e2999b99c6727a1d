"""CLI fixtures: the accounts fixtures for `rapport user` (cheap hashes in-process; subprocesses hash for real)."""

from __future__ import annotations

from tests.engine.workspaces.conftest import cheap_password_hashes, domain, second_shop  # noqa: F401 (fixtures)
