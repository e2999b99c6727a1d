"""Building the fake providers' HTTP answers."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def request_fields(request: Request) -> dict[str, Any]:
    """Parameters as HTTP APIs such as Telegram's take them: JSON body, form body or query string."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return {**request.args.to_dict(), **request.form.to_dict()}
