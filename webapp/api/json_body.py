"""Request bodies, read by the one strict JSON reader (engine/strict_json.py) from the raw bytes.

Every view that takes JSON reads it here, from the same cached bytes the signature was
checked over: `json_body()` refuses a body with a value that cannot be stored (422 naming
the fields, via webapp.api.errors), `json_body_with_problems()` leaves the choice to a view
that can refuse part of a body (a batch refuses only its bad items). Not JSON at all, or
nested past engine.strict_json.MAX_DEPTH: 400.
"""

from __future__ import annotations

from typing import Any

from flask import request

from engine.strict_json import Problem, read_json, refuse_problems


def json_body_with_problems() -> tuple[Any, list[Problem]]:
    return read_json(request.get_data(cache=True))


def json_body() -> Any:
    value, problems = json_body_with_problems()
    refuse_problems(problems)
    return value

