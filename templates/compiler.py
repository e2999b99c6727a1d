"""The engine's TemplateCompiler (engine/delivery/templates.py): template parts checked, digested and
rendered as the seed files are, and the seeds themselves as parts.

Parts become the same files a seed folder holds (`subject.txt`, `body.mjml`, `body.txt`;
`body.txt`, `buttons.yaml`, `whatsapp.yaml`), so they compile through the same cached
functions (emails.compile_email, texts.compile_text) in the same sandbox, and their digest
is sandbox.version_of over those files: an email saved unchanged from its seed has the
seed's version, and the same text compiles once wherever it is kept.

Errors point at their part and line: a Jinja syntax error at its line in that part; MJML
that does not compile at the tag that breaks it (mjml_lines.py); a variable a render was
not given at the line that names it (found by rendering each part's own source: an email's
HTML is compiled from its MJML, whose lines are the ones the marketer wrote).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import mjml
import yaml
from jinja2.sandbox import SandboxedEnvironment

from engine.delivery.ports import Button, ProviderTemplate
from engine.delivery.templates import Problem, RenderedEmail, RenderedText, TemplateParts
from engine.errors import InvalidTemplate, TemplateError
from templates.emails import FILES as EMAIL_FILES
from templates.emails import compile_email
from templates.mjml_lines import first_fault
from templates.sandbox import HTML_ENV, TEXT_ENV, version_of
from templates.texts import ROOT, compile_text

TEXT_CHANNELS_WITH_FOLDERS = ("sms", "telegram", "whatsapp", "viber")


def files_of(channel: str, parts: TemplateParts) -> dict[str, str]:
    """The parts as the files of a seed folder."""
    if channel == "email":
        return {"subject.txt": parts.subject or "", "body.mjml": parts.body_mjml or "", "body.txt": parts.body_text}
    files = {"body.txt": parts.body_text} if parts.body_text.strip() else {}
    if parts.buttons:
        files["buttons.yaml"] = _yaml([{"text": b.text, "url": b.url} for b in parts.buttons])
    if parts.provider_template is not None:
        provider = parts.provider_template
        files["whatsapp.yaml"] = _yaml({"name": provider.name, "language": provider.language,
                                        "parameters": list(provider.parameters)})
    return files


class SandboxCompiler:
    """Stateless apart from the caches it shares with the seed files; one per process is plenty."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root

    def problems(self, channel: str, parts: TemplateParts) -> list[Problem]:
        found = [problem for field, source, env in _sources(channel, parts)
                 if (problem := _syntax_problem(field, source, env)) is not None]
        if found or channel != "email":
            return found
        try:
            mjml.mjml2html(parts.body_mjml or "")
        except Exception as exc:  # mrml raises its own error types, without a position
            fault = first_fault(parts.body_mjml or "")
            message = f"MJML does not compile: {fault[1] if fault else exc}"
            return [Problem("body_mjml", message, fault[0] if fault else None)]
        try:
            self.compiled(channel, "draft", parts)
        except TemplateError as exc:  # Jinja that MJML turned invalid (say, a tag split across attributes)
            return [Problem("body_mjml", str(exc))]
        return []

    def digest(self, channel: str, parts: TemplateParts) -> str:
        return version_of(files_of(channel, parts))

    def render(self, channel: str, name: str, parts: TemplateParts, context: Mapping[str, Any], *,
               free_text: bool = True) -> RenderedEmail | RenderedText:
        compiled = self.compiled(channel, name, parts)
        try:
            if channel == "email":
                return compiled.render(context)  # type: ignore[no-any-return]
            return compiled.render(context, free_text=free_text)  # type: ignore[no-any-return]
        except TemplateError as exc:
            located = [problem for field, source, env in _sources(channel, parts)
                       if (problem := _render_problem(field, source, env, context)) is not None]
            if located:
                raise InvalidTemplate([{"field": p.field, "message": p.message, "line": p.line}
                                       for p in located]) from None
            raise InvalidTemplate([{"field": "template", "message": str(exc), "line": None}]) from None

    def compiled(self, channel: str, name: str, parts: TemplateParts) -> Any:
        """The compiled template (emails.EmailTemplate or texts.TextTemplate), from the cache when the same text
        was compiled before. TemplateError when it does not compile."""
        files = files_of(channel, parts)
        version = version_of(files)
        if channel == "email":
            return compile_email(name, version, files["subject.txt"], files["body.mjml"], files["body.txt"])
        return compile_text(channel, name, version, tuple(sorted(files.items())))

    def seeds(self) -> Mapping[tuple[str, str], TemplateParts]:
        return _seeds(self.root)


