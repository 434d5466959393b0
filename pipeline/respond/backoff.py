"""The back-off formula of the one retry layer (tenacity drives it; see online.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_wait"]


def backoff_wait(attempt: int, *, initial: float, maximum: float, jitter: float,
                 rng: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with jitter after failed attempt number `attempt` (1, 2, ...):
    `min(initial * 2 ** (attempt - 1) + uniform(0, jitter), maximum)`, the same formula as
    tenacity's wait_exponential_jitter (whose keywords differ between versions)."""
    exp = initial * 2.0 ** min(max(attempt - 1, 0), 60)
    return max(0.0, min(exp + rng(0.0, max(jitter, 0.0)), maximum))

