"""Email templates: MJML compiled once per template version, Jinja per recipient.

An email template is a folder `templates/email/<name>/` holding `subject.txt`,
`body.mjml` and `body.txt`. Its version is a digest of those files (sandbox.version_of),
stored on each message, so what a contact was sent can always be traced to the exact
template. Compiling (MJML to HTML, then Jinja) is cached by that version, whatever the
files were read from: a template stored elsewhere with the same text compiles once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import mjml

from engine.delivery.templates import RenderedEmail
from engine.errors import TemplateError
from templates.sandbox import HTML_ENV, TEXT_ENV, version_of

EMAIL_DIR = Path(__file__).parent / "email"
FILES = ("subject.txt", "body.mjml", "body.txt")


@dataclass(frozen=True)
class EmailTemplate:
    name: str
    version: str
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        parts = {}
        for part in ("subject", "html", "text"):
            try:
                parts[part] = getattr(self, part).render(context)
            except jinja2.UndefinedError as exc:
                raise TemplateError(f"template {self.name!r} ({part}): {exc.message}") from None
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template {self.name!r} ({part}): {exc}") from None
        subject = " ".join(parts["subject"].split())  # headers are one line
        return RenderedEmail(subject=subject, html=parts["html"], text=parts["text"].strip() + "\n",
                             version=self.version)


def has_email_template(name: str, directory: Path = EMAIL_DIR) -> bool:
    return (directory / name / "body.mjml").is_file()


def load_email_template(name: str, directory: Path = EMAIL_DIR) -> EmailTemplate:
    """Read the template's files (every call) and compile them (once per version)."""
    folder = directory / name
    try:
        sources = {f: (folder / f).read_text() for f in FILES}
    except FileNotFoundError as exc:
        raise TemplateError(f"template {name!r} is missing {Path(exc.filename).name}") from None
    return compile_email(name, version_of(sources), sources["subject.txt"], sources["body.mjml"],
                         sources["body.txt"])


@lru_cache(maxsize=256)
def compile_email(name: str, version: str, subject: str, body_mjml: str, body_text: str) -> EmailTemplate:
    """Compile one template version. Cached: MJML is compiled once per version."""
    try:
        html_source = mjml.mjml2html(body_mjml)
    except Exception as exc:  # mrml raises its own error types
        raise TemplateError(f"template {name!r} (body.mjml): MJML does not compile: {exc}") from None
    try:
        return EmailTemplate(
            name=name,
            version=version,
            subject=TEXT_ENV.from_string(subject),
            html=HTML_ENV.from_string(html_source),
            text=TEXT_ENV.from_string(body_text),
        )
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {name!r}: line {exc.lineno}: {exc.message}") from None
