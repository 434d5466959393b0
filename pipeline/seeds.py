"""Stable seeds: derived from content, never from worker order or Python's salted hash()."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "rng_for", "stable_hash"]


def stable_hash(*parts: object) -> str:
    """Hex sha256 of the parts joined by '/'."""
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def derive_seed(manifest_seed: int, kind: str, split: str, ref_id: str, index: int) -> int:
    """63-bit seed of one sample from (manifest seed, kind, split, reference id, index)."""
    return int(stable_hash(manifest_seed, kind, split, ref_id, index)[:16], 16) >> 1


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """Independent generator per purpose ("plan", "A", "B", ...) of one sample seed."""
    return np.random.default_rng([seed, int(stable_hash(stream)[:8], 16)])
