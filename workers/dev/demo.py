"""The demo shop: its workspace, journey, owner login and sample events, for `make run` and tests.

`var/demo.json` keeps the demo's credentials (API key, signing secret, and the owner's email
and password, readable by its owner only) so every `make run` can print how to sign in: this
is the embedded mode's one account, not how real accounts are kept (those are hashes only).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from engine.journeys.versions import create_journey
from engine.signing import sign
from engine.workspaces.accounts import Credentials, create_workspace
from engine.workspaces.audit import COMMAND_LINE
from engine.workspaces.passwords import generate_password, verify_password
from engine.workspaces.roles import Role
from engine.workspaces.users import add_user, change_password, find_user, workspaces_of
from templates.files import FileTemplates
from triggers import abandoned_cart

DEMO_NAME = "Demo Shop"
DEMO_WAIT_SECONDS = 30
DEMO_EMAIL = "owner@demo-shop.example"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


def create_demo_workspace(
    session: Session, name: str = DEMO_NAME, *, now: datetime, wait_seconds: int = DEMO_WAIT_SECONDS
) -> Credentials:
    credentials = create_workspace(session, name, now=now)
    create_journey(
        session, credentials.workspace_id, abandoned_cart.NAME,
        abandoned_cart.recipe(wait_seconds=wait_seconds, messenger_nudge=True),
        templates=FileTemplates(), now=now,  # the demo sends the seed templates
        recipe="abandoned_cart",  # installing the recipe again would remind each cart twice
    )
    return credentials


def ensure_demo_login(session: Session, workspace_id: str, known: DemoLogin | None, *, now: datetime) -> DemoLogin:
    """The demo workspace's owner login: `known` while it still signs in, else a new password (the
    account is made, or its password reset, and it is made an owner of the workspace if it is not)."""
    user = find_user(session, DEMO_EMAIL)
    member = user is not None and any(w.workspace_id == workspace_id for w in workspaces_of(session, user.id))
    if user is not None and member and known is not None and verify_password(user.password_hash, known.password).ok:
        return known
    password = generate_password()
    if user is not None:
        change_password(session, user, password, now=now)
    if not member:
        add_user(session, workspace_id, DEMO_EMAIL, Role.OWNER, password=None if user else password, by=COMMAND_LINE,
                 now=now)
    return DemoLogin(DEMO_EMAIL, password)


def save_credentials(path: Path, credentials: Credentials, login: DemoLogin | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(credentials) | ({"login": asdict(login)} if login else {}), indent=2))
    path.chmod(0o600)


def load_credentials(path: Path) -> Credentials | None:
    saved = _load(path)
    return Credentials(saved["workspace_id"], saved["api_key"], saved["signing_secret"]) if saved else None


def load_login(path: Path) -> DemoLogin | None:
    """The demo owner's login as `make run` last printed it (a demo.json from before logins has none)."""
    login = (_load(path) or {}).get("login")
    return DemoLogin(login["email"], login["password"]) if isinstance(login, dict) else None


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def cart_event(cart_id: str | None = None, *, customer: str = "demo-customer-1",
               email: str = "ada@example.com") -> dict[str, Any]:
    cart_id = cart_id or "cart-" + secrets.token_hex(4)
    return {
        "id": "evt-" + secrets.token_hex(8),
        "type": "cart_updated",
        "contact": {"external_id": customer, "email": email, "first_name": "Ada", "last_name": "Lovelace",
                    "timezone": "Europe/London", "phone": "+44 7700 900123",
                    "consent": {"email": "opted_in", "sms": "opted_in"}},
        "properties": {
            "cart_id": cart_id,
            "currency": "EUR",
            "items": [
                {"name": "Ceramic pour-over dripper", "quantity": 1, "price": 34.0,
                 "url": "https://demo-shop.example/products/dripper"},
                {"name": "Single-origin beans, 250 g", "quantity": 2, "price": 12.5,
                 "url": "https://demo-shop.example/products/beans"},
            ],
            "total": 59.0,
            "recovery_url": f"https://demo-shop.example/cart/{cart_id}/recover",
        },
    }


def order_event(cart_id: str, *, customer: str = "demo-customer-1") -> dict[str, Any]:
    return {
        "id": "evt-" + secrets.token_hex(8),
        "type": "order_placed",
        "contact": {"external_id": customer},
        "properties": {"cart_id": cart_id, "order_id": "order-" + secrets.token_hex(4), "total": 59.0,
                       "currency": "EUR"},
    }


def post_signed(url: str, credentials: Credentials, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "Authorization": f"Bearer {credentials.api_key}",
        "Rapport-Signature": sign(credentials.signing_secret, body, int(time.time())),
    })
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
