"""The `rapport` command: the operator's jobs.

    rapport db upgrade
    rapport workspace create NAME [--json] [--demo]
    rapport workspace connect shopify|woocommerce WORKSPACE_ID --secret SECRET
    rapport run                      # embedded all-in-one (what `make run` starts)
    rapport worker | scheduler | smtp-sink
    rapport bounce-server [--port N] [--domain D]   # receives bounces and complaints (VERP)
    rapport fake-providers [--port N] [--capture-outbox] [--callback-url URL]   # local SMS/messenger APIs
    rapport demo cart | order CART_ID
    rapport journeys export | import | simulate
    rapport contacts rebuild-metrics WORKSPACE
    rapport dead-letters list | retry [--workspace W] [ID ...]
    rapport user create EMAIL --workspace W --role owner|marketer|editor|viewer [--password-stdin]
    rapport user list --workspace W [--json]

Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from engine.clock import utcnow
from engine.errors import RapportError
from engine.settings import Settings
from workers.cli import contacts as cli_contacts
from workers.cli import dead_letters as cli_dead_letters
from workers.cli import journeys as cli_journeys
from workers.cli import users as cli_users

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rapport", description="Rapport campaign automation engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="migrate the database to the latest schema")

    ws = sub.add_parser("workspace", help="workspaces")
    ws_sub = ws.add_subparsers(dest="ws_command", required=True, metavar="ACTION")
    create = ws_sub.add_parser("create", help="create a workspace and print its credentials")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print the credentials as JSON")
    create.add_argument("--demo", action="store_true", help="also add the demo abandoned-cart journey")
    create.add_argument("--demo-wait", type=int, default=None, metavar="SECONDS",
                        help="the demo journey's wait (default 30)")
    connect = ws_sub.add_parser("connect", help="store the secret a shop platform signs its webhooks with")
    connect.add_argument("platform", choices=["shopify", "woocommerce"])
    connect.add_argument("workspace_id")
    connect.add_argument("--secret", required=True,
                         help="Shopify: the app's client secret or the store's webhook signing key; "
                              "WooCommerce: the webhook's secret")

    run = sub.add_parser("run", help="start everything locally: Redis, web, worker, scheduler, SMTP sink")
    run.add_argument("--workers", type=int, default=1, help="RQ worker processes (default 1)")

    worker = sub.add_parser("worker", help="run an RQ worker")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    sub.add_parser("scheduler", help="run the scheduler (exactly one per deployment)")
    sink = sub.add_parser("smtp-sink", help="run the local SMTP sink that fills the outbox")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=2525)
    fake = sub.add_parser("fake-providers", help="serve local fakes of the Twilio, SMS gateway, Telegram, "
                                                 "WhatsApp and Viber APIs")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8025)
    fake.add_argument("--database-url", default=None, help="write each accepted message to this database's outbox")
    fake.add_argument("--capture-outbox", action="store_true", help="write to DATABASE_URL's outbox")
    fake.add_argument("--callback-url", default=None,
                      help="Rapport's base URL: post signed delivery receipts to its provider webhooks")
    fake.add_argument("--callback-delay", type=float, default=1.0, help="seconds before a receipt is posted")
    bounce = sub.add_parser("bounce-server", help="receive bounces and spam complaints (the bounce domain's MX)")
    bounce.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to face the internet)")
    bounce.add_argument("--port", type=int, default=2526)
    bounce.add_argument("--domain", action="append", default=None,
                        help="accept mail only for this domain (repeatable; default: BOUNCE_DOMAIN, else any)")

    cli_journeys.add_parser(sub)
    cli_contacts.add_parser(sub)
    cli_dead_letters.add_parser(sub)
    cli_users.add_parser(sub)

    demo = sub.add_parser("demo", help="fire signed demo events at a running Rapport")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True, metavar="EVENT")
    cart = demo_sub.add_parser("cart", help="a cart_updated event for a new cart")
    cart.add_argument("--email", default="ada@example.com")
    order = demo_sub.add_parser("order", help="an order_placed event for CART_ID")
    order.add_argument("cart_id")
    for p in (cart, order):
        p.add_argument("--url", default=None, help="Rapport's base URL (default: BASE_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("alembic", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](args, settings)
    except BrokenPipeError:  # `rapport journeys recipes | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        return 0
    except (RapportError, ValueError, RuntimeError, OSError) as exc:
        print(f"rapport: error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"rapport: database error: {_explain(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _explain(exc: SQLAlchemyError) -> str:
    first = str(exc).splitlines()[0]
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return f"{first} (this database has no schema yet: run `rapport db upgrade`)"
    return first


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store.migrate import upgrade

    upgrade(settings.database_url)
    print("database is up to date")
    return 0


def cmd_workspace(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store.db import make_engine, make_sessionmaker
    from engine.workspaces.accounts import create_workspace
    from workers.dev.demo import DEMO_WAIT_SECONDS, create_demo_workspace

    sessions = make_sessionmaker(make_engine(settings.database_url))
    if args.ws_command == "connect":
        return _connect_shop(args, settings, sessions)
    with sessions.begin() as session:
        if args.demo:
            wait = args.demo_wait if args.demo_wait is not None else DEMO_WAIT_SECONDS
            credentials = create_demo_workspace(session, args.name, now=utcnow(), wait_seconds=wait)
        else:
            credentials = create_workspace(session, args.name, now=utcnow())
    if args.json:
        print(json.dumps(asdict(credentials)))
    else:
        print(f"workspace:      {credentials.workspace_id}\napi key:        {credentials.api_key}\n"
              f"signing secret: {credentials.signing_secret}\n(shown once: store them now)")
    return 0


def _connect_shop(args: argparse.Namespace, settings: Settings, sessions: sessionmaker[Session]) -> int:
    from engine.shops.webhooks import connect_shop

    with sessions.begin() as session:
        connect_shop(session, args.workspace_id, args.platform, args.secret)
    url = f"{public_url(settings)}/api/v1/webhooks/{args.platform}/{args.workspace_id}"
    print(f"{args.platform} connected to workspace {args.workspace_id}; send its webhooks to {url}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.supervisor import run_embedded

    return run_embedded(settings, workers=args.workers)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.queues import make_queues
    from workers.runtime import Runtime
    from workers.worker import Worker

    rt = Runtime(settings)
    rt.sessions  # connect before taking jobs, so a bad DATABASE_URL fails at start  # noqa: B018
    queues = list(make_queues(rt.redis, settings.namespace).values())
    # SimpleWorker runs jobs in-process: no fork per job, and the SMTP connection and
    # parsed journeys stay warm between jobs. Jobs carry batches of ids. SIGTERM: the job at
    # hand stops after the message it is handing over and gives the rest back (rt.stopping).
    worker = Worker(queues, rt)
    worker.work(burst=args.burst, logging_level="INFO", with_scheduler=False)
    return 0


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from workers.runtime import Runtime
    from workers.scheduler import run_forever

    run_forever(Runtime(settings))
    return 0


def _stop_signal() -> threading.Event:
    """Set by SIGTERM or Ctrl-C. Installed before a server starts: a signal that arrives as
    soon as the server answers must stop it cleanly, not kill the process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def cmd_smtp_sink(args: argparse.Namespace, settings: Settings) -> int:
    stop = _stop_signal()
    from engine.store.db import make_engine, make_sessionmaker
    from workers.dev.smtp_sink import start_sink

    controller = start_sink(make_sessionmaker(make_engine(settings.database_url)), utcnow,
                            host=args.host, port=args.port)
    print(f"SMTP sink listening on {args.host}:{args.port}", flush=True)
    stop.wait()
    controller.stop()
    return 0


