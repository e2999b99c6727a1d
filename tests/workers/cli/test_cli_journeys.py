"""`rapport journeys ...` (list, import, export, status, recipes, install, simulate) as an operator runs them."""

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


def test_importing_an_exported_file_updates_its_journey_instead_of_adding_a_second(workspace, tmp_path: Path) -> None:
    """Export, edit, import --publish: the same journey gets version 2; no second live journey doubles the reminders."""
    env, workspace_id = workspace
    source = tmp_path / "cart.yaml"
    source.write_text(GOOD)
    journey = json.loads(rapport("journeys", "import", workspace_id, str(source), "--publish", env=env).stdout)
    exported = tmp_path / "exported.yaml"
    assert rapport("journeys", "export", workspace_id, str(journey["id"]), "-o", str(exported), env=env).returncode == 0
    exported.write_text(exported.read_text().replace("hours: 1", "hours: 2"))
    again = rapport("journeys", "import", workspace_id, str(exported), "--publish", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"uuid": None} == {"id": journey["id"], "uuid": None, "name": "Cart reminder",
                                                          "status": "live", "created": False}
    assert again.stderr == ""
    listed = json.loads(rapport("journeys", "list", workspace_id, "--json", env=env).stdout)
    assert [(j["id"], j["status"], j["version"]) for j in listed] == [(journey["id"], "live", 2)]


def test_an_imported_copy_is_a_second_journey_with_a_warning(workspace, tmp_path: Path) -> None:
    """--copy creates a new journey; live on the event the first one is live on, the CLI warns."""
    env, workspace_id = workspace
    source = tmp_path / "cart.yaml"
    source.write_text(GOOD)
    first = json.loads(rapport("journeys", "import", workspace_id, str(source), "--publish", env=env).stdout)
    exported = tmp_path / "exported.yaml"
    rapport("journeys", "export", workspace_id, str(first["id"]), "-o", str(exported), env=env)
    copy = rapport("journeys", "import", workspace_id, str(exported), "--publish", "--copy", env=env)
    assert copy.returncode == 0, copy.stderr
    assert json.loads(copy.stdout)["id"] != first["id"]
    assert copy.stderr.strip() == (f"rapport: warning: journey {first['id']} ('Cart reminder') is also live on "
                                   "cart_updated: a contact enters both and gets the messages of each")


def test_list_pause_resume_and_archive_a_journey(workspace, tmp_path: Path) -> None:
    """The listing shows status, version and trigger; each status command says what it did or why it cannot."""
    env, workspace_id = workspace
    empty = rapport("journeys", "list", workspace_id, env=env)
    assert empty.returncode == 0 and "rapport journeys recipes" in empty.stdout
    source = tmp_path / "cart.yaml"
    source.write_text(GOOD)
    journey_id = str(json.loads(rapport("journeys", "import", workspace_id, str(source), "--publish",
                                        env=env).stdout)["id"])
    listing = rapport("journeys", "list", workspace_id, env=env).stdout.splitlines()
    assert listing[0].split() == ["ID", "STATUS", "VERSION", "TRIGGER", "NAME"]
    assert listing[1].split() == [journey_id, "live", "1", "cart_updated", "Cart", "reminder"]
    for action, outcome in [("pause", "now paused"), ("resume", "now live"), ("archive", "now archived")]:
        done = rapport("journeys", action, workspace_id, journey_id, env=env)
        assert done.returncode == 0 and done.stdout.strip() == f"journey {journey_id} (Cart reminder) is {outcome}"
    refused = rapport("journeys", "resume", workspace_id, journey_id, env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "rapport: error: cannot resume a journey that is archived"
    unknown = rapport("journeys", "pause", workspace_id, "999", env=env)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "rapport: error: no journey 999"
    nowhere = rapport("journeys", "list", "ws_nope", env=env)
    assert nowhere.returncode == 1 and nowhere.stderr.strip() == "rapport: error: no workspace 'ws_nope'"


def test_recipes_are_listed_and_installed_once_with_their_templates(workspace) -> None:
    """`recipes` lists name and description; `install` makes the journey, and a second install names it."""
    env, workspace_id = workspace
    listed = rapport("journeys", "recipes", env=env)
    assert listed.returncode == 0
    assert any(line.split(None, 1) == ["abandoned_cart", "One reminder an hour after a cart is left; an order for "
                                       "that cart cancels it."] for line in listed.stdout.splitlines())
    installed = rapport("journeys", "install", "abandoned_cart", workspace_id, "--publish", "--set",
                        "wait_seconds=600", env=env)
    assert installed.returncode == 0, installed.stderr
    journey = json.loads(installed.stdout)
    assert (journey["name"], journey["status"], journey["created"]) == ("Abandoned cart reminder", "live", True)
    assert journey["templates"] == [{"channel": "email", "template": "abandoned_cart",
                                     "path": "templates/email/abandoned_cart/"}]
    twice = rapport("journeys", "install", "abandoned_cart", workspace_id, env=env)
    assert twice.returncode == 1
    assert twice.stderr.strip() == (f"rapport: error: recipe abandoned_cart is already installed as journey "
                                    f"{journey['id']} ('Abandoned cart reminder', live); install a copy to have "
                                    "a second one (--copy)")
    needs = rapport("journeys", "install", "holiday_greeting", workspace_id, env=env)
    assert needs.returncode == 1 and needs.stderr.strip() == "rapport: error: --set dates: required"
    holiday = rapport("journeys", "install", "holiday_greeting", workspace_id, "--set", 'dates=["12-25"]', env=env)
    assert holiday.returncode == 0 and json.loads(holiday.stdout)["status"] == "draft"


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
