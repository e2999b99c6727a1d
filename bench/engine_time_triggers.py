# ruff: noqa: E402 (the imports follow the sys.path fix below)
"""Section 4 of bench/engine.py: the scheduler's time-trigger scan at BENCH_SCAN_CONTACTS
(default 100,000) contacts. Alone: `.venv/bin/python bench/engine_time_triggers.py`.

The scheduler scans every minute. For a holiday, a broadcast or a win-back, everyone
due today stays due all day (or, lapsed, for months) after they have entered, so what
a scan costs once they have is what the scheduler pays most of the time.

Set-up, in a database of its own (so no other bench's journeys are scanned): one
workspace with BENCH_SCAN_CONTACTS contacts inserted with SQL, in four time zones, each
with a birthday spread over the year (about 1 in 365 due today) and an order placed 200
days ago; four live journeys without an entry filter: a holiday greeting on today's date
wherever the contact is (at 00:00 local), a 90-day win-back, a birthday greeting (at
00:00 local) and a broadcast due a minute ago.

What is measured
  raw: one plain SELECT of the workspace's contacts (id, time zone, birthday), fetched
     in full: what any pass over them costs at least, the baseline of the same run.
  first scan: time_triggers.scan with nobody entered yet: every contact enters the
     holiday, the win-back and the broadcast, and those born today the birthday journey
     (one entry event each), committed.
  repeat scan: the same scan a minute later, when everyone due has entered and nobody
     new is: time_trigger_scan_seconds_100k (named for the default size).
Checks: the first scan records one entry per contact per journey (and the birthdays due),
the repeat scan none.

bench/engine.py runs this file as a child process (`in_child`): journey definitions are
cached per process by version id, and this database numbers its versions from 1 again.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: look for the packages in the repo root, not in bench/
    ROOT = Path(__file__).resolve().parent.parent
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import json
import os
import secrets
import subprocess
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.common import check, fresh_database, run_bench
from engine.clock import utcnow
from engine.journeys import time_triggers
from engine.journeys.versions import create_journey
from engine.store.db import make_engine, make_sessionmaker
from engine.workspaces.accounts import create_workspace
from templates.files import FileTemplates
from triggers import birthday, holiday, win_back

SCAN_CONTACTS = int(os.environ.get("BENCH_SCAN_CONTACTS", "100000"))

CONTACTS_SQL = """
INSERT INTO contacts (workspace_id, external_id, email, first_name, timezone, birthday, consent, attributes,
                      messenger_ids, created_at, updated_at, orders_count, total_spent, loyalty_tier)
