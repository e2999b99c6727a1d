"""A workspace's own message templates: a draft, immutable published versions, and which one is live.

Templates live by workspace, channel and name. Until a workspace saves its own, the seed
folder of that name in templates/ is what its messages render from (templates/stored.py
reads both, in that order). Editing is: save a draft (checked first, so a stored draft always
compiles: Jinja syntax and MJML errors are refused with their line), then publish it, which
freezes it into the next version (1, 2, 3 ...) and makes that the one messages render from.
Publishing text that an earlier version already holds makes that version live again instead
of copying it; any version can be published again by its number (a rollback).

A version is never changed: messages store its digest (messages.template_version), which is
the digest of its parts as templates/ computes it for seed files too, so a message always
names the exact text it was rendered from. Each draft save moves `draft_revision` on; a save
that names an older revision than the stored one (another tab, another person) is refused
with StaleTemplateDraft instead of overwriting their change.

This lives in delivery beside the templates port because it is what that port reads, and a
preview (template_previews.py) renders through delivery's own outgoing path. Who may publish
is the edge's question (engine/workspaces/roles.py: templates:publish); these functions do
what they are asked within one workspace, every query scoped to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.channels import CHANNELS
from engine.delivery.template_parts import parse_parts, parts_from_row, parts_json, problem_json
from engine.delivery.templates import NAME_LENGTH, NAME_PATTERN, TemplateCompiler, TemplateParts
from engine.errors import InvalidTemplate, NotFound, StaleTemplateDraft
from engine.store.dialect import upsert
from engine.store.models import MessageTemplate, MessageTemplateVersion


@dataclass(frozen=True)
class TemplateSummary:
    channel: str
    name: str
    source: str  # what messages render from: "workspace" (a version of its own), "seed" (templates/), "none" yet
    published_version: int | None
    has_draft: bool
    draft_revision: int
    updated_at: datetime | None


@dataclass(frozen=True)
class TemplateDetail:
    summary: TemplateSummary
    draft: TemplateParts | None  # what the editor opens: the saved draft, else the live text
    seed: TemplateParts | None
    versions: list[MessageTemplateVersion]  # newest first


@dataclass(frozen=True)
class Published:
    version: MessageTemplateVersion
    created: bool  # False: an existing version (same text, or named) was made live again


def check_channel_and_name(channel: str, name: str) -> None:
    """A template is named like a send step names it, on a channel Rapport sends on."""
    errors: list[dict[str, str | int | None]] = []
    if channel not in CHANNELS:
        errors.append({"field": "channel", "message": f"must be one of {', '.join(CHANNELS)}", "line": None})
    if len(name) > NAME_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        errors.append({"field": "name", "line": None, "message":
                       f"use lower-case letters, digits and _ (at most {NAME_LENGTH}), as send steps name it"})
    if errors:
        raise InvalidTemplate(errors)


def list_templates(session: Session, workspace_id: str, *, compiler: TemplateCompiler) -> list[TemplateSummary]:
    """Every template the workspace can send: its own, and the seeds it has not replaced, by channel and name."""
    rows = {(t.channel, t.name): t for t in session.scalars(
        select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id))}
    numbers, seeds = _published_numbers(session, workspace_id), compiler.seeds()
    keys = sorted(set(rows) | set(seeds))
    return [_summary(channel, name, rows.get((channel, name)), numbers, (channel, name) in seeds)
            for channel, name in keys]


def get_template(session: Session, workspace_id: str, channel: str, name: str, *,
                 compiler: TemplateCompiler) -> TemplateDetail:
    check_channel_and_name(channel, name)
    template = _find(session, workspace_id, channel, name)
    seed = compiler.seeds().get((channel, name))
    if template is None and seed is None:
        raise NotFound(f"no {channel} template named {name!r} in this workspace")
    versions = [] if template is None else list(session.scalars(
        select(MessageTemplateVersion).where(MessageTemplateVersion.workspace_id == workspace_id,
                                             MessageTemplateVersion.template_id == template.id)
        .order_by(MessageTemplateVersion.version.desc())))
    live = next((v for v in versions if template and v.id == template.published_version_id), None)
    draft = (parse_parts(channel, template.draft) if template is not None and template.draft is not None
             else parts_from_row(live) if live is not None else seed)
    numbers = {(channel, name): live.version} if live is not None else {}
    return TemplateDetail(_summary(channel, name, template, numbers, seed is not None), draft, seed, versions)


def save_draft(session: Session, workspace_id: str, channel: str, name: str, data: Any, *,
               compiler: TemplateCompiler, by: str, now: datetime, revision: int | None = None) -> MessageTemplate:
    """Check and store the draft; `revision`, when given, must be the stored one (else StaleTemplateDraft).
    Refused with InvalidTemplate (each error at its field and line) when it would not compile."""
    check_channel_and_name(channel, name)
    parts = parse_parts(channel, data)
    problems = compiler.problems(channel, parts)
    if problems:
        raise InvalidTemplate([problem_json(p) for p in problems])
    template = _find_or_create(session, workspace_id, channel, name, now=now, lock=True)
    if revision is not None and revision != template.draft_revision:
        raise StaleTemplateDraft(f"the draft was saved again since (revision {template.draft_revision}, not "
                                 f"{revision}): reload it to see that change", revision=template.draft_revision)
    template.draft = parts_json(parts)
    template.draft_revision += 1
    template.draft_saved_by = by
    template.updated_at = now
    session.flush()
    return template


def publish(session: Session, workspace_id: str, channel: str, name: str, *, compiler: TemplateCompiler,
            by: str, now: datetime, version: int | None = None) -> Published:
    """Make the draft (or the numbered `version`) the one messages render from."""
    check_channel_and_name(channel, name)
    template = _find(session, workspace_id, channel, name, lock=True)
    if template is None:
        raise NotFound(f"this workspace has no {channel} template {name!r} of its own: save a draft first")
    existing = {v.version: v for v in session.scalars(select(MessageTemplateVersion).where(
        MessageTemplateVersion.workspace_id == workspace_id, MessageTemplateVersion.template_id == template.id))}
    if version is not None:
        if version not in existing:
            raise NotFound(f"template {channel}/{name} has no version {version}")
        return _make_live(template, existing[version], created=False, now=now)
    if template.draft is None:
        raise NotFound(f"template {channel}/{name} has no draft to publish")
    parts = parse_parts(channel, template.draft)
    problems = compiler.problems(channel, parts)  # checked when saved; the template code may have changed since
    if problems:
        raise InvalidTemplate([problem_json(p) for p in problems])
    digest = compiler.digest(channel, parts)
    same = next((v for v in existing.values() if v.digest == digest), None)
    if same is not None:
        return _make_live(template, same, created=False, now=now)
    row = MessageTemplateVersion(
        workspace_id=workspace_id, template_id=template.id, version=max(existing, default=0) + 1, digest=digest,
        subject=parts.subject, body_mjml=parts.body_mjml, body_text=parts.body_text,
        buttons=[{"text": b.text, "url": b.url} for b in parts.buttons],
        provider_template=parts_json(parts).get("provider_template"), created_by=by, created_at=now)
    session.add(row)
    session.flush()
    return _make_live(template, row, created=True, now=now)


def published_parts(session: Session, workspace_id: str) -> dict[tuple[str, str], tuple[str, TemplateParts]]:
    """The live version of each of the workspace's own templates: (channel, name) -> (digest, parts).
    One query: the templates port keeps it for a moment and answers every send from it."""
    rows = session.execute(
        select(MessageTemplate.channel, MessageTemplate.name, MessageTemplateVersion)
        .join(MessageTemplateVersion, MessageTemplateVersion.id == MessageTemplate.published_version_id)
        .where(MessageTemplate.workspace_id == workspace_id))
    return {(channel, name): (version.digest, parts_from_row(version)) for channel, name, version in rows}


def version_parts(session: Session, workspace_id: str, channel: str, name: str, digest: str) -> TemplateParts | None:
    """The parts of the workspace's version with this digest, live or not: what a message names."""
    version = session.scalar(
        select(MessageTemplateVersion).join(MessageTemplate, MessageTemplate.id == MessageTemplateVersion.template_id)
        .where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.channel == channel,
               MessageTemplate.name == name, MessageTemplateVersion.digest == digest))
    return None if version is None else parts_from_row(version)


