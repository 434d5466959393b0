"""Async token buckets for requests-per-minute and tokens-per-minute limits.

A bucket refills continuously at `per_minute / 60` per second and holds at most one
second's worth (at least one request's cost), so a run cannot burst far above the limit
at start and a server that enforces the limit on short windows (as OpenAI does) sees an
even stream. Waiters are served first come, first served. After a 429 the caller can
`pause(seconds)` the limiter: nobody starts a request until then (honouring Retry-After
for the whole run, not just the sample that got it).
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """One token bucket; `acquire(n)` waits until `n` units fit (a large `n` may borrow)."""

    def __init__(self, per_minute: float, *, burst_seconds: float = 1.0) -> None:
        if per_minute <= 0:
            msg = f"per_minute must be > 0, got {per_minute}"
            raise ValueError(msg)
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.tokens = self.capacity
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_time(self, n: float) -> float:
        """Seconds until `n` units may be taken (0: now). A request larger than the
        capacity waits for a full bucket and then borrows (tokens go negative)."""
        self._refill()
        need = min(n, self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, n: float) -> None:
        self.tokens -= n


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits (either may be None: no limit)."""

    def __init__(self, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

    def pause(self, seconds: float) -> None:
        """Start no request for `seconds` (e.g. a server's Retry-After after a 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait until one request of about `tokens` tokens may start."""
        if self.requests is None and self.tokens is None and self._paused_until == 0.0:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: the head waiter sleeps, the others queue behind it
            while True:
                wait = self._paused_until - time.monotonic()
                if self.requests is not None:
                    wait = max(wait, self.requests.wait_time(1.0))
                if self.tokens is not None and tokens > 0:
                    wait = max(wait, self.tokens.wait_time(tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.requests is not None:
                self.requests.take(1.0)
            if self.tokens is not None and tokens > 0:
                self.tokens.take(tokens)
