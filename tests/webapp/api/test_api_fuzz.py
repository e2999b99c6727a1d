"""The whole HTTP API fuzzed from its served OpenAPI spec (schemathesis), as a signed client would call it.

The app runs in-process behind a real HTTP server on the test's database and Redis; the
spec is read from /api/v1/openapi.json as served. Every request carries the workspace key
and a Rapport-Signature made over what is actually sent (the body for event ingestion;
method, path and body for every other write), so the fuzz reaches the views, not just the
401. Each operation gets a few dozen examples: no answer may be a 5xx, and every answer
must be one the spec lists, with the content type, headers and body schema it gives.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from engine.settings import Settings
from engine.signing import sign, sign_request
from engine.workspaces.accounts import Credentials, create_workspace
from tests.conftest import settle_workspace
from tests.webapp.conftest import close_app
from webapp.api.auth import BODY_SIGNED_PATHS
from webapp.api.openapi import SPEC
from webapp.app import create_app

EXAMPLES_PER_OPERATION = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

pytestmark = pytest.mark.fuzz


class SignedRequests(requests.auth.AuthBase):
    """The workspace key, and a signature over the bytes the request really carries."""

    def __init__(self, credentials: Credentials):
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        timestamp = int(time.time())
        secret = self.credentials.signing_secret
        if urlsplit(request.url).path in BODY_SIGNED_PATHS:
            signature = sign(secret, body, timestamp)
        else:
            signature = sign_request(secret, str(request.method), request.path_url, body, timestamp)
        request.headers["Authorization"] = f"Bearer {self.credentials.api_key}"
        request.headers["Rapport-Signature"] = signature
        return request


OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items()
              for method in item if method in ("get", "put", "post", "delete", "patch")]
# Invalid requests need something to get wrong: a parameter or a body.
TAKES_INPUT = {(method.upper(), path) for path, item in SPEC["paths"].items() for method, operation in item.items()
               if method != "parameters" and (item.get("parameters") or operation.get("parameters")
                                              or operation.get("requestBody"))}


@pytest.fixture(scope="module")
def served_api(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[str, Credentials]]:
    """The app on a real HTTP server (real clock: signatures are checked against it) and a workspace."""
    namespace = f"fuzz-{secrets.token_hex(4)}"
    settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), database_url=database_url, redis_url=redis_url,
                        smtp_url=None, secret_key="fuzz-secret-key", base_url="http://127.0.0.1:8000", port=8000,
                        mail_from="Fuzz Shop <shop@example.com>", namespace=namespace, outbox_page=True)
    app = create_app(settings)
    sessions = app.extensions["rapport"]["sessions"]
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with sessions.begin() as session:
        credentials = create_workspace(session, "Fuzzed Shop", now=datetime.now(UTC))
    try:
        yield f"http://127.0.0.1:{server.server_port}", credentials
    finally:
        server.shutdown()
        thread.join(10)
        settle_workspace(sessions, credentials.workspace_id, datetime.now(UTC))
        redis = app.extensions["rapport"]["redis"]
        keys = list(redis.scan_iter(f"*{namespace}*", count=1000))
        if keys:
            redis.delete(*keys)
        close_app(app)


@pytest.fixture(scope="module")
def served_schema(served_api: tuple[str, Credentials]) -> Any:
    """The spec as /api/v1/openapi.json serves it, read once."""
    base_url, _ = served_api
    return schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_within_its_spec_and_never_5xx(
    method: str, path: str, mode: GenerationMode, served_schema: Any, served_api: tuple[str, Credentials]
) -> None:
    """Fuzzed, signed requests to the operation, as the spec allows them and as it does not: no 5xx,
    every answer as the spec describes it."""
    if mode is GenerationMode.NEGATIVE and (method, path) not in TAKES_INPUT:
        pytest.skip("no parameter or body to make invalid")
    base_url, credentials = served_api
    operation = served_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def call_and_check(case: Any) -> None:
        with requests.Session() as session:
            session.auth = SignedRequests(credentials)
            response = case.call(base_url=base_url, session=session, timeout=30)
        case.validate_response(response, checks=CHECKS)

    call_and_check()
