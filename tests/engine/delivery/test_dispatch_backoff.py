"""Transient send failures retry with jittered exponential backoff, capped at one hour."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from engine.delivery.outcomes import MAX_ATTEMPTS, retry_delay


@pytest.mark.parametrize("seed", range(20))
def test_the_retry_delay_grows_with_each_attempt(seed: int) -> None:
    """Whatever the jitter draws, each attempt waits at least as long as the one before, until the cap."""
    rng = random.Random(seed)

    delays = [retry_delay(attempt, rng=rng) for attempt in range(1, 8)]

    assert delays == sorted(delays)
    assert delays[-1] > delays[0] * 8  # 30 s doubled six times: clearly exponential, not linear


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_the_retry_delay_stays_within_half_to_full_of_its_ceiling(attempt: int) -> None:
    """Attempt n waits between half and all of 30 s * 2^(n-1), so retries of many messages spread out."""
    ceiling = 30 * 2 ** (attempt - 1)
    rng = random.Random(attempt)

    delays = {retry_delay(attempt, rng=rng) for _ in range(200)}

    assert all(timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays)
    assert len(delays) > 100  # jittered, not one fixed value


@pytest.mark.parametrize("attempt", [MAX_ATTEMPTS, 12, 50, 1000])
def test_the_retry_delay_is_capped_at_one_hour(attempt: int) -> None:
    """Late attempts never wait more than an hour, however many have failed."""
    rng = random.Random(attempt)

    assert all(timedelta(minutes=30) <= retry_delay(attempt, rng=rng) <= timedelta(hours=1) for _ in range(100))


def test_the_same_seed_gives_the_same_delays() -> None:
    """The jitter comes from the rng passed in, so a seeded test is reproducible."""
    first = [retry_delay(a, rng=random.Random(7)) for a in range(1, 10)]
    second = [retry_delay(a, rng=random.Random(7)) for a in range(1, 10)]

    assert first == second
