"""Passwords are argon2id hashes, upgraded when the parameters change; only their length is a rule."""

from __future__ import annotations

from argon2 import PasswordHasher, Type

from engine.workspaces import passwords
from tests.engine.workspaces.conftest import PASSWORD, REAL_HASHER


def test_rapport_hashes_with_argon2id_at_no_less_than_the_owasp_minimum() -> None:
    """The hasher in use is argon2id with at least 19 MiB and 2 passes (OWASP's floor); RFC 9106's profile is more."""
    assert REAL_HASHER.type is Type.ID
    assert REAL_HASHER.memory_cost >= 19 * 1024 and REAL_HASHER.time_cost >= 2


def test_a_password_is_stored_as_an_argon2id_hash_that_only_it_matches() -> None:
    """The stored hash holds no trace of the password and matches nothing else."""
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert passwords.verify_password(stored, PASSWORD).ok
    assert not passwords.verify_password(stored, PASSWORD + "!").ok


def test_a_hash_made_with_older_parameters_is_replaced_on_a_match() -> None:
    """A right password checked against an older, weaker hash comes back with a hash made with today's parameters."""
    older = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    verified = passwords.verify_password(older, PASSWORD)
    assert verified.ok and verified.rehashed is not None
    assert not passwords.HASHER.check_needs_rehash(verified.rehashed)
    assert passwords.verify_password(verified.rehashed, PASSWORD) == passwords.Verified(ok=True)


def test_a_wrong_password_against_an_older_hash_is_not_rehashed() -> None:
    """Only the right password may produce the new hash."""
    older = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    assert passwords.verify_password(older, "guess guess guess") == passwords.Verified(ok=False)


def test_a_damaged_stored_hash_matches_nothing_and_raises_nothing() -> None:
    """A hash that is not argon2 (cut short, from another system) is a failed sign-in, not an error page."""
    assert not passwords.verify_password("$argon2id$v=19$m=8192", PASSWORD).ok
    assert not passwords.verify_password("plain text", PASSWORD).ok


def test_a_password_needs_twelve_characters_and_not_only_spaces() -> None:
    """Length is the rule: 11 characters are refused, 12 of anything but blanks are fine."""
    assert passwords.password_problem("a" * 11) == "use at least 12 characters"
    assert passwords.password_problem(" " * 12) == "a password cannot be only spaces"
    assert passwords.password_problem("a" * 2000) == "use at most 1024 characters"
    assert passwords.password_problem("aaaa bbbb cc") is None


def test_a_generated_password_is_long_and_never_the_same_twice() -> None:
    """Generated passwords pass the rules and differ each time."""
    generated = {passwords.generate_password() for _ in range(20)}
    assert len(generated) == 20
    assert all(len(p) == 24 and passwords.password_problem(p) is None for p in generated)
