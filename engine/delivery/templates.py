"""The templates port, declared here by its users: routing asks whether a channel has the
template a send names, outgoing renders it for one recipient, and saving a journey checks
that every send step names one that exists (engine/journeys/versions.py).

A template is found by workspace, channel and name; `version` None means the one in use
now. What a render returns carries the version it came from, which is stored on the
message, so what a contact was sent can always be traced to the exact template. Rendering
is strict: a template that names a variable it was not given, fails to compile, or does
not exist raises TemplateError (engine/errors.py) instead of sending a blank.

The implementation lives with the templates (templates/files.py: the folders shipped in
templates/) and is handed in by each edge (the worker runtime, the web app, the CLI);
the engine never imports it. The engine never sees a Jinja or MJML object either: only
the plain values below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.delivery.ports import Button, ProviderTemplate


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
