"""The engine's templates port (engine/delivery/templates.py) over the database, with the seeds behind it.

A workspace's published version of a template (engine/delivery/template_versions.py) is what
its messages render from; where it has none, the seed folder of that name in templates/
(files.py) is. So a fresh install (`git clone` + `make run`, empty tables) sends the seeds,
and a workspace that edits one template changes only that one.

The port is asked for every candidate channel of every send, so it answers from memory:
each workspace's published versions are read with one query and kept for `fresh_seconds`
(2 s). A version published in this process is seen at once (`forget`, which the edge that
published calls after its commit); in the other processes (workers, other web processes)
within those seconds: a message rendered in between names the version it was rendered
from, as every message does. A version a message names (`version=`) is read by its digest
and kept for good, since versions never change. Compiled templates are cached by digest
(compiler.py), shared with the seeds.

Reads go through engine.store.db.reading_outside_transactions: the port is asked in the
middle of its caller's transaction (routing during a walk), which on SQLite holds the
write lock another transaction would wait for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.delivery import template_versions
from engine.delivery.templates import RenderedEmail, RenderedText, TemplateParts, Templates
from engine.store.db import reading_outside_transactions
from templates.compiler import SandboxCompiler
from templates.files import FileTemplates

MAX_KEPT = 10_000  # workspaces' published sets, and versions named by messages, kept per process

Published = dict[tuple[str, str], tuple[str, TemplateParts]]


class StoredTemplates:
    def __init__(self, sessions: sessionmaker[Session], *, seeds: Templates | None = None,
                 compiler: SandboxCompiler | None = None, fresh_seconds: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.seeds: Templates = seeds or FileTemplates()
        self.compiler = compiler or SandboxCompiler()
        self.fresh_seconds, self.monotonic = fresh_seconds, monotonic
        self._published: dict[str, tuple[float, Published]] = {}  # workspace -> (read until, its versions)
        self._versions: dict[tuple[str, str, str, str], TemplateParts] = {}  # (workspace, channel, name, digest)
        self._lock = threading.Lock()  # dispatch lanes are threads

    def forget(self, workspace_id: str) -> None:
        """Read the workspace's published versions again on next use (call after committing a publish)."""
        with self._lock:
            self._published.pop(workspace_id, None)

    def exists(self, workspace_id: str, channel: str, name: str, version: str | None = None) -> bool:
        if self._pick(workspace_id, channel, name, version) is not None:
            return True
        return self.seeds.exists(workspace_id, channel, name, version)

    def email(self, workspace_id: str, name: str, context: Mapping[str, Any], *,
              version: str | None = None) -> RenderedEmail:
        picked = self._pick(workspace_id, "email", name, version)
        if picked is None:
            return self.seeds.email(workspace_id, name, context, version=version)
        rendered = self.compiler.compiled("email", name, picked).render(context)
        assert isinstance(rendered, RenderedEmail)
        return rendered

    def text(self, workspace_id: str, channel: str, name: str, context: Mapping[str, Any], *,
             free_text: bool = True, version: str | None = None) -> RenderedText:
        picked = self._pick(workspace_id, channel, name, version)
        if picked is None:
            return self.seeds.text(workspace_id, channel, name, context, free_text=free_text, version=version)
        rendered = self.compiler.compiled(channel, name, picked).render(context, free_text=free_text)
        assert isinstance(rendered, RenderedText)
        return rendered

    def _pick(self, workspace_id: str, channel: str, name: str, version: str | None) -> TemplateParts | None:
        """The workspace's own parts: its live version, or the one with digest `version`; None: the seeds'."""
        live = self._live(workspace_id).get((channel, name))
        if version is None:
            return None if live is None else live[1]
        if live is not None and live[0] == version:
            return live[1]
        key = (workspace_id, channel, name, version)
        kept = self._versions.get(key)
        if kept is None:
            with reading_outside_transactions(self.sessions) as session:
                kept = template_versions.version_parts(session, workspace_id, channel, name, version)
            if kept is not None:
                with self._lock:
                    if len(self._versions) >= MAX_KEPT:
                        self._versions.clear()
                    self._versions[key] = kept
        return kept

    def _live(self, workspace_id: str) -> Published:
        now = self.monotonic()
        kept = self._published.get(workspace_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        with reading_outside_transactions(self.sessions) as session:
            published = template_versions.published_parts(session, workspace_id)
        with self._lock:
            if len(self._published) >= MAX_KEPT:
                self._published.clear()
            self._published[workspace_id] = (now + self.fresh_seconds, published)
        return published
