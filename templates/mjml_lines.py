"""Where an MJML document goes wrong, by line: the MJML compiler (mrml) says only that it cannot parse.

A marketer needs the line. Most MJML that does not compile has an `mj-` tag left open,
closed twice, closed in the wrong order or cut off before its `>`, or does not start with
`<mjml>`; this walks the `mjml`/`mj-*` tags and names the first such fault with its line.
HTML inside ending tags (mj-text, mj-button, mj-raw ...) is left alone: the compiler copies
it as it is. Jinja inside `{{ }}`, `{% %}` and `{# #}` is blanked first (newlines kept), so a
`<` or `>` in an expression is not taken for a tag.
"""

from __future__ import annotations

import re

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TAG = re.compile(r"""<(/?)(mjml|mj-[a-z-]+)((?:[^<>"']|"[^"]*"|'[^']*')*?)(/?)>""", re.IGNORECASE)
_TAG_START = re.compile(r"</?(?:mjml|mj-[a-z-]+)", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _blank(found: re.Match[str]) -> str:
    return "".join(c if c == "\n" else " " for c in found.group(0))


def first_fault(source: str) -> tuple[int, str] | None:
    """(line, what is wrong) for the first tag fault in `source`, or None when the tags are sound."""
    text = _COMMENT.sub(_blank, _JINJA.sub(_blank, source))

    def line_at(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    tags = list(_TAG.finditer(text))
    whole = {found.start() for found in tags}
    for start in _TAG_START.finditer(text):
        if start.start() not in whole:
            return line_at(start.start()), f"<{start.group(0).lstrip('<')}> is not closed with '>'"
    if not tags or tags[0].group(2).lower() != "mjml" or tags[0].group(1):
        return (line_at(tags[0].start()) if tags else 1), "an MJML document starts with <mjml>"
    open_tags: list[tuple[str, int]] = []
    for found in tags:
        closing, name, self_closing = found.group(1), found.group(2).lower(), found.group(4)
        line = line_at(found.start())
        if self_closing:
            continue
        if not closing:
            open_tags.append((name, line))
            continue
        if open_tags and open_tags[-1][0] == name:
            open_tags.pop()
        elif any(opened == name for opened, _ in open_tags):
            inner, opened_on = open_tags[-1]
            return opened_on, f"<{inner}> (line {opened_on}) is not closed before </{name}> (line {line})"
        else:
            return line, f"</{name}> closes no open <{name}>"
    if open_tags:
        name, opened_on = open_tags[-1]
        return opened_on, f"<{name}> is never closed"
    return None
