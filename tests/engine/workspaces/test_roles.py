"""Roles are sets of `area:action` permissions; publishing and sending are permissions of their own."""

from __future__ import annotations

import re

import pytest

from engine.workspaces.roles import PERMISSIONS, Permission, Role, can, parse_role


def test_every_permission_is_an_area_and_an_action() -> None:
    """Permissions read as `area:action`, such as `journeys:publish`."""
    assert all(re.fullmatch(r"[a-z]+:[a-z]+", p.value) for p in Permission)


def test_an_owner_may_do_everything_including_users_and_keys() -> None:
    """The owner holds every permission there is."""
    assert all(can(Role.OWNER, p) for p in Permission)
    assert can(Role.OWNER, Permission.USERS_MANAGE) and can(Role.OWNER, Permission.KEYS_MANAGE)


def test_a_marketer_edits_publishes_and_sends_but_manages_no_users_or_keys() -> None:
    """A marketer puts journeys and templates live and sends broadcasts; users, keys and settings are the owner's."""
    for permission in (Permission.JOURNEYS_EDIT, Permission.TEMPLATES_EDIT, Permission.SEGMENTS_EDIT,
                       Permission.JOURNEYS_PUBLISH, Permission.TEMPLATES_PUBLISH, Permission.BROADCASTS_SEND):
        assert can(Role.MARKETER, permission), permission
    for permission in (Permission.USERS_MANAGE, Permission.KEYS_MANAGE, Permission.SETTINGS_EDIT):
        assert not can(Role.MARKETER, permission), permission


def test_an_editor_edits_but_may_not_publish_or_send() -> None:
    """Editing is apart from publishing: an editor prepares, a marketer puts live."""
    assert can(Role.EDITOR, Permission.JOURNEYS_EDIT) and can(Role.EDITOR, Permission.TEMPLATES_EDIT)
    for permission in (Permission.JOURNEYS_PUBLISH, Permission.TEMPLATES_PUBLISH, Permission.BROADCASTS_SEND):
        assert not can(Role.EDITOR, permission), permission


def test_a_viewer_reads_and_changes_nothing() -> None:
    """Every permission of a viewer is a `:read` one, and they may read journeys and reports."""
    assert all(p.value.endswith(":read") for p in PERMISSIONS[Role.VIEWER])
    assert can(Role.VIEWER, Permission.JOURNEYS_READ) and can(Role.VIEWER, Permission.REPORTS_READ)
    assert not can(Role.VIEWER, Permission.JOURNEYS_EDIT)


def test_each_role_may_do_all_that_the_one_below_it_may() -> None:
    """viewer < editor < marketer < owner: a promotion never takes a permission away."""
    order = [Role.VIEWER, Role.EDITOR, Role.MARKETER, Role.OWNER]
    for lower, higher in zip(order, order[1:], strict=False):
        assert PERMISSIONS[lower] < PERMISSIONS[higher], (lower, higher)


def test_a_role_name_that_is_no_role_grants_nothing() -> None:
    """A stray value in the table cannot open anything."""
    assert not can("admin", Permission.WORKSPACE_READ)


def test_a_role_is_read_in_any_case_and_a_wrong_one_names_the_roles() -> None:
    """`--role Owner` works; `--role admin` says which roles there are."""
    assert parse_role(" Owner ") is Role.OWNER
    with pytest.raises(ValueError, match="owner, marketer, editor, viewer"):
        parse_role("admin")