SELECT :ws, 'scan-' || g, 'scan-' || g || '@example.com', 'Ada',
       (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', NULL])[1 + g % 4],
       '1990-' || to_char(DATE '2001-01-01' + g % 365, 'MM-DD'),
       CAST('{"email": "opted_in"}' AS jsonb), CAST('{}' AS jsonb), CAST('{}' AS jsonb), :now, :now, 1, 40, 'novice'
FROM generate_series(0, :n - 1) AS g
"""

ORDERS_SQL = """
INSERT INTO events (workspace_id, external_id, type, contact_id, occurred_at, received_at, properties, source,
                    enqueued_at, evaluated_at)
SELECT c.workspace_id, 'scan-order-' || c.id, 'order_placed', c.id, :at, :at, CAST('{"total": 40}' AS jsonb),
       'bench', :at, :at
FROM contacts c WHERE c.workspace_id = :ws
"""


def scan_journeys(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    today_somewhere = sorted({(now + timedelta(days=d)).strftime("%m-%d") for d in (-1, 0, 1)})
    return [
        ("Holiday greeting", holiday.recipe(dates=today_somewhere, name="Bench Day", at="00:00")),
        ("Win-back", win_back.recipe(days=90)),
        ("Birthday greeting", birthday.recipe(at="00:00")),
        ("Broadcast", {"trigger": {"broadcast_at": (now - timedelta(minutes=1)).isoformat()},
                       "steps": [{"type": "send", "id": "news", "channel": "email", "template": "holiday_greeting"}]}),
    ]


def measure(cleanup: ExitStack, checks: list[tuple[str, bool]]) -> dict[str, Any]:
    """Set up a database of its own, time the raw SELECT and the two scans; the figures, printed too."""
    db_url = fresh_database(cleanup, f"rapport_bench_{secrets.token_hex(4)}_scan")
    engine = make_engine(db_url)
    cleanup.callback(engine.dispose)
    sessions = make_sessionmaker(engine)  # no job sink: the entry events' evaluation jobs are dropped
    now = utcnow()
    with sessions.begin() as session:
        workspace_id = create_workspace(session, "Scan Shop", now=now).workspace_id
        for name, definition in scan_journeys(now):
            create_journey(session, workspace_id, name, definition, templates=FileTemplates(), now=now)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text(CONTACTS_SQL), {"ws": workspace_id, "now": now, "n": SCAN_CONTACTS})
        conn.execute(text(ORDERS_SQL), {"ws": workspace_id, "at": now - timedelta(days=200)})
        born_today = conn.execute(text(
            "SELECT count(*) FROM contacts WHERE workspace_id = :ws AND substr(birthday, 6, 5) = :today"),
            {"ws": workspace_id, "today": now.strftime("%m-%d")}).scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE contacts, events"))  # as autovacuum would after such a load
    print(f"time-trigger scan: {SCAN_CONTACTS:,} contacts and their orders inserted in "
          f"{time.monotonic() - started:.1f} s; 4 journeys (holiday, win-back, birthday, broadcast)")

    started = time.monotonic()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, timezone, birthday FROM contacts WHERE workspace_id = :ws "
                                 "ORDER BY id"), {"ws": workspace_id}).all()
    raw = time.monotonic() - started
    scans = []
    for at in (now, now + timedelta(minutes=1)):
        started = time.monotonic()
        with sessions.begin() as session:
            entered = time_triggers.scan(session, now=at)
        scans.append((entered, time.monotonic() - started))
    (first_entered, first), (repeat_entered, repeat) = scans
    print(f"time-trigger scan: raw SELECT of {len(rows):,} contacts {raw:.3f} s; first scan {first:.2f} s "
          f"({first_entered:,} entered); repeat scan {repeat:.3f} s ({repeat_entered} entered) = "
          f"{repeat / raw:.2f} x the raw SELECT")
    # Everyone is due on the holiday, lapsed and in the broadcast; some of those born today are not
    # due yet where it is still yesterday, and some born tomorrow already are: at least the first kind.
    check(checks, f"the first scan enters everyone due ({first_entered:,} for {SCAN_CONTACTS:,} contacts, "
                  f"{born_today} born today)", first_entered >= 3 * SCAN_CONTACTS)
    check(checks, f"the repeat scan enters nobody ({repeat_entered})", repeat_entered == 0)
    return {"time_trigger_contacts": SCAN_CONTACTS, "time_trigger_raw_select_seconds": round(raw, 3),
            "time_trigger_first_scan_seconds": round(first, 2), "time_trigger_first_scan_entered": first_entered,
            "time_trigger_scan_seconds_100k": round(repeat, 3)}


def in_child(checks: list[tuple[str, bool]]) -> dict[str, Any]:
    """Run this section as its own process (its lines printed as they come); its figures."""
    child = subprocess.run([sys.executable, __file__], stdout=subprocess.PIPE, text=True, check=False,
                           env=os.environ.copy())
    print(child.stdout, end="", flush=True)
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1]) if child.stdout.strip() else {}
    check(checks, f"the time-trigger scan section passed its checks (exit status {child.returncode})",
          child.returncode == 0 and figures.get("verified") is True)
    return {name: value for name, value in figures.items() if name.startswith("time_trigger_")}


def main(cleanup: ExitStack) -> int:
    checks: list[tuple[str, bool]] = []
    figures = measure(cleanup, checks)
    ok = all(passed for _label, passed in checks)
    print(json.dumps({"bench": "engine_time_triggers", **figures, "verified": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    run_bench(main)
