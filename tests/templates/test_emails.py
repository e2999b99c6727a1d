"""Email templates: MJML compiled once per version, Jinja in a strict sandbox per recipient."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.errors import TemplateError
from templates.emails import EMAIL_DIR, compile_email, load_email_template
from templates.sandbox import format_money

RECOVERY_URL = "https://shop.example/cart/c-1?token=abc&utm_source=rapport"
MINIMAL_MJML = "<mjml><mj-body><mj-section><mj-column><mj-text>{}</mj-text></mj-column></mj-section></mj-body></mjml>"


def cart_context(**contact: Any) -> dict[str, Any]:
    return {
        "workspace": {"name": "Demo Shop"},
        "contact": {"first_name": "Zoë", **contact},
        "event": {
            "cart_id": "c-1",
            "currency": "EUR",
            "items": [
                {"name": "Espresso cup", "quantity": 2, "price": 12.5},
                {"name": "Coffee beans 1 kg", "price": "24"},
            ],
            "total": 49,
            "recovery_url": RECOVERY_URL,
        },
    }


def write_template(directory: Path, name: str, *, subject: str = "Hello", mjml: str = MINIMAL_MJML.format("Hi"),
                   text: str = "Hi") -> Path:
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text(subject)
    (folder / "body.mjml").write_text(mjml)
    (folder / "body.txt").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (12.5, "EUR", "€12.50"),
        ("24", "usd", "$24.00"),
        (1234.5, "GBP", "£1,234.50"),
        (12.5, "CHF", "12.50 CHF"),
        (12.5, "chf", "12.50 CHF"),
        (12.5, None, "12.50"),
        ("n/a", "EUR", "n/a"),
    ],
)
def test_format_money_shows_symbols_for_known_currencies_and_keeps_other_codes(
    amount: Any, currency: str | None, expected: str
) -> None:
    """Two decimals, a symbol for known currencies, the code after the amount otherwise, non-numbers as given."""
    assert format_money(amount, currency) == expected


def test_the_abandoned_cart_subject_greets_the_contact_by_first_name() -> None:
    """The subject is one line with the first name, and falls back to a greeting without it."""
    template = load_email_template("abandoned_cart")

    assert template.render(cart_context()).subject == "Zoë, you left something in your cart"
    assert template.render(cart_context(first_name=None)).subject == "You left something in your cart"


def test_the_abandoned_cart_text_lists_each_item_with_quantity_and_price_and_the_raw_link() -> None:
    """The text part lists each item as "2 × €12.50 = €25.00" (one alone as its price), the total and the link."""
    text = load_email_template("abandoned_cart").render(cart_context()).text

    assert "- Espresso cup: 2 × €12.50 = €25.00" in text
    assert "- Coffee beans 1 kg: €24.00" in text
    assert "Total: €49.00" in text
    assert f"Return to your cart: {RECOVERY_URL}" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_the_abandoned_cart_html_shows_each_item_and_an_escaped_recovery_link() -> None:
    """The HTML has every item, quantity × unit price and the line total, and the link with & escaped as &amp;."""
    html = load_email_template("abandoned_cart").render(cart_context()).html

    for fragment in ("Espresso cup", "2 × €12.50", "€25.00", "Coffee beans 1 kg", "1 × €24.00", "€24.00",
                     "Total: €49.00"):
        assert fragment in html
    assert 'href="https://shop.example/cart/c-1?token=abc&amp;utm_source=rapport"' in html
    assert RECOVERY_URL not in html
    assert "{{" not in html and "{%" not in html  # every Jinja tag survived MJML and was rendered


def test_an_unknown_currency_code_is_kept_in_the_rendered_prices() -> None:
    """A cart in CHF shows "12.50 CHF", not a wrong symbol."""
    context = cart_context()
    context["event"]["currency"] = "CHF"

    text = load_email_template("abandoned_cart").render(context).text

    assert "- Espresso cup: 2 × 12.50 CHF = 25.00 CHF" in text


def test_contact_provided_values_are_escaped_in_the_html() -> None:
    """A first name with a <script> tag appears escaped in the HTML, never as markup."""
    html = load_email_template("abandoned_cart").render(cart_context(first_name="<script>alert(1)</script>")).html

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_missing_variable_in_the_deployed_template_names_template_part_and_variable() -> None:
    """A cart event without recovery_url fails (no blank link is sent) and the error says where."""
    context = cart_context()
    del context["event"]["recovery_url"]

    with pytest.raises(TemplateError) as caught:
        load_email_template("abandoned_cart").render(context)

    message = str(caught.value)
    assert "'abandoned_cart'" in message and "(html)" in message and "recovery_url" in message


@pytest.mark.parametrize("part", ["subject", "html", "text"])
def test_a_missing_variable_is_reported_with_the_part_that_uses_it(tmp_path: Path, part: str) -> None:
    """Each part is rendered strictly: the error names the template, the failing part and the variable."""
    write_template(tmp_path, "strict", subject="{{ in_subject }}", mjml=MINIMAL_MJML.format("{{ in_html }}"),
                   text="{{ in_text }}")
    context = {"in_subject": "s", "in_html": "h", "in_text": "t"}
    del context[f"in_{part}"]

    with pytest.raises(TemplateError) as caught:
        load_email_template("strict", directory=tmp_path).render(context)

    assert str(caught.value) == f"template 'strict' ({part}): 'in_{part}' is undefined"


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ contact.__class__ }}",
    ],
)
@pytest.mark.parametrize("part", ["subject", "text"])
def test_the_sandbox_refuses_access_to_python_internals(tmp_path: Path, expression: str, part: str) -> None:
    """A template reaching for dunder attributes fails with a TemplateError instead of exposing Python."""
    write_template(tmp_path, "evil", **{part: expression})

    with pytest.raises(TemplateError, match=r"template 'evil' \((subject|text)\): access to attribute .* is unsafe"):
        load_email_template("evil", directory=tmp_path).render({"contact": {"first_name": "Zoë"}})


@pytest.mark.parametrize("mjml", ["<mjml><mj-body><mj-section>", "not mjml at all", ""])
def test_invalid_mjml_raises_a_template_error_naming_the_body(tmp_path: Path, mjml: str) -> None:
    """MJML that does not compile is reported as such when the template is loaded, not at send time."""
    write_template(tmp_path, "broken_mjml", mjml=mjml)

    with pytest.raises(TemplateError, match=r"template 'broken_mjml' \(body.mjml\): MJML does not compile"):
        load_email_template("broken_mjml", directory=tmp_path)


@pytest.mark.parametrize(
    "files",
    [
        {"subject": "{% if contact.first_name %}Hi"},
        {"text": "line one\n{{ contact.first_name }"},
        {"mjml": MINIMAL_MJML.format("{% for item in items %}{{ item }}")},
    ],
    ids=["subject", "text", "mjml"],
)
def test_invalid_jinja_syntax_raises_a_template_error_with_the_line(tmp_path: Path, files: dict[str, str]) -> None:
    """A Jinja syntax error in any file is reported at load time with its line."""
    write_template(tmp_path, "broken_jinja", **files)

    with pytest.raises(TemplateError, match=r"template 'broken_jinja': line \d+: "):
        load_email_template("broken_jinja", directory=tmp_path)


def test_a_template_missing_a_file_names_the_file(tmp_path: Path) -> None:
    """A folder without body.txt is refused with the missing file's name."""
    (write_template(tmp_path, "incomplete") / "body.txt").unlink()

    with pytest.raises(TemplateError, match=r"template 'incomplete' is missing body.txt"):
        load_email_template("incomplete", directory=tmp_path)


