"""Webhooks from shop platforms: POST /api/v1/webhooks/shopify|woocommerce/<workspace>.

Signed with the shop's own secret (`rapport workspace connect`), not the API key.
Answers: 202 mapped (events stored) or unmapped (stored for inspection, with a
warning; also a body holding values that cannot be stored); 200 for a repeat delivery,
a deliberately ignored one, or WooCommerce's ping; 401 for a missing or wrong signature;
400 for a body nested too deeply; 404 for an unknown workspace.
"""

from __future__ import annotations

from typing import Any, assert_never

from flask import Blueprint, jsonify, request

from engine.errors import AuthError, NotFound, TooDeepJson
from engine.shops import shopify, woocommerce
from engine.shops.webhooks import Delivery, Outcome, Platform, receive_webhook
from webapp import context

bp = Blueprint("shop_webhooks", __name__, url_prefix="/api/v1/webhooks")


@bp.errorhandler(AuthError)
def _unauthorized(exc: AuthError) -> Any:
    return jsonify(error="unauthorized", message=str(exc)), 401


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return jsonify(error="not_found", message="no such webhook endpoint"), 404


@bp.errorhandler(TooDeepJson)
def _too_deep(exc: TooDeepJson) -> Any:
    return jsonify(error="malformed_json", message=f"the body cannot be read as JSON: {exc}"), 400


@bp.post("/shopify/<workspace_id>")
def shopify_webhook(workspace_id: str) -> Any:
    return _receive(shopify.PLATFORM, workspace_id)


@bp.post("/woocommerce/<workspace_id>")
def woocommerce_webhook(workspace_id: str) -> Any:
    return _receive(woocommerce.PLATFORM, workspace_id)


def _receive(platform: Platform, workspace_id: str) -> Any:
    delivery = Delivery(
        delivery_id=request.headers.get(platform.delivery_header),
        topic=request.headers.get(platform.topic_header),
        signature=request.headers.get(platform.signature_header),
        body=request.get_data(cache=False),
        event_id=request.headers.get(platform.event_header) if platform.event_header else None,
    )
    with context.sessions().begin() as session:
        outcome = receive_webhook(session, workspace_id, platform, delivery, now=context.now())
    return _render(outcome)


def _render(outcome: Outcome) -> Any:
    match outcome.status:
        case "mapped":
            return jsonify(accepted=True, event_ids=list(outcome.event_ids)), 202
        case "unmapped":
            return jsonify(accepted=False, warning=outcome.note), 202
        case "ignored":
            return jsonify(accepted=False, ignored=True, reason=outcome.note), 200
        case "duplicate":
            return jsonify(duplicate=True), 200
        case "ping":
            return jsonify(ping=True), 200
        case _:
            assert_never(outcome.status)
