"""For operators: health checks and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint

from webapp.ops import health, metrics

BLUEPRINTS: tuple[Blueprint, ...] = (health.bp, metrics.bp)
