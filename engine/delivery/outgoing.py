"""Turn a message row into what its channel adapter sends: rendered, linked, addressed.

Links are signed at send time (unsubscribe, preferences, open pixel, click redirect,
rating links), so no secret is stored on the message. Email gets List-Unsubscribe and
List-Unsubscribe-Post (RFC 8058) and a VERP return path when a bounce domain is set;
WhatsApp goes as free text only inside the 24 hours after the contact last wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from engine.delivery.ports import Button, Channels, OutgoingMessage
from engine.delivery.templates import RenderedEmail, Templates
from engine.delivery.verp import bounce_address
from engine.links.reviews import review_links
from engine.links.tokens import MessageLinks, click_url, is_trackable, message_links, track_clicks
from engine.signing import sign
from engine.store.models import Message

WHATSAPP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Built:
    outgoing: OutgoingMessage
    summary: str  # for the timeline
    subject: str | None = None
    template_version: str | None = None


def build(message: Message, channels: Channels, templates: Templates, *, signing_secret: str,
          last_inbound: dict[str, Any], now: datetime) -> Built:
    """Raises TemplateError when the template is missing or names a variable it was not given."""
    if message.channel == "webhook":
        return _webhook(message, signing_secret, now=now)
    links = message_links(channels.link_secret, channels.base_url, workspace_id=message.workspace_id,
                          contact_id=message.contact_id, message_id=message.id) if channels.link_secret else None
    context = _context(message, channels, links)
    if message.channel == "email":
        return _email(message, channels, templates.email(message.workspace_id, message.template, context), links)
    free_text = message.channel != "whatsapp" or _window_open(last_inbound.get("whatsapp"), now)
    rendered = templates.text(message.workspace_id, message.channel, message.template, context, free_text=free_text)
    buttons = tuple(Button(b.text, _tracked(b.url, message, channels)) for b in rendered.buttons)
    outgoing = OutgoingMessage(
        message_id=message.id, workspace_id=message.workspace_id, channel=message.channel,
        to=message.to_address or "", text=rendered.text, buttons=buttons, template=rendered.provider_template,
        status_callback=f"{channels.base_url}/api/v1/providers/{message.channel}/{message.workspace_id}",
    )
    return Built(outgoing, f"{message.channel} to {message.to_address}: {_short(rendered.text)}",
                 None, rendered.version)


def _email(message: Message, channels: Channels, rendered: RenderedEmail, links: MessageLinks | None) -> Built:
    html, headers = rendered.html, {"X-Rapport-Workspace": message.workspace_id,
                                    "X-Rapport-Message": str(message.id)}
    return_path = ""
    if links is not None:
        html = track_clicks(html, channels.link_secret, channels.base_url, workspace_id=message.workspace_id,
                            message_id=message.id)
        html = _with_pixel(html, links.open_pixel_url)
        if not message.transactional:
            # Mail to unsubscribe@ the bounce domain reaches `rapport bounce-server`, which reads it.
            domain = channels.bounce_domain or _domain(channels.mail_from)
            headers["List-Unsubscribe"] = f"<{links.unsubscribe_url}>, <{links.mailto_unsubscribe(domain)}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if channels.bounce_domain:
            return_path = bounce_address(channels.link_secret, message.id, channels.bounce_domain)
    outgoing = OutgoingMessage(
        message_id=message.id, workspace_id=message.workspace_id, channel="email", to=message.to_address or "",
        text=rendered.text, subject=rendered.subject, html=html, sender=channels.mail_from, headers=headers,
        return_path=return_path,
    )
    return Built(outgoing, f"email to {message.to_address}: {rendered.subject}", rendered.subject, rendered.version)


def _webhook(message: Message, signing_secret: str, *, now: datetime) -> Built:
    body = json.dumps(message.context, default=str)
    headers = {"Content-Type": "application/json", "X-Rapport-Message": str(message.id),
               "Rapport-Signature": sign(signing_secret, body.encode(), int(now.timestamp()))}
    outgoing = OutgoingMessage(message_id=message.id, workspace_id=message.workspace_id, channel="webhook",
                               to=message.to_address or "", text=body, headers=headers)
    return Built(outgoing, f"POST {message.to_address}")


def _context(message: Message, channels: Channels, links: MessageLinks | None) -> dict[str, Any]:
    context = dict(message.context)
    if links is not None:
        context.setdefault("unsubscribe_url", links.unsubscribe_url)
        context.setdefault("preferences_url", links.preferences_url)
        order_id = (context.get("event") or {}).get("order_id")
        if order_id is not None:
            context["review_links"] = review_links(channels.link_secret, channels.base_url,
                                                   workspace_id=message.workspace_id, contact_id=message.contact_id,
                                                   order_id=str(order_id))
    else:  # no secret, no signed links: templates still render
        context.setdefault("unsubscribe_url", f"{channels.base_url}/")
        context.setdefault("preferences_url", f"{channels.base_url}/")
    return context


def _tracked(url: str, message: Message, channels: Channels) -> str:
    if not channels.link_secret or not is_trackable(url):
        return url
    return click_url(channels.link_secret, channels.base_url, workspace_id=message.workspace_id,
                     message_id=message.id, url=url)


def _with_pixel(html: str, pixel_url: str) -> str:
    tag = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:block;border:0;height:1px;width:1px">'
    at = html.rfind("</body>")
    return html[:at] + tag + html[at:] if at >= 0 else html + tag


def _window_open(last: Any, now: datetime) -> bool:
    if not isinstance(last, str):
        return False
    try:
        return now - datetime.fromisoformat(last) < WHATSAPP_WINDOW
    except ValueError:
        return False


@lru_cache(maxsize=64)  # parseaddr is slow, and the From address is the same for every message
def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "rapport.localhost"


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