def _make_live(template: MessageTemplate, version: MessageTemplateVersion, *, created: bool,
               now: datetime) -> Published:
    template.published_version_id = version.id
    template.updated_at = now
    return Published(version, created)


def _find(session: Session, workspace_id: str, channel: str, name: str, *,
          lock: bool = False) -> MessageTemplate | None:
    """`lock`: hold the row until commit (PostgreSQL; SQLite has one writer anyway), so two saves or two
    publishes of one template take turns instead of numbering two versions alike."""
    query = select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id,
                                          MessageTemplate.channel == channel, MessageTemplate.name == name)
    return session.scalar(query.with_for_update() if lock else query)


def _find_or_create(session: Session, workspace_id: str, channel: str, name: str, *, now: datetime,
                    lock: bool) -> MessageTemplate:
    """The template's row, made if it is the workspace's first save of it; two first saves at once make one."""
    session.execute(upsert(session, MessageTemplate).values(
        workspace_id=workspace_id, channel=channel, name=name, draft_revision=0, created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["workspace_id", "channel", "name"]))
    template = _find(session, workspace_id, channel, name, lock=lock)
    assert template is not None
    return template


def _published_numbers(session: Session, workspace_id: str) -> Mapping[tuple[str, str], int]:
    return {(channel, name): number for channel, name, number in session.execute(
        select(MessageTemplate.channel, MessageTemplate.name, MessageTemplateVersion.version)
        .join(MessageTemplateVersion, MessageTemplateVersion.id == MessageTemplate.published_version_id)
        .where(MessageTemplate.workspace_id == workspace_id))}


def _summary(channel: str, name: str, template: MessageTemplate | None, numbers: Mapping[tuple[str, str], int],
             has_seed: bool) -> TemplateSummary:
    number = numbers.get((channel, name))
    source = "workspace" if number is not None else "seed" if has_seed else "none"
    return TemplateSummary(
        channel=channel, name=name, source=source, published_version=number,
        has_draft=template is not None and template.draft is not None,
        draft_revision=template.draft_revision if template is not None else 0,
        updated_at=template.updated_at if template is not None else None)

