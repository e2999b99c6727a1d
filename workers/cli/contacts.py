"""`rapport contacts rebuild-metrics`: recompute metrics and loyalty tiers from events.

For upgrades (contacts whose events were evaluated before metrics existed) and after
changing a workspace's loyalty tiers. Works in keyset batches, one transaction each.
"""

from __future__ import annotations

import argparse

from sqlalchemy import select

from engine.clock import utcnow
from engine.contacts.metrics import rebuild_metrics
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import Contact, Workspace

BATCH = 500


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("contacts", help="contact maintenance")
    actions = parser.add_subparsers(dest="contacts_command", required=True, metavar="ACTION")
    rebuild = actions.add_parser("rebuild-metrics", help="recompute metrics and tiers from stored events")
    rebuild.add_argument("workspace_id")


def run(args: argparse.Namespace, settings: Settings) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions() as session:
        if session.get(Workspace, args.workspace_id) is None:
            raise ValueError(f"no workspace {args.workspace_id!r}")
    last, total = 0, 0
    while True:
        with sessions.begin() as session:
            ids = list(session.scalars(select(Contact.id).where(
                Contact.workspace_id == args.workspace_id, Contact.id > last).order_by(Contact.id).limit(BATCH)))
            if ids:
                rebuild_metrics(session, ids, now=utcnow())
        if not ids:
            break
        last, total = ids[-1], total + len(ids)
    print(f"rebuilt metrics of {total} contacts")
    return 0