def cmd_fake_providers(args: argparse.Namespace, settings: Settings) -> int:
    stop = _stop_signal()
    from workers.dev.fake_providers import FakeProviders

    database_url = args.database_url or (settings.database_url if args.capture_outbox else None)
    fake = FakeProviders(host=args.host, port=args.port, database_url=database_url, callback_url=args.callback_url,
                         callback_delay=args.callback_delay).start()
    print(f"fake providers listening on {fake.url}", flush=True)
    stop.wait()
    fake.stop()
    return 0


def cmd_bounce_server(args: argparse.Namespace, settings: Settings) -> int:
    stop = _stop_signal()
    from engine.store.db import make_engine, make_sessionmaker
    from workers.channels.email.bounces import start_bounce_server
    from workers.runtime import Runtime

    # With Redis, the bounce and complaint events reach journeys at once; without, the sweeper finds them.
    sessions = (Runtime(settings).sessions if settings.redis_url
                else make_sessionmaker(make_engine(settings.database_url)))
    domains = tuple(args.domain or ([settings.bounce_domain] if settings.bounce_domain else []))
    controller, _handler = start_bounce_server(sessions, secret=settings.secret_key, clock=utcnow, host=args.host,
                                               port=args.port, domains=domains)
    print(f"bounce server listening on {args.host}:{args.port} for {', '.join(domains) or 'any domain'}", flush=True)
    stop.wait()
    controller.stop()
    return 0


