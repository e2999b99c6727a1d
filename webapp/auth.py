"""API authentication: a workspace API key, and for writes also a body signature.

Key look-ups are cached for a minute per process: the ingest path is hot, and a
revoked key stops working within that minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import request

from engine import signing
from engine.errors import AuthError
from engine.services.workspaces import hash_key, workspace_for_key
from webapp import context

CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, Caller]] = {}


@dataclass(frozen=True)
class Caller:
    workspace_id: str
    workspace_name: str
    signing_secret: str


def authenticate(*, signed: bool) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        raise AuthError("send the workspace API key as 'Authorization: Bearer <key>'")
    caller = _lookup(api_key.strip())
    if signed:
        signing.verify(request.headers.get("Rapport-Signature"), caller.signing_secret,
                       request.get_data(cache=True), now=context.now())
    return caller


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