@cache
def _seeds(root: Path) -> dict[tuple[str, str], TemplateParts]:
    """Every seed folder, read once per process (they change only with a deploy)."""
    found: dict[tuple[str, str], TemplateParts] = {}
    for folder in sorted((root / "email").glob("*/")):
        if all((folder / f).is_file() for f in EMAIL_FILES):
            subject, body_mjml, body_text = ((folder / f).read_text() for f in EMAIL_FILES)
            found[("email", folder.name)] = TemplateParts(body_text=body_text, subject=subject, body_mjml=body_mjml)
    for channel in TEXT_CHANNELS_WITH_FOLDERS:
        for folder in sorted((root / channel).glob("*/")):
            parts = _text_seed(folder)
            if parts is not None:
                found[(channel, folder.name)] = parts
    return found


def _text_seed(folder: Path) -> TemplateParts | None:
    body = folder / "body.txt"
    buttons = yaml.safe_load((folder / "buttons.yaml").read_text()) if (folder / "buttons.yaml").is_file() else []
    provider = yaml.safe_load((folder / "whatsapp.yaml").read_text()) if (folder / "whatsapp.yaml").is_file() else None
    if not body.is_file() and provider is None:
        return None
    return TemplateParts(
        body_text=body.read_text() if body.is_file() else "",
        buttons=tuple(Button(str(b["text"]), str(b["url"])) for b in buttons or ()),
        provider_template=None if not isinstance(provider, dict) else ProviderTemplate(
            str(provider["name"]), str(provider.get("language", "en")),
            tuple(str(p) for p in provider.get("parameters") or ())))


def _sources(channel: str, parts: TemplateParts) -> list[tuple[str, str, SandboxedEnvironment]]:
    """Each Jinja source of the parts with its field name and the environment it renders in."""
    if channel == "email":
        return [("subject", parts.subject or "", TEXT_ENV), ("body_mjml", parts.body_mjml or "", HTML_ENV),
                ("body_text", parts.body_text, TEXT_ENV)]
    sources = [("body_text", parts.body_text, TEXT_ENV)]
    for n, button in enumerate(parts.buttons):
        sources += [(f"buttons.{n}.text", button.text, TEXT_ENV), (f"buttons.{n}.url", button.url, TEXT_ENV)]
    if parts.provider_template is not None:
        sources += [(f"provider_template.parameters.{n}", p, TEXT_ENV)
                    for n, p in enumerate(parts.provider_template.parameters)]
    return sources


def _syntax_problem(field: str, source: str, env: SandboxedEnvironment) -> Problem | None:
    try:
        env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return Problem(field, exc.message or "Jinja syntax error", exc.lineno)
    return None


def _render_problem(field: str, source: str, env: SandboxedEnvironment,
                    context: Mapping[str, Any]) -> Problem | None:
    """Render one part's own source to find the line its error is on."""
    try:
        env.from_string(source).render(context)
    except jinja2.UndefinedError as exc:
        return Problem(field, exc.message or "undefined variable", _template_line(exc))
    except jinja2.TemplateError as exc:
        return Problem(field, str(exc), _template_line(exc))
    return None


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on: Jinja rewrites tracebacks so a template's frames carry it."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
