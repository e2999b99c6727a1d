"""The engine's templates port (engine/delivery/templates.py) over the folders shipped in
templates/: `email/<name>/` (emails.py) and `<channel>/<name>/` for SMS and messengers
(texts.py).

These are the seed templates. They are the same for every workspace, so the workspace a
caller names does not choose among them; and they change only with a deploy, so each
folder is read once per FileTemplates (one per process: the edges make it), and whether a
folder exists is remembered too: it is asked for every candidate channel of every send.

Versions: a file template's version is the digest of its files (sandbox.version_of), not
a constant. It is stored on every message, so after an edit and a deploy each message
still says which text its contact got; and it is the key compiled templates are cached
by (emails.compile_email, texts.compile_text), which templates stored in the database
share (stored.py, compiler.py): the same text compiles once wherever it is kept. A
workspace's own published versions come before these (stored.py). Files hold one
version only: asking for another (say, a message made before a deploy that changed the
text) finds nothing, and rendering it is a TemplateError.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.delivery.templates import RenderedEmail, RenderedText
from engine.errors import TemplateError
from templates.emails import EmailTemplate, has_email_template, load_email_template
from templates.texts import ROOT, TextTemplate, has_text_template, load_text_template


class FileTemplates:
    """Templates read from `root` (the folders shipped in templates/ unless a test names others)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._found: dict[tuple[str, str], bool] = {}  # (channel, name) -> has a folder
        self._emails: dict[str, EmailTemplate] = {}
        self._texts: dict[tuple[str, str], TextTemplate] = {}

    def exists(self, workspace_id: str, channel: str, name: str, version: str | None = None) -> bool:
        found = self._found.get((channel, name))
        if found is None:
            found = self._found[(channel, name)] = (
                has_email_template(name, self.root / "email") if channel == "email"
                else has_text_template(channel, name, self.root))
        if not found or version is None:
            return found
        try:
            held = self._load_email(name) if channel == "email" else self._load_text(channel, name)
        except TemplateError:  # a folder that does not load holds no version
            return False
        return held.version == version

    def email(self, workspace_id: str, name: str, context: Mapping[str, Any], *,
              version: str | None = None) -> RenderedEmail:
        template = self._emails.get(name) or self._load_email(name)  # per message: no call when loaded
        if version is not None and version != template.version:
            raise _not_held(f"template {name!r}", version, template.version)
        return template.render(context)

    def text(self, workspace_id: str, channel: str, name: str, context: Mapping[str, Any], *,
             free_text: bool = True, version: str | None = None) -> RenderedText:
        template = self._texts.get((channel, name)) or self._load_text(channel, name)
        if version is not None and version != template.version:
            raise _not_held(f"template {channel}/{name!r}", version, template.version)
        return template.render(context, free_text=free_text)

    def _load_email(self, name: str) -> EmailTemplate:
        """Read on first use, then kept; a folder that fails to load is tried again next time."""
        template = self._emails.get(name)
        if template is None:
            template = self._emails[name] = load_email_template(name, self.root / "email")
        return template

    def _load_text(self, channel: str, name: str) -> TextTemplate:
        template = self._texts.get((channel, name))
        if template is None:
            template = self._texts[(channel, name)] = load_text_template(channel, name, self.root)
        return template


def _not_held(what: str, version: str, held: str) -> TemplateError:
    return TemplateError(f"{what} version {version} is no longer shipped (the files hold version {held})")
