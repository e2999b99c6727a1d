"""Passwords: argon2id hashes, the rules a new password must meet, generated ones.

argon2-cffi's defaults (RFC 9106's low-memory profile: argon2id, 3 passes, 64 MiB) make
one guess cost an attacker who has the table what it costs us at sign-in, about 50 ms of
one core. When those parameters change in a later release, `verify` says so, and the
caller stores the new hash the same sign-in computes (no one has to reset anything).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12  # NIST SP 800-63B asks at least 8; a generated one has 24
MAX_LENGTH = 1024  # argon2 takes any length, but a megabyte "password" is a way to burn CPU

# The hasher in use. Tests of other things swap in a cheaper one (tests/engine/workspaces/conftest.py).
HASHER = PasswordHasher()


@dataclass(frozen=True)
class Verified:
    ok: bool
    rehashed: str | None = None  # the password hashed with today's parameters, when the stored hash is older


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> Verified:
    """Whether `password` matches; on a match with outdated parameters, the hash to store instead."""
    try:
        HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return Verified(ok=False)
    return Verified(ok=True, rehashed=HASHER.hash(password) if HASHER.check_needs_rehash(stored_hash) else None)


def spend_a_verification(password: str) -> None:
    """Take as long as a real check, for a sign-in whose email matches no one: the answer's timing must
    not tell which emails have accounts."""
    verify_password(_decoy_hash(HASHER), password)


@functools.cache
def _decoy_hash(hasher: PasswordHasher) -> str:
    """A hash of nothing anyone knows, made with the parameters in use (so it costs what a real one does)."""
    return hasher.hash(secrets.token_urlsafe(16))


def password_problem(password: str) -> str | None:
    """Why `password` cannot be set, or None. Length is the rule that matters (NIST SP 800-63B):
    no composition rules, which push people to predictable substitutions."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    if not password.strip():
        return "a password cannot be only spaces"
    return None


def generate_password() -> str:
    """24 characters from a URL-safe alphabet (144 bits): shown once, for the person to change or keep."""
    return secrets.token_urlsafe(18)
