"""`rapport journeys export | import | simulate`: journeys as code, and the backtest."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine import journey_files
from engine.clock import utcnow
from engine.db import make_engine, make_sessionmaker
from engine.errors import DefinitionError
from engine.services import journeys
from engine.services.simulation import simulate
from engine.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("journeys", help="journeys as YAML files, and backtests")
    actions = parser.add_subparsers(dest="journeys_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write a journey's draft as YAML")
    export.add_argument("workspace_id")
    export.add_argument("journey_id", type=int)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    load = actions.add_parser("import", help="create a journey from a YAML file")
    load.add_argument("workspace_id")
    load.add_argument("file")
    load.add_argument("--publish", action="store_true", help="publish it at once")
    sim = actions.add_parser("simulate", help="replay stored events through a journey file; sends nothing")
    sim.add_argument("file")
    sim.add_argument("--workspace", required=True, help="whose events to replay")
    sim.add_argument("--from", dest="start", required=True, type=_day, help="first day (YYYY-MM-DD, UTC)")
    sim.add_argument("--to", dest="end", required=True, type=_day, help="day after the last (YYYY-MM-DD, UTC)")


def _day(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


def _read(path: str) -> tuple[str, journey_files.JourneyFile]:
    text = Path(path).read_text()
    try:
        return text, journey_files.load(text)
    except DefinitionError as exc:
        lines = []
        for error in exc.errors:
            line = journey_files.line_of(text, error["field"])
            where = f"{path}:{line}" if line else path
            lines.append(f"{where}: {error['field']}: {error['message']}")
        raise ValueError("\n".join(lines)) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url))
    if args.journeys_command == "export":
        with sessions() as session:
            journey = journeys.get_journey(session, args.workspace_id, args.journey_id)
            text = journey_files.dump(journey.name, journey.draft or {})
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.journeys_command == "import":
        _text, loaded = _read(args.file)
        with sessions.begin() as session:
            journey = journeys.create_journey(session, args.workspace_id, loaded.name, loaded.definition,
                                              now=utcnow(), publish=args.publish)
            print(json.dumps({"id": journey.id, "name": journey.name, "status": journey.status}))
        return 0
    _text, loaded = _read(args.file)
    if args.end <= args.start:
        raise ValueError("--to must be after --from")
    definition = journeys.validate_definition(loaded.definition)
    with sessions() as session:
        report = simulate(session, args.workspace, definition, start=args.start, end=args.end)
    print(json.dumps(report, indent=2))
    return 0
