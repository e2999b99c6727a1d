"""Pages and links a contact reaches from a message: preferences, one-click unsubscribe,
subscribe forms, tracking redirects and pixels, review ratings. Signed links, no login."""

from __future__ import annotations

from flask import Blueprint

from webapp.public import preferences, reviews, subscribe, tracking

BLUEPRINTS: tuple[Blueprint, ...] = (preferences.bp, subscribe.bp, tracking.bp, reviews.bp)
