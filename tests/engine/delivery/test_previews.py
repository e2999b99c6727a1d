"""Previews without tracking (engine.delivery.previews): the pixel gone, tracked links back to their destination."""

from __future__ import annotations

from engine.delivery.previews import html_without_tracking, meta_without_tracking, text_without_tracking
from engine.links.tokens import click_url, message_links

SECRET = "preview-secret"
BASE = "https://rapport.example"
SHOP = "https://shop.example/p/1?a=1&b=2"


def tracked(url: str = SHOP, secret: str = SECRET) -> str:
    return click_url(secret, BASE, workspace_id="ws_1", message_id=7, url=url)


def pixel() -> str:
    return message_links(SECRET, BASE, workspace_id="ws_1", contact_id=3, message_id=7).open_pixel_url


def test_the_pixel_tag_is_removed_whatever_its_attribute_order_and_quotes() -> None:
    """Double or single quotes, src first or last, a '>' inside another attribute: the whole tag goes."""
    for tag in (f'<img src="{pixel()}" width="1" height="1" alt="">', f"<IMG alt='a>b' SRC='{pixel()}'>",
                f'<img width="1" src="{pixel()}"/>'):
        assert html_without_tracking(f"<p>Hi</p>{tag}<img src=\"https://cdn.example/a.png\">", SECRET) == (
            '<p>Hi</p><img src="https://cdn.example/a.png">')


def test_a_tracked_link_leads_to_its_destination_escaped_for_html() -> None:
    """The href becomes the signed URL, with & written as &amp;."""
    html = f'<a href="{tracked()}">Shop</a>'
    assert html_without_tracking(html, SECRET) == '<a href="https://shop.example/p/1?a=1&amp;b=2">Shop</a>'


def test_a_tracked_link_that_is_not_ours_leads_nowhere() -> None:
    """A token signed with another secret is not followed to wherever it claims."""
    assert html_without_tracking(f'<a href="{tracked(secret="other")}">x</a>', SECRET) == '<a href="#">x</a>'


def test_text_and_buttons_lose_their_tracking_too() -> None:
    """An SMS body and a messenger button's URL read the destination."""
    assert text_without_tracking(f"Your cart: {tracked()} Reply STOP", SECRET) == f"Your cart: {SHOP} Reply STOP"
    meta = {"provider": "telegram", "buttons": [{"text": "Open", "url": tracked()}], "count": 1}
    assert meta_without_tracking(meta, SECRET) == {"provider": "telegram", "buttons": [{"text": "Open", "url": SHOP}],
                                                   "count": 1}
