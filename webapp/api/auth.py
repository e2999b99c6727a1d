"""API authentication: a workspace API key, and for every write also a signature.

Every request under /api/v1 that a workspace key authorizes goes through `authenticate`;
a write (POST, PUT, PATCH, DELETE) must also carry a Rapport-Signature made with the
workspace's signing secret, whatever the view asked for, so a new write endpoint is
signed without saying so. The key alone may read. Event ingestion signs the raw body
(the documented shop integration); every other write signs method, path and body
(engine.signing.request_content), so a signature cannot be replayed on another path.
Shop and provider webhooks do not come here: they check their sender's own scheme.

Key look-ups are cached for a minute per process: the ingest path is hot, and a
revoked key stops working within that minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import request

from engine import signing
from engine.errors import AuthError
from engine.workspaces.accounts import hash_key, workspace_for_key
from webapp import context

CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, Caller]] = {}


@dataclass(frozen=True)
class Caller:
    workspace_id: str
    workspace_name: str
    signing_secret: str


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Event ingestion keeps the body-only signature that shops already send (README, "The event API").
BODY_SIGNED_PATHS = frozenset({"/api/v1/events", "/api/v1/events/batch"})


def authenticate(*, signed: bool = False) -> Caller:
    """The workspace whose key this request carries. Writes always need a signature too;
    `signed=True` asks for one on a read as well."""
    header = request.headers.get("Authorization", "")
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        raise AuthError("send the workspace API key as 'Authorization: Bearer <key>'")
    caller = _lookup(api_key.strip())
    if signed or request.method in WRITE_METHODS:
        _check_signature(caller.signing_secret)
    return caller


def _check_signature(secret: str) -> None:
    body = request.get_data(cache=True)
    contents = [signing.request_content(request.method, target, body) for target in _targets()]
    mismatch = (f"Rapport-Signature does not match: sign '<t>.{request.method} <path>\\n<body>' "
                "(the path as sent, with its query string)")
    if request.path in BODY_SIGNED_PATHS:
        contents.append(body)
        mismatch = "Rapport-Signature does not match the body"
    signing.verify_any(request.headers.get("Rapport-Signature"), secret, contents, now=context.now(),
                       mismatch=mismatch)


def _targets() -> list[str]:
    """The path with its query string, as the client may have signed it: as sent on the
    wire (percent-encoded), or decoded."""
    query = request.query_string.decode("latin-1")
    decoded = request.path + (f"?{query}" if query else "")
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or decoded
    return [decoded] if raw == decoded else [decoded, raw]


def _lookup(api_key: str) -> Caller:
    digest = hash_key(api_key)
    hit = _cache.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    with context.sessions()() as session:
        workspace = workspace_for_key(session, api_key)
        caller = Caller(workspace.id, workspace.name, workspace.signing_secret)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (time.monotonic() + CACHE_SECONDS, caller)
    return caller
