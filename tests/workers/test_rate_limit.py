"""Token buckets in Redis: bursts, throttling, sharing between workers, refill, and the rate syntax."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from engine.settings import DEFAULT_RATE_LIMITS
from workers.rate_limit import Rate, RedisRateLimiter, parse_rate_limits


def limiter(redis: Redis, namespace: str, **rates: Rate) -> RedisRateLimiter:
    return RedisRateLimiter(redis, namespace, rates)


def test_a_burst_is_allowed_then_the_next_send_is_told_how_long_to_wait(redis, namespace) -> None:
    """Three tokens at 5/s: three sends go at once, the fourth waits about 1/5 s."""
    sms = limiter(redis, namespace, sms=Rate(5, 3))
    started = time.monotonic()
    assert [sms.acquire("sms") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = sms.acquire("sms")
    # A fifth of a second for a token, less whatever has trickled in since the burst.
    assert 0.2 - (time.monotonic() - started) - 0.01 <= wait <= 0.2


def test_two_workers_share_one_bucket(redis, namespace) -> None:
    """Tokens taken through one limiter are gone for another one on the same Redis."""
    first, second = limiter(redis, namespace, telegram=Rate(2, 2)), limiter(redis, namespace, telegram=Rate(2, 2))
    assert first.acquire("telegram") == 0.0
    assert second.acquire("telegram") == 0.0
    assert first.acquire("telegram") > 0
    assert second.acquire("telegram") > 0


def test_the_bucket_refills_after_the_wait_it_announced(redis, namespace) -> None:
    """Waiting the returned time is enough for the next token; no sooner is needed."""
    viber = limiter(redis, namespace, viber=Rate(20, 1))
    assert viber.acquire("viber") == 0.0
    wait = viber.acquire("viber")
    assert 0 < wait <= 0.05
    time.sleep(wait + 0.005)
    assert viber.acquire("viber") == 0.0


def test_a_throttled_call_takes_no_token(redis, namespace) -> None:
    """Being told to wait does not use up tokens: the wait does not grow with retries."""
    email = limiter(redis, namespace, email=Rate(10, 1))
    email.acquire("email")
    waits = [email.acquire("email") for _ in range(5)]
    assert all(0 < w <= 0.1 for w in waits)
    assert waits == sorted(waits, reverse=True)  # only shrinking as time passes


def test_a_key_without_a_rate_is_unlimited_and_touches_no_redis_key(redis, namespace) -> None:
    """Channels with no configured rate always get 0.0, and nothing is written for them."""
    sms = limiter(redis, namespace, sms=Rate(1, 1))
    assert [sms.acquire("email") for _ in range(50)] == [0.0] * 50
    assert list(redis.scan_iter(f"{namespace}:ratelimit:email*")) == []


def test_buckets_are_namespaced_and_expire_when_idle(redis, namespace) -> None:
    """The bucket lives under the namespace and expires once it would be full again anyway."""
    whatsapp = limiter(redis, namespace, whatsapp=Rate(80, 80))
    whatsapp.acquire("whatsapp")
    key = f"{namespace}:ratelimit:whatsapp"
    assert redis.exists(key)
    assert 0 < redis.pttl(key) <= 2000


def test_a_qualified_key_uses_its_channels_rate_in_a_bucket_of_its_own(redis, namespace) -> None:
    """"sms:+1555…" is limited at the sms rate, but apart from other senders' buckets."""
    sms = limiter(redis, namespace, sms=Rate(1, 1))
    assert sms.acquire("sms:+15550001111") == 0.0
    assert sms.acquire("sms:+15550001111") > 0
    assert sms.acquire("sms:+15550002222") == 0.0
    assert sms.acquire("sms") == 0.0


def test_rates_are_parsed_with_a_default_burst_of_one_seconds_worth() -> None:
    """'/s', '/m' and '/h' rates; ':N' sets the burst; the burst never drops below one token."""
    assert parse_rate_limits("email=200/s, sms=10/s:20,viber=120/m,push=36/h") == {
        "email": Rate(200, 200), "sms": Rate(10, 20), "viber": Rate(2, 2), "push": Rate(0.01, 1)}
    assert parse_rate_limits("") == {}


def test_the_default_rates_cover_the_messengers_and_sms_but_not_email() -> None:
    """Telegram 30/s, WhatsApp 80/s, Viber 50/s, SMS 10/s; email is unlimited unless set."""
    limits = parse_rate_limits(DEFAULT_RATE_LIMITS)
    assert {k: v.per_second for k, v in limits.items()} == {"sms": 10, "telegram": 30, "whatsapp": 80, "viber": 50}


@pytest.mark.parametrize("text", ["sms=10", "sms=ten/s", "sms=10/d", "sms=0/s", "sms=10/s:0", "=5/s"])
def test_a_bad_rate_is_refused_naming_the_entry(text: str) -> None:
    """A typo in RAPPORT_RATE_LIMITS fails loudly, quoting the entry."""
    with pytest.raises(ValueError, match="RAPPORT_RATE_LIMITS"):
        parse_rate_limits(f"email=5/s,{text}")
