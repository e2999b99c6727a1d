"""The `rapport` command as an operator uses it: real subprocesses, real database."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from workers.supervisor import free_port

RAPPORT = [sys.executable, "-m", "workers.cli"]


def rapport(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RAPPORT, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")}
    return env | {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "cli-test"}


def test_db_upgrade_migrates_a_fresh_database_and_can_run_again(cli_env: dict[str, str]) -> None:
    """`rapport db upgrade` creates the schema, and a second run is a no-op."""
    for _ in range(2):
        result = rapport("db", "upgrade", env=cli_env)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    assert (Path(cli_env["RAPPORT_DATA_DIR"]) / "rapport.db").exists()


def test_workspace_create_prints_credentials_as_json(cli_env: dict[str, str]) -> None:
    """--json prints the workspace id, an API key and a signing secret, and nothing else."""
    assert rapport("db", "upgrade", env=cli_env).returncode == 0
    result = rapport("workspace", "create", "Acme Shop", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"workspace_id", "api_key", "signing_secret"}
    assert data["workspace_id"].startswith("ws_") and data["api_key"].startswith("rk_")
    assert data["signing_secret"].startswith("whsec_")


def test_errors_are_one_clear_line_and_a_non_zero_exit(cli_env: dict[str, str], tmp_path: Path) -> None:
    """A bad setting or a missing prerequisite gives one line on stderr, not a traceback."""
    missing = rapport("demo", "cart", env=cli_env)
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "make run" in missing.stderr

    bad_db = rapport("workspace", "create", "X", env=cli_env | {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    assert bad_db.returncode != 0
    assert bad_db.stderr.startswith("rapport: ") and "Traceback" not in bad_db.stderr

    blank_name = rapport("workspace", "create", " ", env=cli_env)
    assert blank_name.returncode != 0 and "name" in blank_name.stderr


@pytest.mark.e2e
def test_rapport_run_starts_everything_and_ctrl_c_stops_it(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`rapport run` serves, accepts the printed demo command, prints a login that signs in, stops every child on
    Ctrl-C, and a second run reuses the data, the demo workspace and its login."""
    port = free_port()
    env = cli_env | {"PORT": str(port)}
    env.pop("RAPPORT_TEST_DATABASE_URL", None)
    workspace_ids, logins = [], []
    for _ in range(2):
        proc = subprocess.Popen([*RAPPORT, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            banner = _read_until(proc, "Press Ctrl-C", timeout=60)
            assert f"http://127.0.0.1:{port}" in banner
            command = re.search(r"^\s+(.*rapport demo cart.*)$", banner, re.M)
            assert command, banner
            # gunicorn's workers load the app after the port opens: slow on a busy machine
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()["status"] == "ok"
            login = re.search(rf"Sign in to the demo workspace at http://127.0.0.1:{port}/sign-in\n"
                              r"\s+email:\s+(\S+)\n\s+password: (\S+)\n", banner)
            assert login, banner
            logins.append(login.groups())
            _sign_in_over_http(port, *login.groups())
            fired = rapport("demo", "cart", "--url", f"http://127.0.0.1:{port}", env=env)
            assert fired.returncode == 0 and "HTTP 202" in fired.stdout, fired.stdout + fired.stderr
            workspace_ids.append(json.loads((Path(env["RAPPORT_DATA_DIR"]) / "demo.json").read_text())["workspace_id"])
            _check_printed_addresses(fired.stdout, port, workspace_ids[-1], env)
            children = _children_of(proc.pid)
            assert len(children) >= 5  # redis, sink, web, worker, scheduler
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            finally:  # whatever failed above, leave no process of this run behind
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.5)
        assert [pid for pid in children if _alive(pid)] == []
    assert workspace_ids[0] == workspace_ids[1] and logins[0] == logins[1]


def _sign_in_over_http(port: int, email: str, password: str) -> None:
    """The printed login signs in through the form (with its CSRF token) and lands on the demo's home as owner."""
    browser = requests.Session()
    form = browser.get(f"http://127.0.0.1:{port}/sign-in", timeout=30).text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', form)
    assert token, form
    signed = browser.post(f"http://127.0.0.1:{port}/sign-in", data={"email": email, "password": password,
                                                                     "csrf_token": token.group(1)},
                          allow_redirects=False, timeout=30)
    assert signed.status_code == 303 and signed.headers["Location"] == "/app/", signed.text
    home = browser.get(f"http://127.0.0.1:{port}/app/", timeout=30).text
    assert "Demo Shop" in home and "<strong>owner</strong>" in home


def _check_printed_addresses(demo_output: str, port: int, workspace_id: str, env: dict[str, str]) -> None:
    """The printed `demo order` command carries --url and works as printed; `workspace connect`, run
    in a shell without PORT, prints the address `rapport run` really serves."""
    printed = re.search(r"instead: (.*rapport demo order .*)$", demo_output, re.M)
    assert printed, demo_output
    words = shlex.split(printed.group(1))
    assert words[-2:] == ["--url", f"http://127.0.0.1:{port}"]
    other_shell = {k: v for k, v in env.items() if k not in ("PORT", "BASE_URL")}
    ordered = rapport(*words[words.index("demo"):], env=other_shell)
    assert ordered.returncode == 0 and "HTTP 202" in ordered.stdout, ordered.stdout + ordered.stderr
    connected = rapport("workspace", "connect", "shopify", workspace_id, "--secret", "s", env=other_shell)
    assert connected.returncode == 0, connected.stderr
    assert f"http://127.0.0.1:{port}/api/v1/webhooks/shopify/{workspace_id}" in connected.stdout


def _read_until(proc: subprocess.Popen[str], marker: str, *, timeout: float) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("rapport run did not finish starting:\n" + "".join(seen))


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    return [int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == pid]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "Z"
    return state != "Z"
