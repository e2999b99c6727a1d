"""The JSON API: events, contacts, journeys, message templates, channels, dead letters, shop and provider webhooks,
with its OpenAPI description. Every request is authenticated by a workspace key (webapp.api.auth)."""

from __future__ import annotations

from flask import Blueprint

from webapp.api import (
    channels,
    contacts,
    dead_letters,
    journey_drafts,
    journeys,
    provider_webhooks,
    shop_webhooks,
    templates,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    contacts.bp, journeys.bp, journey_drafts.bp, journeys.recipes_bp, channels.bp, dead_letters.bp, shop_webhooks.bp,
    provider_webhooks.bp, templates.bp,
)
