"""The dispatch bench's audiences: contacts with one scheduled message each, inserted with SQL.

Each contact has a name (some not ASCII), and its message the context a journey's
abandoned-cart step would have stored: the contact, the cart event (3 items, total,
recovery link) and the workspace. One INSERT ... SELECT per table: 100,000 rows in a
few seconds, so the bench spends its time on dispatch.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from engine.delivery.outgoing import build
from engine.delivery.ports import Channels
from engine.settings import Settings
from engine.store.models import Message
from templates.files import FileTemplates
from workers.channels.email.mime import build_mime, domain_of, envelope_address

CONSENT = {"email": '{"email": "opted_in"}', "sms": '{"sms": "opted_in"}', "telegram": '{"telegram": "opted_in"}'}
CONTACTS_SQL = """
INSERT INTO contacts (workspace_id, external_id, email, phone, first_name, last_name, timezone, consent, attributes,
                      messenger_ids, created_at, updated_at)
SELECT :ws, 'c' || g, 'contact' || g || '@example.com', '+49151' || lpad(g::text, 8, '0'),
       (ARRAY['Zoë', 'Ada', 'Jürgen', 'Анна', 'Grace', 'Łukasz', 'Mei', 'Olu'])[1 + g % 8], 'Bench', 'Europe/Berlin',
       CAST(:consent AS jsonb), CAST('{}' AS jsonb), jsonb_build_object('telegram', (100000000 + g)::text), :now, :now
FROM generate_series(1, :n) AS g
"""
MESSAGES_SQL = """
INSERT INTO messages (workspace_id, contact_id, channel, template, to_address, context, status, attempts,
                      scheduled_at, enqueued_at, created_at, transactional, fallback, meta)
SELECT c.workspace_id, c.id, CAST(:channel AS varchar), 'abandoned_cart',
       CASE CAST(:channel AS varchar) WHEN 'email' THEN c.email WHEN 'sms' THEN c.phone
            ELSE c.messenger_ids ->> CAST(:channel AS varchar) END,
       jsonb_build_object(
         'contact', jsonb_build_object('external_id', c.external_id, 'email', c.email, 'first_name', c.first_name,
                                       'last_name', c.last_name, 'locale', NULL, 'attributes', c.attributes,
                                       'loyalty_tier', NULL),
         'event', jsonb_build_object(
           'cart_id', 'cart-' || c.id, 'currency', 'EUR', 'total', 57.5 + c.id % 50,
           'recovery_url', 'https://shop.example/cart/recover/' || c.id || '?utm_source=rapport',
           'items', jsonb_build_array(
             jsonb_build_object('name', (ARRAY['Ceramic dripper', 'Linen apron', 'Oak tray'])[1 + c.id % 3],
                                'quantity', 1 + c.id % 2, 'price', 19.5),
             jsonb_build_object('name', 'Organic coffee beans, 1 kg', 'quantity', 2, 'price', 14),
             jsonb_build_object('name', 'Glass carafe — 800 ml', 'quantity', 1, 'price', 24 + c.id % 50))),
         'workspace', jsonb_build_object('id', w.id, 'name', w.name)),
       'scheduled', 0, :due, :now, :now, false, CAST('{}' AS jsonb), CAST('{}' AS jsonb)
FROM contacts c JOIN workspaces w ON w.id = c.workspace_id
WHERE c.workspace_id = :ws
ORDER BY c.id
"""
NO_QUIET_HOURS = '{"quiet_hours": {"sms": null, "telegram": null, "whatsapp": null, "viber": null}}'


def insert_audience(engine: Engine, workspace_id: str, count: int, *, channel: str, now: datetime) -> list[int]:
    """`count` contacts with one due message each on `channel`; returns the message ids in order.

    Quiet hours are off in the workspace: the bench may run at night, and a deferred
    text message is not what it measures.
    """
    params = {"ws": workspace_id, "now": now, "n": count, "channel": channel, "consent": CONSENT[channel],
              "due": now - timedelta(minutes=1)}
    with engine.begin() as conn:
        conn.execute(text("UPDATE workspaces SET settings = CAST(:s AS jsonb) WHERE id = :ws"),
                     {"s": NO_QUIET_HOURS, "ws": workspace_id})
        conn.execute(text(CONTACTS_SQL), params)
        conn.execute(text(MESSAGES_SQL), params)
        ids = list(conn.execute(text("SELECT id FROM messages WHERE workspace_id = :ws ORDER BY id"),
                                {"ws": workspace_id}).scalars())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE contacts, messages"))  # as autovacuum would after such a load
    return ids


def prerendered_email(env: dict[str, str]) -> tuple[bytes, tuple[str, str]]:
    """One message as the workers build it (same template, links, headers, MIME); and its envelope."""
    settings = Settings.from_env(env)
    channels = Channels(senders={}, webhook=None,  # type: ignore[arg-type]  # not used for email
                        mail_from=settings.mail_from, base_url=settings.base_url, link_secret=settings.secret_key,
                        bounce_domain=settings.bounce_domain)
    context: dict[str, Any] = {
        "contact": {"external_id": "c1", "email": "contact1@example.com", "first_name": "Zoë", "last_name": "Bench",
                    "locale": None, "attributes": {}, "loyalty_tier": None},
        "event": {"cart_id": "cart-1", "currency": "EUR", "total": 58.5,
                  "recovery_url": "https://shop.example/cart/recover/1?utm_source=rapport",
                  "items": [{"name": "Linen apron", "quantity": 2, "price": 19.5},
                            {"name": "Organic coffee beans, 1 kg", "quantity": 2, "price": 14},
                            {"name": "Glass carafe — 800 ml", "quantity": 1, "price": 25}]},
        "workspace": {"id": "baseline", "name": "Bench baseline"},
    }
    message = Message(id=1, workspace_id="baseline", contact_id=1, channel="email", template="abandoned_cart",
                      to_address="contact1@example.com", context=context, transactional=False, fallback={}, meta={})
    outgoing = build(message, channels, FileTemplates(), signing_secret="x", last_inbound={},
                     now=datetime.now().astimezone()).outgoing
    raw = build_mime(outgoing, f"<1.{secrets.token_hex(8)}@{domain_of(outgoing.sender)}>")
    return raw, (envelope_address(outgoing.return_path or outgoing.sender), envelope_address(outgoing.to))
