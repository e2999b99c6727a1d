"""A preview of a template draft for a chosen contact and a sample event, rendered as a send would be.

The same path as sending: the render context is built as a journey's send step builds it
(engine/delivery/message_context.py) and the message goes through outgoing.build, links,
click tracking and open pixel included, so what the marketer sees is what the contact
would get. Then what a preview must not do is taken out: every signed link is signed with a
secret made for this preview alone, which the server does not accept (clicking "unsubscribe"
or a rating star in a preview changes nothing for the contact), and tracking is removed as
in the outbox (engine/delivery/previews.py): no open pixel, links point at their destination.

Unsaved parts can be previewed (the editor's live preview as the marketer types); without
them, the saved draft, else the live version, else the seed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.delivery.message_context import render_context
from engine.delivery.outgoing import build
from engine.delivery.ports import Button, Channels
from engine.delivery.previews import html_without_tracking, text_without_tracking
from engine.delivery.sms_segments import SmsSegments, sms_segments
from engine.delivery.template_parts import parse_parts
from engine.delivery.template_versions import check_channel_and_name, get_template
from engine.delivery.templates import RenderedEmail, RenderedText, TemplateCompiler, TemplateParts
from engine.errors import ChannelUnavailable, FieldErrors
from engine.field_errors import field_errors
from engine.store.models import Contact, Message, Workspace

SAMPLE_CONTACT = {"external_id": "preview", "email": "ada@example.com", "phone": "+4915112345678",
                  "first_name": "Ada", "last_name": "Lovelace"}


@dataclass(frozen=True)
class Preview:
    channel: str
    version: str  # the digest these parts would be published under
    text: str
    subject: str | None = None
    html: str | None = None
    buttons: tuple[Button, ...] = ()
    provider_template: dict[str, Any] | None = None
    sms: SmsSegments | None = None  # what an SMS would cost
    contact: str = field(default=SAMPLE_CONTACT["external_id"])


class PreviewRequest(BaseModel):
    """`contact`: an external_id of the workspace (a sample person when absent); `event`: the sample event's
    properties, `event_type` its type; `draft`: unsaved parts, as a draft is saved (else the stored ones)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    contact: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    event: dict[str, Any] = {}
    event_type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    draft: dict[str, Any] | None = None


def preview_template(session: Session, workspace_id: str, channel: str, name: str, data: Any, *,
                     compiler: TemplateCompiler, base_url: str, mail_from: str, now: datetime) -> Preview:
    """`data`: a PreviewRequest's fields. InvalidTemplate when the parts do not render, naming the field and
    line; FieldErrors for a bad request or a contact the workspace does not have."""
    check_channel_and_name(channel, name)
    try:
        asked = PreviewRequest.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc)) from None
    chosen = (parse_parts(channel, asked.draft) if asked.draft is not None
              else _stored(session, workspace_id, channel, name, compiler))
    workspace = session.get(Workspace, workspace_id)
    assert workspace is not None  # the caller's own
    person = _contact(session, workspace_id, asked.contact)
    context = render_context(session, person, workspace, event_type=asked.event_type, event=dict(asked.event))
    message = Message(id=0, workspace_id=workspace_id, contact_id=person.id or 0, channel=channel, template=name,
                      to_address=(person.email if channel == "email" else person.phone) or "", context=context,
                      transactional=False, fallback={}, meta={})
    secret = secrets.token_urlsafe(24)  # links signed with it lead nowhere: the server never accepts it
    sandbox = Channels(senders={}, webhook=_NoWebhooks(), mail_from=mail_from, base_url=base_url, link_secret=secret)
    built = build(message, sandbox, _OneTemplate(compiler, channel, name, chosen), signing_secret=secret,
                  last_inbound={"whatsapp": now.isoformat()}, now=now)  # inside WhatsApp's window: its free text
    out = built.outgoing
    text = text_without_tracking(out.text, secret)
    return Preview(
        channel=channel, version=compiler.digest(channel, chosen), text=text, subject=out.subject or None,
        html=html_without_tracking(out.html, secret) if out.html else None,
        buttons=tuple(Button(b.text, text_without_tracking(b.url, secret)) for b in out.buttons),
        provider_template=None if out.template is None else {
            "name": out.template.name, "language": out.template.language,
            "parameters": [text_without_tracking(p, secret) for p in out.template.parameters]},
        sms=sms_segments(text) if channel == "sms" else None, contact=person.external_id)


def _stored(session: Session, workspace_id: str, channel: str, name: str, compiler: TemplateCompiler) -> TemplateParts:
    detail = get_template(session, workspace_id, channel, name, compiler=compiler)
    assert detail.draft is not None  # get_template finds a draft, a live version or a seed, else NotFound
    return detail.draft


def _contact(session: Session, workspace_id: str, external_id: str | None) -> Contact:
    if external_id is None:
        return Contact(workspace_id=workspace_id, attributes={}, consent={}, messenger_ids={}, **SAMPLE_CONTACT)
    found = session.scalar(select(Contact).where(Contact.workspace_id == workspace_id,
                                                 Contact.external_id == external_id))
    if found is None:
        raise FieldErrors([{"field": "contact", "message": f"no contact {external_id!r} in this workspace"}])
    return found


class _NoWebhooks:
    """A preview renders, it never sends."""

    def post(self, url: str, body: bytes, headers: dict[str, str], *,
             on_handover: Callable[[], None] | None = None) -> str:
        raise ChannelUnavailable("a preview sends nothing")


@dataclass(frozen=True)
class _OneTemplate:
    """The templates port holding one unsaved template: what outgoing.build renders the preview through."""

    compiler: TemplateCompiler
    channel: str
    name: str
    parts: TemplateParts

    def exists(self, workspace_id: str, channel: str, name: str, version: str | None = None) -> bool:
        return (channel, name) == (self.channel, self.name)

    def email(self, workspace_id: str, name: str, context: Mapping[str, Any], *,
              version: str | None = None) -> RenderedEmail:
        rendered = self.compiler.render("email", name, self.parts, context)
        assert isinstance(rendered, RenderedEmail)
        return rendered

    def text(self, workspace_id: str, channel: str, name: str, context: Mapping[str, Any], *,
             free_text: bool = True, version: str | None = None) -> RenderedText:
        rendered = self.compiler.render(channel, name, self.parts, context, free_text=free_text)
        assert isinstance(rendered, RenderedText)
        return rendered
