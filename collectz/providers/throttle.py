"""Per-provider request throttling: a token bucket shared by every web and worker process through Redis.

Providers publish rate limits per API key or per IP, not per process, so the bucket lives in Redis and is updated by
one atomic Lua script using Redis's own clock (workers on several machines agree on time). The embedded setup (no
REDIS_URL) runs everything in one process, so there a process-local bucket is the same thing; it is also the fallback
when Redis is briefly unreachable, so a Redis blip slows nothing down to a halt.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from collectz.providers.http import RateLimited

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("collectz.providers.throttle")

DEFAULT_PENALTY_SECONDS = 30.0
KEY_PREFIX = "collectz:throttle:"
REDIS_RETRY_SECONDS = 10  # after a Redis error, how long to limit locally before trying Redis again

# (rate in requests per second, burst). A bucket allows at most burst + rate × window requests in any window, so the
# pairs below keep that within each provider's published limit for its window.
PROVIDER_LIMITS: dict[str, tuple[float, int]] = {
    "tmdb": (20.0, 20),                 # ~40 requests/s per IP (TMDB's "upper limit"); 20 + 20 = 40 in any second
    "musicbrainz": (1.0, 1),            # 1 request/s per IP, and a meaningful User-Agent
    "openlibrary": (1.0, 3),            # asks for ~1 request/s (3/s with a User-Agent naming the app)
    "googlebooks": (1.0, 5),            # 100 requests per 100 s per user; 1,000/day per key by default
    "discogs": (55 / 60, 5),            # 60/min authenticated (moving window): 5 + 55 = 60 per minute
    "igdb": (3.0, 1),                   # 4 requests/s: 1 + 3 = 4 in any second
    "metron": (24 / 60, 6),             # 30/min: 6 + 24 = 30 per minute
    "comicvine": (190 / 3600, 10),      # 200/h per resource: 10 + 190 = 200 per hour
    "upcitemdb": (5 / 60, 1),           # trial plan 6/min (and 100/day): 1 + 5 = 6 per minute
    "barcodelookup": (45 / 60, 5),      # per-minute limits by plan (50/min on the smallest): 5 + 45 = 50
    "plex": (50.0, 50),                 # the admin's own server on the LAN: generous, just not unbounded
}
DEFAULT_LIMIT = (1.0, 2)  # a provider not listed yet is treated politely

# KEYS[1] = bucket hash {tokens, ts, until}; ARGV = rate, burst. Returns "0" when a token was taken, else the
# seconds to wait, as a string (a Lua number would be truncated to an integer in the reply).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'until')
local blocked = tonumber(v[3]) or 0
if blocked > now then return tostring(blocked - now) end
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""

# KEYS[1] = bucket hash; ARGV = seconds, rate, burst. Nobody gets a token before now + seconds; then one token, and
# the bucket refills from there (no burst the moment the penalty ends).
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
if untl > current then
  redis.call('HSET', KEYS[1], 'until', tostring(untl), 'tokens', '1', 'ts', tostring(untl))
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) + tonumber(ARGV[3]) / tonumber(ARGV[2])) + 60)
return 1
"""


class _LocalBucket:
    """The same token bucket in process memory (monotonic clock, one lock)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.ts, self.until = float(burst), time.monotonic(), 0.0
        self.lock = threading.Lock()

    def take(self) -> float:
        with self.lock:
            now = time.monotonic()
            if self.until > now:
                return self.until - now
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.ts) * self.rate)
            self.ts = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate

    def penalize(self, seconds: float) -> None:
        with self.lock:
            until = time.monotonic() + seconds
            if until > self.until:
                self.until, self.tokens, self.ts = until, 1.0, until


class Throttle:
    """A named token bucket: `acquire()` before each call, `penalize()` after a 429."""

    def __init__(self, name: str, *, rate: float, burst: int, redis: Redis | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a throttle needs rate > 0 and burst >= 1")
        self.name, self.rate, self.burst = name, float(rate), int(burst)
        self.key = KEY_PREFIX + name
        self._redis = redis
        self._local = _LocalBucket(self.rate, self.burst)
        self._acquire_script = redis.register_script(_ACQUIRE) if redis is not None else None
        self._penalize_script = redis.register_script(_PENALIZE) if redis is not None else None
        self._redis_down_until = 0.0

    @property
    def distributed(self) -> bool:
        """Whether the bucket is shared through Redis (else it limits this process only)."""
        return self._redis is not None

    def __repr__(self) -> str:
        where = "redis" if self._redis is not None else "local"
        return f"<Throttle {self.name} {self.rate:g}/s burst {self.burst} ({where})>"

    def acquire(self, *, timeout: float = 30.0) -> None:
        """Block until a token is available; RateLimited when none will be within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self._take()
            if wait <= 0:
                return
            remaining = deadline - time.monotonic()
            if wait > remaining:  # sleeping would not help: say so now rather than at the deadline
                raise RateLimited(self.name, f"no request slot within {timeout:g} s (the provider's rate limit)",
                                  retry_after=wait)
            time.sleep(wait)

    def penalize(self, retry_after: float | None) -> None:
        """After a 429: nobody calls this provider until `retry_after` (default 30 s) has passed."""
        seconds = DEFAULT_PENALTY_SECONDS if retry_after is None else max(0.0, float(retry_after))
        if seconds <= 0:
            return
        if self._penalize_script is not None and self._redis_usable():
            try:
                self._penalize_script(keys=[self.key], args=[repr(seconds), repr(self.rate), self.burst])
            except RedisError as exc:
                self._redis_failed(exc)
        self._local.penalize(seconds)  # this process waits even if Redis did not hear about it

    def _take(self) -> float:
        if self._acquire_script is not None and self._redis_usable():
            try:
                return float(self._acquire_script(keys=[self.key], args=[repr(self.rate), self.burst]))
            except RedisError as exc:
                self._redis_failed(exc)
        return self._local.take()

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: RedisError) -> None:
        """Limit locally for a while instead of failing calls (or retrying a dead Redis on every token)."""
        log.warning("throttle %s: Redis unavailable (%s); limiting this process only for %d s", self.name,
                    type(exc).__name__, REDIS_RETRY_SECONDS)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS


def limits_for(provider: str) -> tuple[float, int]:
    """(rate, burst) for a provider; a polite default for one not listed."""
    return PROVIDER_LIMITS.get(provider, DEFAULT_LIMIT)


def throttle_for(provider: str) -> Throttle:
    """The app's shared throttle for a provider (one object per app and provider, on the app's Redis)."""
    from flask import current_app

    from collectz import queue

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    throttles: dict[str, Throttle] = app.extensions.setdefault("collectz_throttles", {})
    throttle = throttles.get(provider)
    if throttle is None:
        rate, burst = limits_for(provider)
        # The embedded fakeredis has no Lua, and the embedded setup is one process: a local bucket is equivalent.
        redis = None if queue.is_embedded(app) else queue.connection(app)
        throttle = throttles.setdefault(provider, Throttle(provider, rate=rate, burst=burst, redis=redis))
    return throttle
