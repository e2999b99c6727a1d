"""`rapport journeys import | export | simulate` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RAPPORT = [sys.executable, "-m", "workers.cli"]
GOOD = """name: Cart reminder
definition:
  trigger: {event: cart_updated, key: cart_id}
  goals: [{event: order_placed}]
  steps:
    - {type: wait, id: wait-1h, hours: 1}
    - {type: send, id: reminder, channel: email, template: abandoned_cart}
"""
BAD = """name: Broken
definition:
  trigger: {event: cart_updated}
  steps:
    - {type: wait, id: w, hours: 1}
    - type: wait
      id: w2
      days: -3
"""


def rapport(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RAPPORT, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    env |= {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "cli-test"}
    assert rapport("db", "upgrade", env=env).returncode == 0
    created = rapport("workspace", "create", "Files Shop", "--json", env=env)
    return env, json.loads(created.stdout)["workspace_id"]


def test_import_then_export_round_trips_a_journey_file(workspace, tmp_path: Path) -> None:
    """A YAML journey imports (published on request) and exports back with the same definition."""
    env, workspace_id = workspace
    source = tmp_path / "cart.yaml"
    source.write_text(GOOD)
    imported = rapport("journeys", "import", workspace_id, str(source), "--publish", env=env)
    assert imported.returncode == 0, imported.stderr
    journey = json.loads(imported.stdout)
    assert journey["status"] == "live"
    exported = rapport("journeys", "export", workspace_id, str(journey["id"]), env=env)
    assert "name: Cart reminder" in exported.stdout and "template: abandoned_cart" in exported.stdout


def test_a_bad_file_is_reported_with_its_line_and_field(workspace, tmp_path: Path) -> None:
    """The error names file:line and the field path; nothing is created."""
    env, workspace_id = workspace
    source = tmp_path / "broken.yaml"
    source.write_text(BAD)
    result = rapport("journeys", "import", workspace_id, str(source), env=env)
    assert result.returncode == 1
    assert f"{source}:8: definition.steps.1.wait.days: Input should be greater than or equal to 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_prints_a_report_for_the_period(workspace, tmp_path: Path) -> None:
    """A backtest over an empty period reports zero enrollments as JSON."""
    env, workspace_id = workspace
    source = tmp_path / "cart.yaml"
    source.write_text(GOOD)
    result = rapport("journeys", "simulate", str(source), "--workspace", workspace_id,
                     "--from", "2026-11-01", "--to", "2026-11-08", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["enrollments"] == 0 and report["period"]["from"].startswith("2026-11-01")


def test_branch_keys_yes_and_no_stay_keys_in_yaml(workspace, tmp_path: Path) -> None:
    """`yes:` and `no:` are branch names, not YAML 1.1 booleans; `true` is still a boolean."""
    env, workspace_id = workspace
    source = tmp_path / "branches.yaml"
    source.write_text("""name: VIP check
definition:
  trigger: {event: cart_updated, key: cart_id}
  steps:
    - type: condition
      id: vip
      condition: {attribute: vip, value: true}
      yes:
        - {type: send, id: vip-mail, channel: email, template: abandoned_cart}
      no:
        - {type: exit, id: done}
""")
    result = rapport("journeys", "import", workspace_id, str(source), env=env)
    assert result.returncode == 0, result.stderr


def test_rebuild_metrics_reports_the_contacts_it_recomputed(workspace) -> None:
    """The backfill command walks the workspace's contacts and says how many."""
    env, workspace_id = workspace
    result = rapport("contacts", "rebuild-metrics", workspace_id, env=env)
    assert result.returncode == 0 and "rebuilt metrics of 0 contacts" in result.stdout
    missing = rapport("contacts", "rebuild-metrics", "ws_nope", env=env)
    assert missing.returncode == 1 and "no workspace 'ws_nope'" in missing.stderr
