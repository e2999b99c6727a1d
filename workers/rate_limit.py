"""Per-provider token buckets in Redis, shared by every worker on every machine.

A bucket holds up to `burst` tokens and refills at `per_second`; a send takes one.
The whole read-refill-take step is one Lua script, so two workers can never both
take the last token, and it reads the clock with Redis `TIME`: workers' clocks may
disagree, the Redis server's is the one they share.

Rates come from RAPPORT_RATE_LIMITS, e.g. "email=200/s,sms=10/s:20,telegram=30/s"
(`:20` is the burst; it defaults to one second's worth). A key is a channel name, or
a channel name and a qualifier ("sms:+15550001111", one bucket per sending number):
the rate is found by the whole key first, then by the part before the first ":";
each distinct key has its own bucket. A key with no rate is not limited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis

# KEYS[1]: the bucket (a hash of tokens and the time they were counted)
# ARGV[1]: tokens per second, ARGV[2]: burst
# Returns the seconds to wait as a string ("0" when a token was taken): a Lua number
# returned as is would be truncated to an integer reply.
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
-- An idle bucket is full again after burst/rate seconds; keep it no longer than that.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_ENTRY = re.compile(r"^(?P<key>[a-z0-9_:+.-]+)=(?P<count>\d+(?:\.\d+)?)/(?P<unit>[smh])(?::(?P<burst>\d+))?$")


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


def parse_rate_limits(text: str) -> dict[str, Rate]:
    """Parse "email=200/s,sms=10/s:20,viber=3000/m"; ValueError names the bad entry."""
    limits: dict[str, Rate] = {}
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise ValueError(f"RAPPORT_RATE_LIMITS: {raw.strip()!r} is not like 'sms=10/s' or 'sms=10/s:20'")
        per_second = float(match["count"]) / _UNITS[match["unit"]]
        if per_second <= 0:
            raise ValueError(f"RAPPORT_RATE_LIMITS: {raw.strip()!r}: the rate must be above zero")
        # A bucket must hold at least one token, or nothing could ever be sent.
        burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(per_second))
        if burst < 1:
            raise ValueError(f"RAPPORT_RATE_LIMITS: {raw.strip()!r}: the burst must be at least 1")
        limits[match["key"]] = Rate(per_second, burst)
    return limits


class RedisRateLimiter:
    """engine.delivery.ports.RateLimiter on Redis: `acquire(key)` -> 0.0, or the seconds until a token is free."""

    def __init__(self, redis: Redis, namespace: str, limits: Mapping[str, Rate]):
        self._limits = dict(limits)
        self._prefix = f"{namespace}:ratelimit:"
        # register_script sends EVALSHA, and the script body only when Redis lacks it.
        self._script = redis.register_script(TOKEN_BUCKET)

    @classmethod
    def from_text(cls, redis: Redis, namespace: str, text: str) -> RedisRateLimiter:
        return cls(redis, namespace, parse_rate_limits(text))

    def rate_for(self, key: str) -> Rate | None:
        return self._limits.get(key) or self._limits.get(key.split(":", 1)[0])

    def acquire(self, key: str) -> float:
        rate = self.rate_for(key)
        if rate is None:
            return 0.0  # no limit configured: not even a round trip to Redis
        wait = self._script(keys=[self._prefix + key], args=[repr(rate.per_second), rate.burst])
        return float(wait)
