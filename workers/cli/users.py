"""`rapport user create | list`: the people who sign in to a workspace's pages, and their roles.

`create` makes the account (email unique in any case) with a generated password printed
once, or the one read from standard input with --password-stdin (so it never shows in the
shell's history or the process list); an email that has an account already is given the
workspace too and keeps its password. Roles: owner, marketer, editor, viewer
(engine/workspaces/roles.py says what each may do).
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.clock import utcnow
from engine.settings import Settings
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import Workspace
from engine.workspaces.audit import COMMAND_LINE
from engine.workspaces.roles import Role, parse_role
from engine.workspaces.users import Member, add_user, members_of


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("user", help="people who sign in to a workspace, and their roles")
    actions = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="give EMAIL a role in a workspace, making the account if needed")
    create.add_argument("email")
    create.add_argument("--workspace", required=True, metavar="WORKSPACE_ID")
    create.add_argument("--role", required=True, type=_role, metavar="|".join(r.value for r in Role))
    create.add_argument("--password-stdin", action="store_true",
                        help="read a new account's password from standard input instead of generating one")
    listing = actions.add_parser("list", help="the workspace's people and their roles")
    listing.add_argument("--workspace", required=True, metavar="WORKSPACE_ID")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions.begin() as session:
        workspace = session.get(Workspace, args.workspace)
        if workspace is None:
            raise ValueError(f"no workspace {args.workspace!r}")
        if args.user_command == "list":
            return _list(members_of(session, workspace.id), as_json=args.json)
        password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
        added = add_user(session, workspace.id, args.email, args.role, password=password, by=COMMAND_LINE,
                         now=utcnow())
        email, name = added.user.email, workspace.name
    if not added.created:
        print(f"{email} (an existing account; its password is unchanged) is now {args.role.value} of {name}")
    elif added.generated_password is None:
        print(f"created {email}, {args.role.value} of {name}, with the password given")
    else:
        print(f"created {email}, {args.role.value} of {name}\npassword: {added.generated_password}\n"
              "(shown once: hand it over now; it is stored only as a hash)")
    return 0


def _list(members: list[Member], *, as_json: bool) -> int:
    for member in members:
        if as_json:
            print(json.dumps({"email": member.email, "role": member.role.value,
                              "added_at": member.added_at.isoformat()}))
        else:
            print(f"{member.email}\t{member.role.value}\t{member.added_at:%Y-%m-%d}")
    if not members and not as_json:
        print("no users yet: rapport user create EMAIL --workspace WORKSPACE_ID --role owner", file=sys.stderr)
    return 0
