"""`rapport dead-letters list | retry`: items that kept failing, and owing them again once the cause is fixed.

A retried item goes back to be done (the event unevaluated, the run due now, the message
scheduled now). With REDIS_URL set it is handed to the workers at once; without, the
scheduler's next sweep hands it out. One that goes through is marked resolved; one that
fails again is set aside again.
"""

from __future__ import annotations

import argparse
import json

from engine.batches import dead_letters
from engine.clock import utcnow
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dead-letters", help="items that kept failing and were set aside")
    actions = parser.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list dead letters, newest first")
    listing.add_argument("--workspace", default=None, help="only this workspace's (default: every workspace's)")
    listing.add_argument("--status", default=dead_letters.DEAD, choices=[*dead_letters.STATUSES, "all"],
                         help="dead (default): set aside; failing: still retried; resolved: went through later")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    retry = actions.add_parser("retry", help="owe dead letters' items again (all, a workspace's, or those named)")
    retry.add_argument("--workspace", default=None, help="only this workspace's")
    retry.add_argument("ids", nargs="*", type=_letter_id, metavar="ID", help="dead letter ids (default: all dead)")


def _letter_id(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a dead letter id (a whole number)")
    return int(text)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.dead_letters_command == "list":
        return _list(args, settings)
    return _retry(args, settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions() as session:
        page = dead_letters.list_dead_letters(session, args.workspace, limit=args.limit,
                                              status=None if args.status == "all" else args.status)
    for letter in page.letters:
        if args.json:
            print(json.dumps(letter))
        else:
            print(f"{letter['id']}\t{letter['workspace']}\t{letter['status']}\t{letter['kind']} "
                  f"{letter['item_type']} {letter['item_id']}\tcontact {letter['contact']}\t"
                  f"{letter['attempts']} failures, last {letter['last_failed_at']}\t"
                  f"{letter['error_type']}: {letter['error']}")
    if not page.letters and not args.json:
        print("no dead letters")
    return 0


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    sink = None
    if settings.redis_url:
        from workers.queues import connect_redis, make_job_sink

        sink = make_job_sink(connect_redis(settings.redis_url), settings.namespace, settings.batch_size)
    sessions = make_sessionmaker(make_engine(settings.database_url), sink)
    with sessions.begin() as session:
        letters = dead_letters.retry(session, now=utcnow(), workspace_id=args.workspace, letter_ids=args.ids,
                                     enqueue=sink is not None)
        retried = [(letter.id, letter.kind, dead_letters.ITEM_TYPES[letter.kind], letter.item_id)
                   for letter in letters]
    for letter_id, kind, item_type, item_id in retried:
        print(f"dead letter {letter_id}: {item_type} {item_id} owed again ({kind})")
    if not retried:
        print("no dead letters to retry")
    elif sink is None:
        print("REDIS_URL is not set: the scheduler hands them to the workers on its next sweep")
    return 0
