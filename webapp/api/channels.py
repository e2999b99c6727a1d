"""Channels and delivery settings under /api/v1: what the operations page of the UI shows.

- GET  /api/v1/channels: each channel's circuit breaker (closed, open or half_open; since
  when, the last error, the next probe; engine/delivery/channel_health.py), whether this
  deployment has an adapter for it, and its last 24 hours of messages.
- POST /api/v1/channels/<channel>/pause: a person pauses a channel (held until resumed, never probed).
- POST /api/v1/channels/<channel>/resume: a person unpauses a channel, however it was paused.
- GET/PUT /api/v1/settings/delivery: quiet hours, frequency caps, attribution windows.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from engine.channels import CHANNELS
from engine.delivery import channel_health
from engine.delivery import settings as delivery_settings
from engine.errors import FieldErrors, NotFound
from engine.settings import Settings
from webapp import context
from webapp.api.auth import authenticate
from webapp.api.errors import BadJson, error, register_api_errors
from webapp.api.json_body import json_body

bp = Blueprint("channels_api", __name__, url_prefix="/api/v1")
register_api_errors(bp)

# The Settings fields that make each channel's adapter available (any one is enough).
ADAPTER_SETTINGS: dict[str, tuple[str, ...]] = {
    "sms": ("twilio_account_sid", "sms_gateway_url"),
    "telegram": ("telegram_bot_token",),
    "whatsapp": ("whatsapp_token",),
    "viber": ("viber_auth_token",),
}


@bp.errorhandler(FieldErrors)
def _invalid(exc: FieldErrors) -> Any:
    return error(422, "invalid_settings", "the delivery settings have invalid fields", errors=exc.errors)


def is_configured(settings: Settings, channel: str) -> bool:
    """Whether this deployment has credentials for the channel's adapter."""
    if channel == "email":
        return bool(settings.smtp_url)
    providers = getattr(settings, "providers", settings)
    return any(getattr(providers, name, None) for name in ADAPTER_SETTINGS.get(channel, ()))


def _channels_json(workspace_id: str, only: str | None = None) -> list[dict[str, Any]]:
    settings, now = context.settings(), context.now()
    with context.sessions()() as session:
        health = channel_health.channel_status(session, workspace_id)
        counts = channel_health.messages_by_status(session, workspace_id, now=now)
    return [
        {"channel": row["channel"], "configured": is_configured(settings, row["channel"]), **row,
         "messages_24h": counts.get(row["channel"], {})}
        for row in health
        if only is None or row["channel"] == only
    ]


def _known(channel: str) -> str:
    if channel not in CHANNELS:
        raise NotFound(f"no channel named {channel!r}; the channels are {', '.join(CHANNELS)}")
    return channel


@bp.get("/channels")
def list_channels() -> Any:
    caller = authenticate()
    return jsonify(channels=_channels_json(caller.workspace_id))


@bp.post("/channels/<channel>/pause")
def pause_channel(channel: str) -> Any:
    caller = authenticate()
    channel = _known(channel)
    with context.sessions().begin() as session:
        channel_health.pause(session, caller.workspace_id, channel, now=context.now())
    [status] = _channels_json(caller.workspace_id, only=channel)
    return jsonify(status)


@bp.post("/channels/<channel>/resume")
def resume_channel(channel: str) -> Any:
    caller = authenticate()
    channel = _known(channel)
    with context.sessions().begin() as session:
        channel_health.resume(session, caller.workspace_id, channel, now=context.now())
    [status] = _channels_json(caller.workspace_id, only=channel)
    return jsonify(status)


@bp.get("/settings/delivery")
def get_delivery_settings() -> Any:
    caller = authenticate()
    with context.sessions()() as session:
        return jsonify(delivery_settings.delivery_settings(session, caller.workspace_id))


@bp.put("/settings/delivery")
def put_delivery_settings() -> Any:
    caller = authenticate()
    body = json_body()
    if not isinstance(body, dict):
        raise BadJson("expected a JSON object with quiet_hours, frequency_caps and/or attribution")
    with context.sessions().begin() as session:
        return jsonify(delivery_settings.update_delivery_settings(session, caller.workspace_id, body))
