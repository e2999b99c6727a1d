"""`rapport workspace connect` as an operator uses it: real subprocesses, real database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from engine.store.models import Workspace
from tests.workers.cli.test_cli import rapport


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The operator's environment: a fresh SQLite data directory of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    return env | {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "cli-test"}


def new_workspace(env: dict[str, str]) -> str:
    assert rapport("db", "upgrade", env=env).returncode == 0
    created = rapport("workspace", "create", "Brew Supply", "--json", env=env)
    assert created.returncode == 0, created.stderr
    workspace_id: str = json.loads(created.stdout)["workspace_id"]
    return workspace_id


def shop_settings(env: dict[str, str], workspace_id: str) -> dict[str, object]:
    engine = create_engine(f"sqlite:///{env['RAPPORT_DATA_DIR']}/rapport.db")
    with Session(engine) as session:
        settings = session.scalar(select(Workspace.settings).where(Workspace.id == workspace_id))
    engine.dispose()
    assert settings is not None
    return settings


def test_connect_stores_each_platforms_secret_and_prints_the_webhook_address(cli_env: dict[str, str]) -> None:
    """The secret lands in the workspace's settings; the output names the URL to give the shop."""
    workspace_id = new_workspace(cli_env)
    shopify = rapport("workspace", "connect", "shopify", workspace_id, "--secret", "shpss_abc123", env=cli_env)
    assert shopify.returncode == 0, shopify.stderr
    assert f"/api/v1/webhooks/shopify/{workspace_id}" in shopify.stdout
    woo = rapport("workspace", "connect", "woocommerce", workspace_id, "--secret", "wc-secret", env=cli_env)
    assert woo.returncode == 0, woo.stderr
    assert shop_settings(cli_env, workspace_id) == {"shopify": {"secret": "shpss_abc123"},
                                                    "woocommerce": {"secret": "wc-secret"}}


def test_connecting_again_replaces_the_secret(cli_env: dict[str, str]) -> None:
    """A rotated secret overwrites the old one."""
    workspace_id = new_workspace(cli_env)
    for secret in ("old-secret", "new-secret"):
        assert rapport("workspace", "connect", "shopify", workspace_id, "--secret", secret, env=cli_env).returncode == 0
    assert shop_settings(cli_env, workspace_id) == {"shopify": {"secret": "new-secret"}}


def test_an_unknown_workspace_or_empty_secret_is_one_clear_line(cli_env: dict[str, str]) -> None:
    """Mistakes give one line on stderr and a non-zero exit, not a traceback."""
    workspace_id = new_workspace(cli_env)
    unknown = rapport("workspace", "connect", "shopify", "ws_nope", "--secret", "s", env=cli_env)
    assert unknown.returncode != 0
    assert unknown.stderr.strip() == "rapport: error: no workspace 'ws_nope'"
    empty = rapport("workspace", "connect", "woocommerce", workspace_id, "--secret", " ", env=cli_env)
    assert empty.returncode != 0 and empty.stderr.strip() == "rapport: error: the secret is empty"
    platform = rapport("workspace", "connect", "magento", workspace_id, "--secret", "s", env=cli_env)
    assert platform.returncode != 0 and "invalid choice: 'magento'" in platform.stderr
