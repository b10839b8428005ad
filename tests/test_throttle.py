"""Provider throttles: a token bucket on Redis shared by every process (real Redis when TEST_REDIS_URL is set),
or process-local; penalties after a 429; a Redis outage degrades to local limiting instead of failing calls.

Tests on Redis use database 0 of TEST_REDIS_URL with a key unique to the test (other suites own whole databases).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from redis import Redis

from collectz.providers.http import RateLimited
from collectz.providers.throttle import KEY_PREFIX, PROVIDER_LIMITS, Throttle, throttle_for
from tests.conftest import REDIS_URL

STORES = ["local"] + (["redis"] if REDIS_URL else [])
MakeThrottle = Callable[..., Throttle]


@pytest.fixture(params=STORES)
def make_throttle(request: pytest.FixtureRequest) -> Iterator[MakeThrottle]:
    """Throttles on one store, all sharing one bucket name unique to this test."""
    name = f"test-throttle-{uuid.uuid4().hex}"
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2) if request.param == "redis" else None
    local: list[Throttle] = []

    def factory(rate: float, burst: int) -> Throttle:
        if redis is None and local:  # process-local buckets are per object: share the first one
            return local[0]
        throttle = Throttle(name, rate=rate, burst=burst, redis=redis)
        local.append(throttle)
        return throttle

    yield factory
    if redis is not None:
        redis.delete(KEY_PREFIX + name)
        redis.close()


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def test_a_burst_passes_then_the_rate_holds(make_throttle: MakeThrottle) -> None:
    throttle = make_throttle(rate=20, burst=3)
    # Without the burst, three tokens at 20/s would take 0.15 s; the upper bounds leave room for a busy machine.
    assert timed(lambda: [throttle.acquire() for _ in range(3)]) < 0.12
    elapsed = timed(lambda: [throttle.acquire() for _ in range(3)])
    assert 0.12 <= elapsed < 1.0  # three more tokens at 20/s take ~0.15 s


def test_acquire_gives_up_at_once_when_the_wait_exceeds_the_timeout(make_throttle: MakeThrottle) -> None:
    throttle = make_throttle(rate=2, burst=1)
    throttle.acquire()
    started = time.monotonic()
    with pytest.raises(RateLimited) as excinfo:
        throttle.acquire(timeout=0.1)
    assert time.monotonic() - started < 0.05  # no pointless sleep
    assert excinfo.value.provider == throttle.name and excinfo.value.status == "rate_limited"
    assert excinfo.value.retry_after is not None and 0.3 < excinfo.value.retry_after <= 0.5
    assert timed(lambda: throttle.acquire(timeout=1)) < 0.6  # a long enough timeout waits for the token


def test_penalize_blocks_every_caller_until_retry_after(make_throttle: MakeThrottle) -> None:
    first, second = make_throttle(rate=50, burst=5), make_throttle(rate=50, burst=5)
    first.acquire()
    first.penalize(0.3)
    with pytest.raises(RateLimited):
        second.acquire(timeout=0.1)
    waited = timed(second.acquire)
    assert 0.15 <= waited < 0.6
    assert timed(second.acquire) < 0.1  # after the penalty, tokens refill at the normal rate


def test_penalize_without_retry_after_waits_thirty_seconds(make_throttle: MakeThrottle) -> None:
    throttle = make_throttle(rate=50, burst=5)
    throttle.penalize(None)
    with pytest.raises(RateLimited) as excinfo:
        throttle.acquire(timeout=1)
    assert excinfo.value.retry_after is not None and 29 < excinfo.value.retry_after <= 30


@pytest.mark.skipif(not REDIS_URL, reason="needs TEST_REDIS_URL (a real Redis)")
def test_two_throttles_on_one_redis_share_one_bucket() -> None:
    name = f"test-throttle-{uuid.uuid4().hex}"
    redis_a, redis_b = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)  # two connections, as two workers
    try:
        a = Throttle(name, rate=2, burst=2, redis=redis_a)
        b = Throttle(name, rate=2, burst=2, redis=redis_b)
        a.acquire()
        b.acquire()
        with pytest.raises(RateLimited):  # the bucket both drew from is empty
            a.acquire(timeout=0.1)
        other = Throttle(f"{name}-other", rate=2, burst=2, redis=redis_b)
        assert timed(other.acquire) < 0.05  # another provider has its own bucket
        assert redis_a.ttl(KEY_PREFIX + name) > 0  # idle buckets expire
    finally:
        redis_a.delete(KEY_PREFIX + name, f"{KEY_PREFIX}{name}-other")


def test_an_unreachable_redis_falls_back_to_local_limits() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    throttle = Throttle(f"test-throttle-{uuid.uuid4().hex}", rate=5, burst=1, redis=dead)
    throttle.acquire()  # no exception: the call goes ahead
    throttle.penalize(0.2)
    with pytest.raises(RateLimited):
        throttle.acquire(timeout=0.05)


def test_throttle_for_gives_one_shared_throttle_per_provider(app: Flask) -> None:
    with app.app_context():
        tmdb = throttle_for("tmdb")
        assert throttle_for("tmdb") is tmdb
        assert (tmdb.rate, tmdb.burst) == PROVIDER_LIMITS["tmdb"] == (20.0, 20)
        assert throttle_for("musicbrainz").rate == 1.0
        unknown = throttle_for("somewhere-new")
        assert unknown.rate > 0 and unknown.burst >= 1
        assert tmdb.distributed is bool(app.config["COLLECTZ"].REDIS_URL)
        tmdb.acquire(timeout=1)  # works on the embedded fakeredis default too


def test_documented_limits_fit_their_windows() -> None:
    """A bucket lets burst + rate × window through in any window: keep that within each published limit."""
    published = {"tmdb": (40, 1), "musicbrainz": (1, 1), "discogs": (60, 60), "igdb": (4, 1), "metron": (30, 60),
                 "comicvine": (200, 3600), "upcitemdb": (6, 60)}
    for provider, (limit, window) in published.items():
        rate, burst = PROVIDER_LIMITS[provider]
        assert burst + rate * window <= limit + 1, provider  # + 1: the bucket's first token at t = 0
    for rate, burst in PROVIDER_LIMITS.values():
        assert rate > 0 and burst >= 1