def public_url(settings: Settings, given: str | None = None) -> str:
    """Where Rapport answers: the URL given, else BASE_URL or PORT when set, else the address of the
    `rapport run` serving this data directory (it may run on another PORT than this shell has), else
    the default."""
    from workers.supervisor import running_address

    if given:
        return given.rstrip("/")
    explicit = any(os.environ.get(name) for name in ("BASE_URL", "PORT"))
    return (None if explicit else running_address(settings.data_dir)) or settings.base_url


def _program() -> str:
    """This command as the user typed it, so a printed follow-up command works as shown."""
    invoked = sys.argv[0] if Path(sys.argv[0]).name == "rapport" else ".venv/bin/rapport"
    prefix = f"RAPPORT_DATA_DIR={shlex.quote(os.environ['RAPPORT_DATA_DIR'])} " \
        if os.environ.get("RAPPORT_DATA_DIR") else ""
    return prefix + shlex.quote(invoked)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from workers.dev.demo import cart_event, load_credentials, order_event, post_signed

    credentials = load_credentials(settings.data_dir / "demo.json")
    if credentials is None:
        raise RuntimeError(f"no demo workspace in {settings.data_dir}: start it with `make run` first")
    base = public_url(settings, args.url)
    if args.demo_command == "cart":
        payload = cart_event(email=args.email)
    else:
        payload = order_event(args.cart_id)
    status, body = post_signed(f"{base}/api/v1/events", credentials, payload)
    print(f"HTTP {status} {json.dumps(body)}")
    if args.demo_command == "cart" and status == 202:
        cart_id = payload["properties"]["cart_id"]
        print(f"cart {cart_id}: the reminder goes out after the journey's wait; watch {base}/outbox\n"
              f"to buy the cart in time instead: {_program()} demo order {cart_id} --url {base}")
    return 0 if status in (200, 202) else 1


COMMANDS = {
    "db": cmd_db,
    "workspace": cmd_workspace,
    "run": cmd_run,
    "worker": cmd_worker,
    "scheduler": cmd_scheduler,
    "smtp-sink": cmd_smtp_sink,
    "bounce-server": cmd_bounce_server,
    "fake-providers": cmd_fake_providers,
    "demo": cmd_demo,
    "journeys": cli_journeys.run,
    "contacts": cli_contacts.run,
    "dead-letters": cli_dead_letters.run,
    "user": cli_users.run,
}

if __name__ == "__main__":
    sys.exit(main())
