"""Pages for people at the shop: the home page, in embedded mode the outbox, and the workspace UI
(sign-in, the signed-in home, the activity log) behind accounts and roles."""

from __future__ import annotations

from flask import Blueprint

from webapp.ui import pages, sign_in, workspace

BLUEPRINTS: tuple[Blueprint, ...] = (pages.bp, sign_in.bp, workspace.bp)