def test_the_mjml_compile_is_cached_per_template_version(tmp_path: Path) -> None:
    """Loading the same files again reuses the compiled template; changing a file makes a new version."""
    shutil.copytree(EMAIL_DIR / "abandoned_cart", tmp_path / "cart")
    first = load_email_template("cart", directory=tmp_path)
    hits, misses = compile_email.cache_info().hits, compile_email.cache_info().misses

    again = load_email_template("cart", directory=tmp_path)

    assert again is first
    assert compile_email.cache_info().hits == hits + 1
    assert compile_email.cache_info().misses == misses

    (tmp_path / "cart" / "body.txt").write_text("Your cart at {{ workspace.name }} is waiting.\n")
    edited = load_email_template("cart", directory=tmp_path)

    assert edited.version != first.version
    assert compile_email.cache_info().misses == misses + 1
    assert edited.render(cart_context()).text == "Your cart at Demo Shop is waiting.\n"


def test_the_template_version_does_not_depend_on_where_the_folder_lives(tmp_path: Path) -> None:
    """The version is a digest of the files' contents, so a copy of a template has the same version."""
    shutil.copytree(EMAIL_DIR / "abandoned_cart", tmp_path / "abandoned_cart")

    assert load_email_template("abandoned_cart", directory=tmp_path).version == \
        load_email_template("abandoned_cart").version
