"""Text templates for SMS and messengers: `templates/<channel>/<name>/`.

- `body.txt`: the message text (Jinja, sandboxed, StrictUndefined, no HTML escaping).
- `buttons.yaml` (Telegram, Viber): a list of `{text, url}` link buttons, both Jinja.
- `whatsapp.yaml` (WhatsApp): the approved template used outside the 24-hour window
  after the contact's last message: `{name, language, parameters: [Jinja, ...]}`.
  Inside the window `body.txt` goes as free text; outside it only the template may.

The version is a digest of the folder's files (sandbox.version_of), stored on each
message like email's; compiling is cached by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from engine.delivery.ports import Button, ProviderTemplate
from engine.delivery.templates import RenderedText
from engine.errors import TemplateError
from templates.sandbox import TEXT_ENV, version_of

ROOT = Path(__file__).parent
_FILES = ("body.txt", "buttons.yaml", "whatsapp.yaml")


@dataclass(frozen=True)
class WhatsAppTemplate:
    name: str
    language: str
    parameters: tuple[jinja2.Template, ...]


@dataclass(frozen=True)
class TextTemplate:
    channel: str
    name: str
    version: str
    body: jinja2.Template | None
    buttons: tuple[tuple[jinja2.Template, jinja2.Template], ...] = ()
    whatsapp: WhatsAppTemplate | None = None

    def render(self, context: Mapping[str, Any], *, free_text: bool = True) -> RenderedText:
        """Render for one contact; `free_text` False means only a provider template may go."""
        try:
            if self.whatsapp is not None and (not free_text or self.body is None):
                parameters = tuple(" ".join(p.render(context).split()) for p in self.whatsapp.parameters)
                summary = f"[template {self.whatsapp.name}] " + " | ".join(parameters)
                return RenderedText(summary, self.version, (),
                                    ProviderTemplate(self.whatsapp.name, self.whatsapp.language, parameters))
            if self.body is None or not free_text:
                raise TemplateError(f"template {self.channel}/{self.name!r}: outside the 24-hour window "
                                    "only an approved whatsapp.yaml template may be sent")
            text = self.body.render(context).strip()
            rendered = ((t.render(context).strip(), u.render(context).strip()) for t, u in self.buttons)
            buttons = tuple(Button(label, url) for label, url in rendered if label and url)  # no link, no button
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {self.channel}/{self.name!r}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.channel}/{self.name!r}: {exc}") from None
        if not text:
            raise TemplateError(f"template {self.channel}/{self.name!r} rendered an empty message")
        return RenderedText(text, self.version, buttons)


def has_text_template(channel: str, name: str, root: Path = ROOT) -> bool:
    folder = root / channel / name
    return (folder / "body.txt").is_file() or (channel == "whatsapp" and (folder / "whatsapp.yaml").is_file())


def load_text_template(channel: str, name: str, root: Path = ROOT) -> TextTemplate:
    """Read the template's files (every call) and compile them (once per version)."""
    folder = root / channel / name
    sources = {f: (folder / f).read_text() for f in _FILES if (folder / f).is_file()}
    if "body.txt" not in sources and "whatsapp.yaml" not in sources:
        raise TemplateError(f"no {channel} template named {name!r} (templates/{channel}/{name}/body.txt)")
    return compile_text(channel, name, version_of(sources), tuple(sorted(sources.items())))


@lru_cache(maxsize=256)
def compile_text(channel: str, name: str, version: str, files: tuple[tuple[str, str], ...]) -> TextTemplate:
    sources = dict(files)
    where = f"template {channel}/{name!r}"
    try:
        body = TEXT_ENV.from_string(sources["body.txt"]) if "body.txt" in sources else None
        buttons = tuple(
            (TEXT_ENV.from_string(str(b["text"])), TEXT_ENV.from_string(str(b["url"])))
            for b in _yaml_list(sources.get("buttons.yaml"), where)
        )
        whatsapp = _whatsapp(sources.get("whatsapp.yaml"), where)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from None
    return TextTemplate(channel, name, version, body, buttons, whatsapp)


def _yaml_list(source: str | None, where: str) -> list[dict[str, Any]]:
    if source is None:
        return []
    data = yaml.safe_load(source) or []
    if not isinstance(data, list) or not all(isinstance(b, dict) and "text" in b and "url" in b for b in data):
        raise TemplateError(f"{where} (buttons.yaml): expected a list of {{text, url}}")
    return data


def _whatsapp(source: str | None, where: str) -> WhatsAppTemplate | None:
    if source is None:
        return None
    data = yaml.safe_load(source)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise TemplateError(f"{where} (whatsapp.yaml): expected {{name, language, parameters}}")
    parameters = data.get("parameters") or []
    if not isinstance(parameters, list):
        raise TemplateError(f"{where} (whatsapp.yaml): parameters must be a list")
    return WhatsAppTemplate(data["name"], str(data.get("language", "en")),
                            tuple(TEXT_ENV.from_string(str(p)) for p in parameters))

