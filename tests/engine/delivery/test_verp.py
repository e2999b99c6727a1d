"""Signed VERP bounce addresses: each names its message, and nobody else can make one."""

from __future__ import annotations

import pytest

from engine.delivery.verp import bounce_address, parse_bounce_address

SECRET = "verp-test-secret"


def test_a_bounce_address_names_its_message_and_reads_back() -> None:
    """bounce+<id>-<sig>@domain: the id comes back from the address, signature checked."""
    address = bounce_address(SECRET, 42, "bounces.shop.example")

    local, _, domain = address.partition("@")
    assert domain == "bounces.shop.example"
    assert local.startswith("bounce+42-")
    assert parse_bounce_address(SECRET, address) == 42


def test_the_address_reads_back_as_an_smtp_envelope_gives_it() -> None:
    """Angle brackets, surrounding spaces and an MTA that upper-cases the local part do not matter."""
    address = bounce_address(SECRET, 9_007_199_254_740_993, "b.example", local="returns")

    assert parse_bounce_address(SECRET, f" <{address}> ") == 9_007_199_254_740_993
    assert parse_bounce_address(SECRET, address.upper()) == 9_007_199_254_740_993


def test_an_address_is_the_same_every_time() -> None:
    """Deterministic: a retried send bounces to the same address."""
    assert bounce_address(SECRET, 7, "b.example") == bounce_address(SECRET, 7, "b.example")
    assert bounce_address(SECRET, 7, "b.example") != bounce_address(SECRET, 8, "b.example")


@pytest.mark.parametrize(
    "address",
    ["bounce+42-000000000000@b.example",  # a guessed signature
     "bounce+43-{sig}@b.example",  # another message's signature
     "bounce+42@b.example",  # no signature
     "bounce42-{sig}@b.example",  # no tag
     "bounce+x42-{sig}@b.example",  # not a number
     "bounce+-1-{sig}@b.example",
     "bounce+42-{sig}",  # no domain
     "zoe@example.com",
     "",
     "bounce+42-{sig}é@b.example"],
)
def test_a_forged_or_foreign_address_names_no_message(address: str) -> None:
    """A wrong or missing signature, or not a bounce address at all: None, never an id."""
    signature = bounce_address(SECRET, 42, "b.example").split("-", 1)[1].split("@")[0]

    assert parse_bounce_address(SECRET, address.format(sig=signature)) is None


def test_another_secret_does_not_verify() -> None:
    """An address made with one secret is not believed under another (another installation)."""
    assert parse_bounce_address("other-secret", bounce_address(SECRET, 42, "b.example")) is None


@pytest.mark.parametrize(("domain", "local"), [("", "bounce"), ("a@b", "bounce"), ("b.example", "a+b"),
                                               ("b.example", "")])
def test_a_malformed_domain_or_local_part_is_refused(domain: str, local: str) -> None:
    """The domain is bare and the local part has no '+': otherwise the address could not be read back."""
    with pytest.raises(ValueError):
        bounce_address(SECRET, 1, domain, local=local)
