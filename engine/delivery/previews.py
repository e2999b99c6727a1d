"""Our own previews of a sent message (the outbox page and API): tracking taken out.

A person looking at the outbox is not the recipient opening the email: the open pixel is
removed, so the preview loads nothing that counts an open, and every click-redirect link
is pointed straight at the URL it was signed for, so following it counts no click. A
tracked link whose token is not ours (another deployment's, a changed byte) leads nowhere.

Pure: no database, no web framework.
"""

from __future__ import annotations

import re
from html import escape as escape_html
from typing import Any

from engine.links.tokens import CLICK_PATH, OPEN_PATH, verify_click

_TOKEN = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
# An <img> start tag (quoted attribute values may hold '>') whose src is our open pixel.
_PIXEL_TAG = re.compile(
    r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*?\bsrc\s*=\s*["'][^"']*""" + re.escape(OPEN_PATH)
    + r"""[^"']*["'](?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_PIXEL_URL = re.compile(r"""https?://[^\s"'<>]*""" + re.escape(OPEN_PATH) + _TOKEN + r"\.gif")
_CLICK_URL = re.compile(r"""https?://[^\s"'<>]*""" + re.escape(CLICK_PATH) + f"({_TOKEN})")
NOWHERE = "#"


def html_without_tracking(html: str, secret: str) -> str:
    """`html` without the open pixel, its tracked links leading straight to their destination."""
    html = _PIXEL_TAG.sub("", html)
    html = _PIXEL_URL.sub("", html)  # a pixel named anywhere else (a CSS background, say)
    return _CLICK_URL.sub(lambda found: escape_html(_destination(found, secret), quote=True), html)


def text_without_tracking(text: str, secret: str) -> str:
    """Plain text (an SMS, a text part, a button's URL) with tracked links replaced by their destination."""
    return _CLICK_URL.sub(lambda found: _destination(found, secret), _PIXEL_URL.sub("", text))


def meta_without_tracking(meta: Any, secret: str) -> Any:
    """A capture's channel extras (link buttons, template parameters) with every tracked URL,
    however deep, replaced by its destination."""
    if isinstance(meta, str):
        return text_without_tracking(meta, secret)
    if isinstance(meta, dict):
        return {key: meta_without_tracking(value, secret) for key, value in meta.items()}
    if isinstance(meta, list):
        return [meta_without_tracking(value, secret) for value in meta]
    return meta


def _destination(found: re.Match[str], secret: str) -> str:
    ref = verify_click(secret, found.group(1))
    return ref.url if ref is not None else NOWHERE
