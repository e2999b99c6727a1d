"""`rapport journeys ...`: journeys as code, their status, the recipe library, and the backtest.

    rapport journeys list WORKSPACE [--json]
    rapport journeys export WORKSPACE ID [-o FILE]        # the file carries the journey's uuid
    rapport journeys import WORKSPACE FILE [--publish] [--copy]   # updates the journey the file came from
    rapport journeys publish | pause | resume | archive WORKSPACE ID
    rapport journeys recipes [--json]
    rapport journeys install RECIPE WORKSPACE [--publish] [--copy] [--set KEY=VALUE ...]
    rapport journeys simulate FILE --workspace WORKSPACE --from DAY --to DAY

Results go to standard output (JSON where a script may read them), warnings to standard
error as `rapport: warning: ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.clock import utcnow
from engine.delivery.templates import Templates
from engine.errors import DefinitionError, JourneyConflict
from engine.journeys import files as journey_files
from engine.journeys import lifecycle
from engine.journeys import versions as journeys
from engine.journeys.simulation import simulate
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import Journey, Workspace
from templates.stored import StoredTemplates
from triggers import install
from triggers.library import RECIPES

STATUS_ACTIONS = {"publish": "publish the draft as a new version", "pause": "pause: timers hold, nobody enters",
                  "resume": "resume: due timers fire", "archive": "archive: live runs exit"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("journeys", help="journeys: list, status, YAML files, recipes, backtests")
    actions = parser.add_subparsers(dest="journeys_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the workspace's journeys with their status and trigger")
    listing.add_argument("workspace_id")
    listing.add_argument("--json", action="store_true", help="print JSON")
    export = actions.add_parser("export", help="write a journey's draft as YAML")
    export.add_argument("workspace_id")
    export.add_argument("journey_id", type=int)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    load = actions.add_parser("import", help="update the journey a YAML file came from (or create one)")
    load.add_argument("workspace_id")
    load.add_argument("file")
    load.add_argument("--publish", action="store_true", help="publish it at once (a new version)")
    load.add_argument("--copy", action="store_true", help="create a new journey even if the file came from one")
    for action, text in STATUS_ACTIONS.items():
        change = actions.add_parser(action, help=text)
        change.add_argument("workspace_id")
        change.add_argument("journey_id", type=int)
    recipes = actions.add_parser("recipes", help="list the trigger library's recipes")
    recipes.add_argument("--json", action="store_true", help="print JSON, with each recipe's options")
    setup = actions.add_parser("install", help="install a recipe (with its templates) as a journey")
    setup.add_argument("recipe", help="a name from `rapport journeys recipes`")
    setup.add_argument("workspace_id")
    setup.add_argument("--publish", action="store_true", help="publish it at once")
    setup.add_argument("--copy", action="store_true", help="install a second copy if it is installed already")
    setup.add_argument("--set", dest="options", action="append", default=[], type=_option, metavar="KEY=VALUE",
                       help="a recipe option; VALUE is JSON when it parses (60, true, [\"12-25\"]), else text")
    sim = actions.add_parser("simulate", help="replay stored events through a journey file; sends nothing")
    sim.add_argument("file")
    sim.add_argument("--workspace", required=True, help="whose events to replay")
    sim.add_argument("--from", dest="start", required=True, type=_day, help="first day (YYYY-MM-DD, UTC)")
    sim.add_argument("--to", dest="end", required=True, type=_day, help="day after the last (YYYY-MM-DD, UTC)")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _day(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


def _read(path: str, templates: Templates, workspace_id: str) -> tuple[str, journey_files.JourneyFile]:
    text = Path(path).read_text()
    try:
        return text, journey_files.load(text, templates=templates, workspace_id=workspace_id)
    except DefinitionError as exc:
        lines = []
        for error in exc.errors:
            line = journey_files.line_of(text, error["field"])
            where = f"{path}:{line}" if line else path
            lines.append(f"{where}: {error['field']}: {error['message']}")
        raise ValueError("\n".join(lines)) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.journeys_command == "recipes":
        return _recipes(args)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    templates = StoredTemplates(sessions)  # the workspace's published templates, else the seeds
    if args.journeys_command == "simulate":
        return _simulate(args, sessions, templates)
    with sessions() as session:
        if session.get(Workspace, args.workspace_id) is None:
            raise ValueError(f"no workspace {args.workspace_id!r}")
    if args.journeys_command == "list":
        return _list(args, sessions, templates)
    if args.journeys_command == "export":
        return _export(args, sessions)
    if args.journeys_command == "import":
        return _import(args, sessions, templates)
    if args.journeys_command == "install":
        return _install(args, sessions, templates)
    return _change_status(args, sessions, templates)


def _list(args: argparse.Namespace, sessions: sessionmaker[Session], templates: Templates) -> int:
    with sessions() as session:
        rows = journeys.list_journeys(session, args.workspace_id)
        live = journeys.live_version_summaries(session, args.workspace_id)
        listed = [{"id": j.id, "name": j.name, "status": j.status, "version": live.get(j.id, (None, ""))[0],
                   "trigger": live.get(j.id, (None, ""))[1] or _draft_trigger(j, templates), "recipe": j.recipe,
                   "uuid": j.uuid}
                  for j in rows]
    if args.json:
        print(json.dumps(listed))
        return 0
    if not listed:
        print("no journeys yet: `rapport journeys recipes` lists ready ones to install")
        return 0
    print(f"{'ID':>4}  {'STATUS':<8}  {'VERSION':>7}  {'TRIGGER':<32}  NAME")
    for j in listed:
        version = "-" if j["version"] is None else str(j["version"])
        print(f"{j['id']:>4}  {j['status']:<8}  {version:>7}  {j['trigger']:<32}  {j['name']}")
    return 0


def _draft_trigger(journey: Journey, templates: Templates) -> str:
    """An unpublished journey's entry events, read from its draft (which may not validate)."""
    try:
        return journeys.validate_definition(journey.draft, templates=templates,
                                            workspace_id=journey.workspace_id).entry_event
    except DefinitionError:
        return "(invalid draft)"


