"""Token-bucket limits of the respond stage: requests and tokens per minute, pauses."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.ratelimit import RateLimiter, TokenBucket


def _timed(limiter: RateLimiter, n: int, tokens: float = 0.0) -> float:
    async def go() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(limiter.acquire(tokens) for _ in range(n)))
        return time.monotonic() - t0

    return asyncio.run(go())


def test_requests_per_minute_allow_one_second_burst_then_the_rate():
    # 1200/min = 20/s, bucket of 20: 30 requests need 10 more tokens = 0.5 s
    lim = RateLimiter(requests_per_minute=1200)
    assert lim.requests.wait_time(1) == 0.0 and lim.requests.capacity == 20
    _timed(lim, 20)
    assert lim.requests.tokens < 5  # the burst is used up (allowing a little refill)
    assert _timed(RateLimiter(requests_per_minute=1200), 30) >= 0.45


def test_tokens_per_minute_and_large_requests_borrow():
    # 60000 tokens/min = 1000/s, bucket 1000: three requests of 500 tokens wait 0.5 s
    assert _timed(RateLimiter(tokens_per_minute=60_000), 3, tokens=500) >= 0.45
    b = TokenBucket(60.0)  # 1/s, capacity 1
    assert b.wait_time(5) == 0.0  # larger than the bucket: allowed when full, then owes
    b.take(5)
    assert b.wait_time(1) > 4.5


def test_pause_holds_every_request():
    lim = RateLimiter()
    lim.pause(0.3)
    assert _timed(lim, 2) >= 0.28
    with pytest.raises(ValueError, match="per_minute"):
        TokenBucket(0)
