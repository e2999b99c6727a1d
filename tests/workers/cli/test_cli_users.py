"""`rapport user create | list` as an operator uses it, on the test's own database (SQLite or PostgreSQL)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.workspaces.roles import Role
from engine.workspaces.sign_in import SignInProblem, sign_in
from tests.conftest import FakeClock, Shop
from tests.engine.workspaces.conftest import PASSWORD, add_member
from workers.cli.main import main


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    """The shell of an operator whose DATABASE_URL names the test's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "cli-test")
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path))


def rapport(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run the command in-process; its exit code, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        patch.setattr("sys.stdout", out)
        patch.setattr("sys.stderr", err)
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse refusing an argument
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_user_create_prints_a_generated_password_once_and_it_signs_in(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """The new owner's password is on the output, once, and signs in to the workspace's pages."""
    code, out, _ = rapport("user", "create", f"Ada@{domain}", "--workspace", shop.id, "--role", "owner")
    assert code == 0 and out.startswith(f"created ada@{domain}, owner of Test Shop\npassword: ")
    password = re.search(r"^password: (\S+)$", out, re.M)
    assert password and out.count(password.group(1)) == 1
    assert sign_in(sessions, f"ada@{domain}", password.group(1), address="127.0.0.1", now=clock()).token


def test_user_create_reads_the_password_from_stdin_and_never_prints_it(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str) -> None:
    """--password-stdin takes the first line of standard input; it signs in and appears nowhere on the output."""
    code, out, err = rapport("user", "create", f"mia@{domain}", "--workspace", shop.id, "--role", "Marketer",
                             "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and out == f"created mia@{domain}, marketer of Test Shop, with the password given\n"
    assert PASSWORD not in out + err
    assert sign_in(sessions, f"mia@{domain}", PASSWORD, address="127.0.0.1", now=clock()).token


def test_an_existing_account_gets_the_workspace_and_keeps_its_password(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock,
        domain: str) -> None:
    """Naming an email that has an account adds the workspace to it; the password it had still signs in."""
    add_member(sessions, second_shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    code, out, _ = rapport("user", "create", f"ada@{domain}", "--workspace", shop.id, "--role", "viewer")
    assert code == 0
    assert out == f"ada@{domain} (an existing account; its password is unchanged) is now viewer of Test Shop\n"
    assert sign_in(sessions, f"ada@{domain}", PASSWORD, address="127.0.0.1", now=clock()).token


def test_user_list_shows_the_workspaces_people_and_no_one_elses(
        sessions: sessionmaker[Session], shop: Shop, second_shop: Shop, clock: FakeClock,
        domain: str) -> None:
    """One line per member, by email, with the role; --json gives the same as objects."""
    add_member(sessions, shop.id, f"zoe@{domain}", Role.VIEWER, now=clock())
    add_member(sessions, shop.id, f"ada@{domain}", Role.OWNER, now=clock())
    add_member(sessions, second_shop.id, f"eve@{domain}", Role.OWNER, now=clock())
    code, out, _ = rapport("user", "list", "--workspace", shop.id)
    assert code == 0
    assert out == f"ada@{domain}\towner\t2030-01-07\nzoe@{domain}\tviewer\t2030-01-07\n"
    code, out, _ = rapport("user", "list", "--workspace", shop.id, "--json")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"email": f"ada@{domain}", "role": "owner", "added_at": "2030-01-07T09:00:00+00:00"},
        {"email": f"zoe@{domain}", "role": "viewer", "added_at": "2030-01-07T09:00:00+00:00"}]


def test_an_empty_workspace_says_how_to_add_its_first_user(shop: Shop) -> None:
    """No members: nothing on the output, the command to run on the error stream."""
    assert rapport("user", "list", "--workspace", shop.id) == (
        0, "", "no users yet: rapport user create EMAIL --workspace WORKSPACE_ID --role owner\n")


@pytest.mark.parametrize(("args", "stdin", "error"), [
    (["--workspace", "ws_nothing", "--role", "owner"], "", "rapport: error: no workspace 'ws_nothing'"),
    (["--role", "owner"], "short\n", "rapport: error: password: use at least 12 characters"),
    (["--role", "admin"], "", "'admin' is not a role; roles are owner, marketer, editor, viewer"),
])
def test_mistakes_are_one_line_errors_and_create_nothing(
        sessions: sessionmaker[Session], shop: Shop, clock: FakeClock, domain: str, args: list[str], stdin: str,
        error: str) -> None:
    """An unknown workspace, a short password, a role that is none: a clear line, a non-zero exit, no account."""
    if "--workspace" not in args:
        args = [*args, "--workspace", shop.id]
    code, out, err = rapport("user", "create", f"ada@{domain}", *args, *(["--password-stdin"] if stdin else []),
                             stdin=stdin)
    assert code != 0 and out == "" and error in err and "Traceback" not in err
    assert sign_in(sessions, f"ada@{domain}", PASSWORD, address="127.0.0.1", now=clock()).problem is (
        SignInProblem.WRONG_CREDENTIALS)


def test_a_malformed_email_is_refused_naming_the_field(shop: Shop) -> None:
    """`rapport user create ada@example` says what an email address looks like."""
    code, _, err = rapport("user", "create", "ada@example", "--workspace", shop.id, "--role", "owner")
    assert code == 1 and err == "rapport: error: email: enter an email address such as ada@example.com\n"
