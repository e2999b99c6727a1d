"""A template version's parts as JSON (the API, the stored draft) and as stored columns, checked on the way in.

Which parts a channel has is decided here, once: email has a subject, an MJML body and a
text body; SMS has a text; Telegram and Viber a text and link buttons; WhatsApp a text and,
optionally, its approved provider template (then the text may be empty: only the template
is sent). Whether the Jinja and MJML inside compile is the template code's question
(TemplateCompiler.problems); this checks the shape, so every error names its field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.delivery.ports import Button, ProviderTemplate
from engine.delivery.templates import Problem, TemplateParts
from engine.errors import InvalidTemplate
from engine.field_errors import field_errors
from engine.store.models import MessageTemplateVersion

BUTTON_CHANNELS = ("telegram", "viber")
PROVIDER_TEMPLATE_CHANNELS = ("whatsapp",)
MAX_PART = 100_000  # characters of one part: far past any real email, well within a request
MAX_BUTTONS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Button(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=500)]
    url: Annotated[str, Field(min_length=1, max_length=2000)]


class _ProviderTemplate(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=512)]
    language: Annotated[str, Field(min_length=1, max_length=16)] = "en"
    parameters: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=20)] = []


class _Email(_Strict):
    subject: Annotated[str, Field(min_length=1, max_length=2000)]
    body_mjml: Annotated[str, Field(min_length=1, max_length=MAX_PART)]
    body_text: Annotated[str, Field(min_length=1, max_length=MAX_PART)]


class _Text(_Strict):
    body_text: Annotated[str, Field(max_length=MAX_PART)] = ""
    buttons: Annotated[list[_Button], Field(max_length=MAX_BUTTONS)] = []
    provider_template: _ProviderTemplate | None = None


def parse_parts(channel: str, data: Any) -> TemplateParts:
    """The parts of a draft for `channel`; InvalidTemplate naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidTemplate([{"field": "draft", "message": "expected an object of the template's parts",
                                "line": None}])
    try:
        if channel == "email":
            email = _Email.model_validate(data)
            return TemplateParts(body_text=email.body_text, subject=email.subject, body_mjml=email.body_mjml)
        text = _Text.model_validate(data)
    except ValidationError as exc:
        raise InvalidTemplate([{**error, "line": None} for error in field_errors(exc)]) from None
    errors: list[dict[str, str | int | None]] = []
    if text.buttons and channel not in BUTTON_CHANNELS:
        errors.append({"field": "buttons", "line": None,
                       "message": f"only {' and '.join(BUTTON_CHANNELS)} messages have buttons"})
    if text.provider_template is not None and channel not in PROVIDER_TEMPLATE_CHANNELS:
        errors.append({"field": "provider_template", "line": None,
                       "message": "only WhatsApp sends a provider's approved template"})
    if not text.body_text.strip() and text.provider_template is None:
        errors.append({"field": "body_text", "line": None, "message": "the message needs a text"})
    if errors:
        raise InvalidTemplate(errors)
    provider = text.provider_template
    return TemplateParts(
        body_text=text.body_text, buttons=tuple(Button(b.text, b.url) for b in text.buttons),
        provider_template=None if provider is None else ProviderTemplate(provider.name, provider.language,
                                                                         tuple(provider.parameters)))


def parts_json(parts: TemplateParts) -> dict[str, Any]:
    """The parts as the API shows them and the draft column keeps them (what parse_parts reads back)."""
    if parts.subject is not None or parts.body_mjml is not None:
        return {"subject": parts.subject, "body_mjml": parts.body_mjml, "body_text": parts.body_text}
    provider = parts.provider_template
    return {"body_text": parts.body_text, "buttons": [{"text": b.text, "url": b.url} for b in parts.buttons],
            "provider_template": None if provider is None else {
                "name": provider.name, "language": provider.language, "parameters": list(provider.parameters)}}


def parts_from_row(version: MessageTemplateVersion) -> TemplateParts:
    provider = version.provider_template
    return TemplateParts(
        body_text=version.body_text, subject=version.subject, body_mjml=version.body_mjml,
        buttons=tuple(Button(b["text"], b["url"]) for b in version.buttons or ()),
        provider_template=None if provider is None else ProviderTemplate(
            provider["name"], provider.get("language", "en"), tuple(provider.get("parameters") or ())))


def problem_json(problem: Problem) -> dict[str, str | int | None]:
    return {"field": problem.field, "message": problem.message, "line": problem.line}
