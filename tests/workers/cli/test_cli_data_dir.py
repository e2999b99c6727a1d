"""The `rapport` command finds its data from any working directory, or refuses clearly.

The CLI runs as a subprocess from a copy of the source tree (so the checkout's var/
is a temporary one), started in directories other than that checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("engine", "workers", "webapp", "triggers", "templates", "migrations")


def copy_of_the_code(target: Path, *, checkout: bool) -> Path:
    """The code as a source checkout (with pyproject.toml) or as an installed package would have it."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    if checkout:
        shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def rapport_in(cwd: Path, code: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "RAPPORT_DATA_DIR", "SECRET_KEY")}
    env["PYTHONPATH"] = str(code)
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def elsewhere(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "home", tmp_path / "somewhere" / "else"
    first.mkdir()
    second.mkdir(parents=True)
    return first, second


def test_commands_run_from_any_directory_share_the_checkouts_data(tmp_path: Path, elsewhere) -> None:
    """Migrate in one directory, create a workspace in another, list its journeys in a third: one database,
    in the checkout's var/, and no stray var/ where the commands ran."""
    code = copy_of_the_code(tmp_path / "checkout", checkout=True)
    first, second = elsewhere
    migrated = rapport_in(first, code, "db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    created = rapport_in(second, code, "workspace", "create", "Anywhere Shop", "--json")
    assert created.returncode == 0, created.stderr
    workspace_id = json.loads(created.stdout)["workspace_id"]
    listed = rapport_in(tmp_path, code, "journeys", "list", workspace_id, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert (code / "var" / "rapport.db").is_file()
    assert not (first / "var").exists() and not (second / "var").exists() and not (tmp_path / "var").exists()


def test_an_installed_copy_without_a_data_directory_refuses_in_one_line(tmp_path: Path, elsewhere) -> None:
    """Outside a source checkout and without RAPPORT_DATA_DIR nothing is created: one line says what to set."""
    code = copy_of_the_code(tmp_path / "site-packages", checkout=False)
    first, _ = elsewhere
    refused = rapport_in(first, code, "journeys", "list", "ws_any")
    assert refused.returncode == 1
    assert refused.stderr.startswith("rapport: error: set RAPPORT_DATA_DIR to the folder for Rapport's SQLite")
    assert refused.stderr.count("\n") == 1 and list(first.iterdir()) == []


def test_an_unmigrated_database_says_to_run_db_upgrade(tmp_path: Path) -> None:
    """A data directory whose database has no schema yet is answered with the command that makes it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    env |= {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "cli-test"}
    result = subprocess.run([sys.executable, "-m", "workers.cli", "journeys", "list", "ws_any"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("(this database has no schema yet: run `rapport db upgrade`)")
