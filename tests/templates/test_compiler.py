"""Template parts are checked, digested and rendered as the seed files are, with errors at their line."""

from __future__ import annotations

import pytest

from engine.delivery.ports import Button
from engine.delivery.templates import TemplateParts
from engine.errors import InvalidTemplate
from templates.compiler import SandboxCompiler
from templates.files import FileTemplates

COMPILER = SandboxCompiler()
MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hi {{ contact.first_name }}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


def email(subject: str = "Hello {{ contact.first_name }}", body_mjml: str = MJML,
          body_text: str = "Hi {{ contact.first_name }}") -> TemplateParts:
    return TemplateParts(body_text=body_text, subject=subject, body_mjml=body_mjml)


def test_a_jinja_syntax_error_names_its_part_and_line() -> None:
    """An `if` left open on line 2 of the text body is reported there, in that part."""
    problems = COMPILER.problems("email", email(body_text="Hi\n{% if contact.first_name %}\nthere\n"))
    assert len(problems) == 1
    assert problems[0].field == "body_text" and problems[0].line is not None and problems[0].line >= 2
    assert "endif" in problems[0].message


def test_a_jinja_error_in_the_mjml_body_is_at_its_mjml_line() -> None:
    """The line is the one the marketer wrote in the MJML, not one of the compiled HTML."""
    broken = MJML.replace("Hi {{ contact.first_name }}", "Hi {{ contact.first_name }")
    [problem] = COMPILER.problems("email", email(body_mjml=broken))
    assert (problem.field, problem.line) == ("body_mjml", 5)


def test_mjml_that_does_not_compile_names_the_line_of_the_tag_left_open() -> None:
    """A <mj-column> never closed: the MJML error points at the line that opened it."""
    broken = MJML.replace("      </mj-column>\n", "")
    [problem] = COMPILER.problems("email", email(body_mjml=broken))
    assert problem.field == "body_mjml" and problem.line == 4
    assert "MJML does not compile" in problem.message and "mj-column" in problem.message


def test_a_button_with_a_syntax_error_is_named_by_its_index() -> None:
    """Telegram buttons are Jinja too: the second button's URL is the field at fault."""
    parts = TemplateParts(body_text="Your cart", buttons=(Button("Open", "{{ event.url }}"),
                                                          Button("Shop", "{{ event.shop_url")))
    [problem] = COMPILER.problems("telegram", parts)
    assert problem.field == "buttons.1.url" and problem.line == 1


def test_an_email_kept_unchanged_from_its_seed_has_the_seed_version() -> None:
    """The digest is over the same files as a seed folder's: the same text is the same version."""
    seed = COMPILER.seeds()[("email", "welcome")]
    assert COMPILER.digest("email", seed) == FileTemplates()._load_email("welcome").version
    assert COMPILER.digest("email", email()) != COMPILER.digest("email", email(subject="Hello"))


def test_every_seed_is_offered_as_parts_and_compiles() -> None:
    """The seeds a workspace starts from cover every channel's folders, and each one checks clean."""
    seeds = COMPILER.seeds()
    assert {channel for channel, _ in seeds} == {"email", "sms", "telegram", "whatsapp", "viber"}
    assert seeds[("whatsapp", "abandoned_cart")].provider_template is not None
    assert seeds[("telegram", "abandoned_cart")].buttons
    assert all(COMPILER.problems(channel, parts) == [] for (channel, _), parts in seeds.items())


def test_a_variable_the_render_was_not_given_is_named_with_its_line() -> None:
    """Strict: rendering without `event.recovery_url` is an error at the line of the MJML that uses it."""
    body = MJML.replace("Hi {{ contact.first_name }}", "Hi\n{{ event.recovery_url }}")
    with pytest.raises(InvalidTemplate) as raised:
        COMPILER.render("email", "cart", email(body_mjml=body), {"contact": {"first_name": "Ada"}, "event": {}})
    assert {"field": "body_mjml", "line": 6, "message": "'dict object' has no attribute 'recovery_url'"} in \
        raised.value.errors


def test_a_template_reaching_for_python_internals_is_refused() -> None:
    """The sandbox: attribute access to dunders fails the render instead of exposing the process."""
    with pytest.raises(InvalidTemplate) as raised:
        COMPILER.render("sms", "x", TemplateParts(body_text="{{ ''.__class__.__mro__ }}"), {})
    assert "unsafe" in str(raised.value)


def test_rendered_parts_carry_their_digest_as_version() -> None:
    """What a send stores on the message is the digest of the parts it rendered."""
    parts = TemplateParts(body_text="Hi {{ contact.first_name }}")
    rendered = COMPILER.render("sms", "hello", parts, {"contact": {"first_name": "Ada"}})
    assert rendered.text == "Hi Ada" and rendered.version == COMPILER.digest("sms", parts)
