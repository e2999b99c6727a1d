"""The templates port, declared here by its users: routing asks whether a channel has the
template a send names, outgoing renders it for one recipient, and saving a journey checks
that every send step names one that exists (engine/journeys/versions.py).

A template is found by workspace, channel and name; `version` None means the one in use
now. What a render returns carries the version it came from, which is stored on the
message, so what a contact was sent can always be traced to the exact template. Rendering
is strict: a template that names a variable it was not given, fails to compile, or does
not exist raises TemplateError (engine/errors.py) instead of sending a blank.

The implementation lives with the templates (templates/stored.py: the workspace's published
versions in the database, falling back to the seed folders of templates/files.py) and is
handed in by each edge (the worker runtime, the web app, the CLI); the engine never
imports it. The engine never sees a Jinja or MJML object either: only the plain values
below. Editing templates (engine/delivery/template_versions.py) needs more of the template
code: checking a draft, its digest, rendering it unsaved, the seeds to start from; that
is `TemplateCompiler`, declared here too and implemented by templates/compiler.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.delivery.ports import Button, ProviderTemplate

# How a template is named, in a send step and in the database: lower-case letters, digits and _.
NAME_PATTERN = r"^[a-z0-9_]+$"
NAME_LENGTH = 100


@dataclass(frozen=True)
class RenderedEmail:
    subject: str  # one line
    html: str
    text: str
    version: str


@dataclass(frozen=True)
class RenderedText:
    """An SMS or messenger message; `provider_template` set means send that instead of free text."""

    text: str
    version: str
    buttons: tuple[Button, ...] = ()
    provider_template: ProviderTemplate | None = None


class Templates(Protocol):
    def exists(self, workspace_id: str, channel: str, name: str, version: str | None = None) -> bool:
        """Whether `channel` has a template `name` (at `version`, when given) in this workspace.
        Asked for every candidate channel of every send: implementations answer from memory."""
        ...

    def email(self, workspace_id: str, name: str, context: Mapping[str, Any], *,
              version: str | None = None) -> RenderedEmail:
        """The email template rendered for one recipient; TemplateError when it cannot be."""
        ...

    def text(self, workspace_id: str, channel: str, name: str, context: Mapping[str, Any], *,
             free_text: bool = True, version: str | None = None) -> RenderedText:
        """The SMS or messenger template rendered for one recipient; `free_text` False means only a
        provider's approved template may go (WhatsApp outside its 24-hour window)."""
        ...


@dataclass(frozen=True)
class TemplateParts:
    """The text of one template version, as a marketer writes it (every string is Jinja source).

    Email: `subject`, `body_mjml` and `body_text` (the plain-text part). SMS and messengers:
    `body_text` is the message; Telegram and Viber may add link `buttons`; WhatsApp may name
    its approved `provider_template` (parameters are Jinja), the only thing it may send
    outside the 24 hours after the contact last wrote."""

    body_text: str
    subject: str | None = None
    body_mjml: str | None = None
    buttons: tuple[Button, ...] = ()
    provider_template: ProviderTemplate | None = None


@dataclass(frozen=True)
class Problem:
    """Why a draft cannot be used: the part (`field`) and, when the error has one, its line in that part."""

    field: str
    message: str
    line: int | None = None


class TemplateCompiler(Protocol):
    def problems(self, channel: str, parts: TemplateParts) -> list[Problem]:
        """What keeps these parts from compiling (Jinja syntax, MJML), each at its line; [] when they do."""
        ...

    def digest(self, channel: str, parts: TemplateParts) -> str:
        """The version string of these parts (12 hex digits): the same text has the same digest,
        whether it is kept in a seed folder or in the database."""
        ...

    def render(self, channel: str, name: str, parts: TemplateParts, context: Mapping[str, Any], *,
               free_text: bool = True) -> RenderedEmail | RenderedText:
        """Render unsaved parts as a send would (sandboxed, strict); TemplateError when they cannot be,
        InvalidTemplate when the error has a line to point at."""
        ...

    def seeds(self) -> Mapping[tuple[str, str], TemplateParts]:
        """The templates shipped in templates/, by (channel, name): what a workspace has before it edits any."""
        ...
