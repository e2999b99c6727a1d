"""JSON errors shared by the API blueprints: one shape, {"error", "message", ...}."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from engine.errors import AuthError, MalformedJson, NotFound, UnstorableJson


class BadJson(Exception):
    pass


def error(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify(error=code, message=message, **extra), status


def unauthorized(exc: AuthError) -> Any:
    response, status = error(401, "unauthorized", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
    return response, status


def not_found(exc: NotFound) -> Any:
    return error(404, "not_found", str(exc))


def bad_json(exc: BadJson) -> Any:
    return error(400, "malformed_json", f"the body is not valid JSON: {exc}")


def malformed_json(exc: MalformedJson) -> Any:
    return error(400, "malformed_json", f"the body cannot be read as JSON: {exc}")


def unstorable_json(exc: UnstorableJson) -> Any:
    return error(422, "invalid_json", "the body holds values that cannot be stored", errors=exc.errors)


def register_api_errors(bp: Blueprint) -> None:
    bp.register_error_handler(AuthError, unauthorized)
    bp.register_error_handler(NotFound, not_found)
    bp.register_error_handler(BadJson, bad_json)
    bp.register_error_handler(MalformedJson, malformed_json)
    bp.register_error_handler(UnstorableJson, unstorable_json)
