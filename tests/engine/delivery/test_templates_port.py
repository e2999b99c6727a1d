"""The engine reads templates through its port, per workspace: routing asks it, outgoing renders with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.delivery.outgoing import build
from engine.delivery.policies import Recipient
from engine.delivery.ports import Channels
from engine.delivery.routing import plan_send
from engine.delivery.templates import RenderedEmail, RenderedText
from engine.store.models import Message, Workspace

NOON = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)  # outside every default quiet window


@dataclass
class WorkspaceTemplates:
    """Templates kept per workspace, as the database will keep them: {workspace: {(channel, name): text}}."""

    held: dict[str, dict[tuple[str, str], str]]
    rendered: list[tuple[str, str, str]] = field(default_factory=list)  # (workspace, channel, name)

    def exists(self, workspace_id: str, channel: str, name: str, version: str | None = None) -> bool:
        return (channel, name) in self.held.get(workspace_id, {})

    def email(self, workspace_id: str, name: str, context: Mapping[str, Any], *,
              version: str | None = None) -> RenderedEmail:
        self.rendered.append((workspace_id, "email", name))
        text = self.held[workspace_id][("email", name)].format(**context)
        return RenderedEmail(subject=text, html=f"<html><body><p>{text}</p></body></html>", text=text,
                             version=f"{workspace_id}-v1")

    def text(self, workspace_id: str, channel: str, name: str, context: Mapping[str, Any], *,
             free_text: bool = True, version: str | None = None) -> RenderedText:
        self.rendered.append((workspace_id, channel, name))
        return RenderedText(self.held[workspace_id][(channel, name)].format(**context), version=f"{workspace_id}-v1")


TEMPLATES = WorkspaceTemplates({
    "shop-a": {("sms", "reminder"): "A: cart waiting", ("email", "reminder"): "A: your cart, {first}"},
    "shop-b": {("email", "reminder"): "B: we kept your cart, {first}"},
})


def plan_for(workspace_id: str) -> tuple[str | None, str]:
    recipient = Recipient(email="ann@example.com", phone="+4915112345678",
                          consent={"sms": "opted_in", "email": "opted_in"})
    plan = plan_send(candidates=["sms", "email"], recipient=recipient, transactional=False, topic=None,
                     when_capped="defer", template="reminder", templates=TEMPLATES,
                     workspace=Workspace(id=workspace_id, settings={}), zone=ZoneInfo("UTC"),
                     suppressed=lambda channel, address: False, paused=set(), recent=lambda: [], now=NOON)
    return plan.channel, plan.detail


def test_a_channel_is_passed_over_in_the_workspace_that_lacks_its_template() -> None:
    """Shop A has an SMS version of the template and texts; shop B has only the email, so its send goes by email."""
    assert plan_for("shop-a") == ("sms", "sms: reminder")
    channel, detail = plan_for("shop-b")
    assert channel == "email" and "no sms template 'reminder'" in detail


def test_each_message_is_rendered_from_its_own_workspace_template_and_records_that_version() -> None:
    """The same template name renders each workspace's own text; the version the port names is stored."""
    channels = Channels(senders={}, webhook=None, mail_from="Shop <shop@example.com>")  # type: ignore[arg-type]
    built = {}
    for message_id, workspace_id in enumerate(("shop-a", "shop-b"), 1):
        message = Message(id=message_id, workspace_id=workspace_id, contact_id=1, channel="email",
                          template="reminder", to_address="ann@example.com", context={"first": "Ann"},
                          transactional=True, fallback={}, meta={})
        built[workspace_id] = build(message, channels, TEMPLATES, signing_secret="x", last_inbound={}, now=NOON)

    assert built["shop-a"].subject == "A: your cart, Ann" and built["shop-a"].template_version == "shop-a-v1"
    assert built["shop-b"].subject == "B: we kept your cart, Ann" and built["shop-b"].template_version == "shop-b-v1"
    assert TEMPLATES.rendered[-2:] == [("shop-a", "email", "reminder"), ("shop-b", "email", "reminder")]
