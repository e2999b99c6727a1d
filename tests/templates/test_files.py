"""The seed templates behind the engine's port: versions stored on messages, read once per process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import TemplateError
from templates.emails import EMAIL_DIR, load_email_template
from templates.files import FileTemplates
from templates.texts import ROOT, load_text_template

CART = {
    "workspace": {"name": "Tea Shop"},
    "contact": {"first_name": "Ann"},
    "event": {"items": [{"name": "Sencha", "quantity": 2, "price": 12}], "total": "24.00", "currency": "EUR",
              "recovery_url": "https://shop.example/cart/abc"},
    "unsubscribe_url": "https://rapport.example/u", "preferences_url": "https://rapport.example/p",
}


def seed_copy(tmp_path: Path) -> Path:
    """The shipped abandoned-cart email and SMS, in a folder a test may edit."""
    shutil.copytree(EMAIL_DIR / "abandoned_cart", tmp_path / "email" / "abandoned_cart")
    shutil.copytree(ROOT / "sms" / "abandoned_cart", tmp_path / "sms" / "abandoned_cart")
    return tmp_path


def test_a_rendered_message_carries_the_version_of_the_files_it_came_from() -> None:
    """The version stored on each message is the digest of the template's files, for email and SMS alike."""
    seeds = FileTemplates()
    assert seeds.email("ws-1", "abandoned_cart", CART).version == load_email_template("abandoned_cart").version
    assert seeds.text("ws-1", "sms", "abandoned_cart", CART).version == \
        load_text_template("sms", "abandoned_cart").version


def test_every_workspace_is_sent_the_same_seed_templates() -> None:
    """Files are shared by all workspaces: two workspaces get the same text and the same version."""
    seeds = FileTemplates()
    assert seeds.email("ws-1", "abandoned_cart", CART) == seeds.email("ws-2", "abandoned_cart", CART)
    assert seeds.exists("ws-1", "telegram", "abandoned_cart") and seeds.exists("ws-2", "telegram", "abandoned_cart")


def test_a_version_the_files_no_longer_hold_exists_no_more_and_does_not_render(tmp_path: Path) -> None:
    """Files hold one version: the current one renders; asking for another is a clear TemplateError."""
    seeds = FileTemplates(seed_copy(tmp_path))
    current = seeds.email("ws-1", "abandoned_cart", CART).version
    assert seeds.exists("ws-1", "email", "abandoned_cart", version=current)
    assert not seeds.exists("ws-1", "email", "abandoned_cart", version="0123456789ab")
    assert seeds.email("ws-1", "abandoned_cart", CART, version=current).version == current
    with pytest.raises(TemplateError, match=r"template 'abandoned_cart' version 0123456789ab is no longer shipped"):
        seeds.email("ws-1", "abandoned_cart", CART, version="0123456789ab")
    with pytest.raises(TemplateError, match=r"template sms/'abandoned_cart' version 0123456789ab"):
        seeds.text("ws-1", "sms", "abandoned_cart", CART, version="0123456789ab")


def test_an_edited_template_is_sent_from_the_next_start_on(tmp_path: Path) -> None:
    """Seed templates change with a deploy: a running process keeps sending what it read first; a new one
    (the next start) sends the edited text, under a new version."""
    root = seed_copy(tmp_path)
    running = FileTemplates(root)
    before = running.text("ws-1", "sms", "abandoned_cart", CART)
    (root / "sms" / "abandoned_cart" / "body.txt").write_text("{{ workspace.name }}: your cart misses you.")

    assert running.text("ws-1", "sms", "abandoned_cart", CART) == before
    after = FileTemplates(root).text("ws-1", "sms", "abandoned_cart", CART)
    assert after.text == "Tea Shop: your cart misses you." and after.version != before.version


def test_a_missing_template_does_not_exist_and_rendering_it_says_which_one(tmp_path: Path) -> None:
    """No folder, no template: exists says so for every channel, and a send of it fails naming it."""
    seeds = FileTemplates(seed_copy(tmp_path))
    assert not seeds.exists("ws-1", "email", "nope") and not seeds.exists("ws-1", "viber", "abandoned_cart")
    with pytest.raises(TemplateError, match=r"template 'nope' is missing"):
        seeds.email("ws-1", "nope", CART)
    with pytest.raises(TemplateError, match=r"no viber template named 'abandoned_cart'"):
        seeds.text("ws-1", "viber", "abandoned_cart", CART)
