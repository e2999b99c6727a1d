"""Pages for people at the shop: the home page and, in embedded mode, the outbox."""

from __future__ import annotations

from flask import Blueprint

from webapp.ui import pages

BLUEPRINTS: tuple[Blueprint, ...] = (pages.bp,)
