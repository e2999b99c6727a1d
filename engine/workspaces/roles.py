"""Roles: what each person in a workspace may do, as sets of `area:action` permissions.

Every check in the UI (and later the API's user-scoped routes) asks `can(role, permission)`;
nothing compares role names. Publishing and sending are permissions of their own, apart
from editing, because they reach customers: an editor prepares a journey, a marketer puts
it live. The owner may do everything, including managing users and API keys.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    WORKSPACE_READ = "workspace:read"
    JOURNEYS_READ = "journeys:read"
    JOURNEYS_EDIT = "journeys:edit"
    JOURNEYS_PUBLISH = "journeys:publish"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_EDIT = "templates:edit"
    TEMPLATES_PUBLISH = "templates:publish"
    SEGMENTS_READ = "segments:read"
    SEGMENTS_EDIT = "segments:edit"
    BROADCASTS_READ = "broadcasts:read"
    BROADCASTS_EDIT = "broadcasts:edit"
    BROADCASTS_SEND = "broadcasts:send"
    CONTACTS_READ = "contacts:read"
    CONTACTS_ERASE = "contacts:erase"
    REPORTS_READ = "reports:read"
    SETTINGS_READ = "settings:read"
    SETTINGS_EDIT = "settings:edit"
    CHANNELS_MANAGE = "channels:manage"
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"
    KEYS_MANAGE = "keys:manage"


class Role(enum.StrEnum):
    OWNER = "owner"
    MARKETER = "marketer"
    EDITOR = "editor"
    VIEWER = "viewer"


_READ = frozenset({
    Permission.WORKSPACE_READ, Permission.JOURNEYS_READ, Permission.TEMPLATES_READ, Permission.SEGMENTS_READ,
    Permission.BROADCASTS_READ, Permission.CONTACTS_READ, Permission.REPORTS_READ, Permission.SETTINGS_READ,
})
_EDIT = frozenset({
    Permission.JOURNEYS_EDIT, Permission.TEMPLATES_EDIT, Permission.SEGMENTS_EDIT, Permission.BROADCASTS_EDIT,
})
_PUBLISH = frozenset({Permission.JOURNEYS_PUBLISH, Permission.TEMPLATES_PUBLISH, Permission.BROADCASTS_SEND})

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _READ,
    Role.EDITOR: _READ | _EDIT,
    Role.MARKETER: _READ | _EDIT | _PUBLISH,
    Role.OWNER: frozenset(Permission),
}

DESCRIPTIONS: dict[Role, str] = {
    Role.OWNER: "everything, including users, API keys and settings",
    Role.MARKETER: "edits and publishes journeys and templates, sends broadcasts",
    Role.EDITOR: "edits journeys, templates and segments; cannot publish or send",
    Role.VIEWER: "reads everything, changes nothing",
}


def can(role: Role | str, permission: Permission) -> bool:
    """Whether `role` grants `permission`. A role name that is not a role grants nothing."""
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def parse_role(text: str) -> Role:
    """A role from its name as typed (any case); ValueError names the roles there are."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r} is not a role; roles are {', '.join(r.value for r in Role)}") from None