def _export(args: argparse.Namespace, sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        journey = journeys.get_journey(session, args.workspace_id, args.journey_id)
        text = journey_files.dump(journey.name, journey.draft or {}, journey.uuid)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _import(args: argparse.Namespace, sessions: sessionmaker[Session], templates: Templates) -> int:
    _text, loaded = _read(args.file, templates, args.workspace_id)
    try:
        with sessions.begin() as session:
            saved = journeys.import_journey(session, args.workspace_id, loaded.name, loaded.definition,
                                            templates=templates, uuid=loaded.uuid, now=utcnow(),
                                            publish=args.publish, copy=args.copy)
            result = _result(saved)
    except JourneyConflict as exc:
        raise ValueError(f"{exc} (--copy)") from None
    if not saved.created and not args.publish:
        result[1].insert(0, f"only the draft of journey {result[0]['id']} changed; what runs changes when it is "
                            f"published: rapport journeys publish {args.workspace_id} {result[0]['id']}")
    return _report(*result)


def _install(args: argparse.Namespace, sessions: sessionmaker[Session], templates: Templates) -> int:
    try:
        with sessions.begin() as session:
            saved = install.install_recipe(session, args.workspace_id, args.recipe, options=dict(args.options),
                                           templates=templates, now=utcnow(), publish=args.publish, copy=args.copy)
            used = install.templates_used(saved.journey.draft or {}, templates=templates,
                                          workspace_id=args.workspace_id)
            result = _result(saved, templates=used)
    except JourneyConflict as exc:
        raise ValueError(f"{exc} (--copy)") from None
    except DefinitionError as exc:  # options name no file line: say which option
        raise ValueError("; ".join(f"{e['field'].replace('options.', '--set ')}: {e['message']}"
                                   for e in exc.errors)) from None
    return _report(*result)


def _result(saved: journeys.Saved, **extra: Any) -> tuple[dict[str, Any], list[str]]:
    journey = saved.journey
    return {"id": journey.id, "uuid": journey.uuid, "name": journey.name, "status": journey.status,
            "created": saved.created, **extra}, saved.warnings


def _report(result: dict[str, Any], warnings: list[str]) -> int:
    """Printed once committed: what was saved on standard output, warnings on standard error."""
    print(json.dumps(result))
    _warn(warnings)
    return 0


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"rapport: warning: {warning}", file=sys.stderr)


def _change_status(args: argparse.Namespace, sessions: sessionmaker[Session], templates: Templates) -> int:
    now = utcnow()
    with sessions.begin() as session:
        if args.journeys_command == "publish":
            version = journeys.publish_journey(session, args.workspace_id, args.journey_id, templates=templates,
                                               now=now)
            journey = journeys.get_journey(session, args.workspace_id, args.journey_id)
            done = f"published as version {version.version}"
        else:
            journey = lifecycle.change_status(session, args.workspace_id, args.journey_id, args.journeys_command,
                                              now=now)
            done = "now " + journey.status
        message = f"journey {journey.id} ({journey.name}) is {done}"
        warnings = journeys.trigger_overlaps(session, journey)
    print(message)
    _warn(warnings)
    return 0


def _recipes(args: argparse.Namespace) -> int:
    summaries = [install.recipe_summary(slug, recipe) for slug, recipe in RECIPES.items()]
    if args.json:
        print(json.dumps(summaries))
        return 0
    width = max(len(s["name"]) for s in summaries)
    for summary in summaries:
        print(f"{summary['name']:<{width}}  {summary['description']}")
    return 0


def _simulate(args: argparse.Namespace, sessions: sessionmaker[Session], templates: Templates) -> int:
    _text, loaded = _read(args.file, templates, args.workspace)
    if args.end <= args.start:
        raise ValueError("--to must be after --from")
    definition = journeys.validate_definition(loaded.definition, templates=templates, workspace_id=args.workspace)
    with sessions() as session:
        report = simulate(session, args.workspace, definition, templates=templates, start=args.start, end=args.end)
    print(json.dumps(report, indent=2))
    return 0
