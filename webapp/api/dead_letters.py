"""GET /api/v1/dead-letters: the workspace's items that kept failing and were set aside.

Newest first, paged by `before` (the `next_before` of the previous page). `status`
picks `dead` (set aside, the default), `failing` (still being retried), `resolved`
(went through later) or `all`. Retrying is an operator's act: `rapport dead-letters retry`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from engine.batches import dead_letters
from engine.errors import FieldErrors
from webapp import context
from webapp.api.auth import authenticate
from webapp.api.errors import error, register_api_errors

bp = Blueprint("dead_letters_api", __name__, url_prefix="/api/v1")
register_api_errors(bp)
MAX_LIMIT = 500
STATUS_CHOICES = (*dead_letters.STATUSES, "all")


@bp.errorhandler(FieldErrors)
def _invalid(exc: FieldErrors) -> Any:
    return error(422, "invalid_query", "the query has invalid parameters", errors=exc.errors)


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise FieldErrors([{"field": name, "message": f"must be a whole number from {low} to {high}"}])
    return int(raw)


@bp.get("/dead-letters")
def list_dead_letters() -> Any:
    caller = authenticate()
    status = request.args.get("status", dead_letters.DEAD)
    if status not in STATUS_CHOICES:
        raise FieldErrors([{"field": "status", "message": f"must be one of {', '.join(STATUS_CHOICES)}"}])
    limit = _int_arg("limit", 50, 1, MAX_LIMIT) or 50
    before = _int_arg("before", None, 1, 2**63 - 1)
    with context.sessions()() as session:
        page = dead_letters.list_dead_letters(session, caller.workspace_id, status=None if status == "all" else status,
                                              before=before, limit=limit)
    return jsonify(dead_letters=page.letters, next_before=page.next_before)
