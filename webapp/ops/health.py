"""GET /healthz: 200 when the database and Redis answer, 503 naming what is down."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from webapp import context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    checks: dict[str, str] = {}
    try:
        with current_app.extensions["rapport"]["engine"].connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report any failure, never crash the probe
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        context.redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    down = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "ok" if not down else "down", "down": down, "checks": checks}
    return jsonify(body), 200 if not down else 503
