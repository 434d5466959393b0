"""Small real datasets for respond-stage tests: PNG files and SampleRecord lines.

Images are 48 x 48 RGB PNGs (a smooth gradient with a few shapes, per reference), A/B are
simple numpy perturbations of it; the recorded distortions are the ground truth the
prompts and the validator use. Written with the store helpers, as synthesis would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from typing import Any

from distortions.pairs import PAIR_TABLE
from distortions.registry import CATEGORY_ORDER
from pipeline.manifest import ResponderConfig
from pipeline.records import AppliedDistortion, ImageInfo, JudgeVerdict, SampleRecord
from pipeline.seeds import derive_seed, rng_for
from pipeline.store import Store, atomic_write_bytes, atomic_write_jsonl

__all__ = ["fast_openai_config", "make_samples"]


def fast_openai_config(base_url: str, default_model: str, **overrides: Any) -> ResponderConfig:
    """An openai ResponderConfig for a loopback server: millisecond back-offs, no rate
    limit, 3 attempts, 2 re-asks, 2 in flight; `overrides` replace any field (`model` too)."""
    fields: dict[str, Any] = dict(
        kind="openai", model=default_model, base_url=base_url, timeout_s=2.0, max_attempts=3,
        backoff_initial_s=0.01, backoff_max_s=0.02, retry_after_max_s=0.05, concurrency=2,
        requests_per_minute=None, max_reasks=2)
    fields.update(overrides)
    return ResponderConfig(**fields)


def _png(store: Store, rel: str, image: np.ndarray) -> str:
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    atomic_write_bytes(store.abs(rel), buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _reference(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:48] / 47.0
    base = np.stack([x, y, 1 - x * y], axis=-1) * rng.uniform(0.4, 1.0, 3)
    img = (base * 255).astype(np.uint8)
    cx, cy = rng.integers(10, 38, 2)
    img[cy - 6:cy + 6, cx - 6:cx + 6] = rng.integers(0, 255, 3)
    return img


def _perturb(img: np.ndarray, rng: np.random.Generator, strength: int) -> np.ndarray:
    noise = rng.normal(0, 4 * strength, img.shape)
    return np.clip(img.astype(float) + noise, 0, 255).astype(np.uint8)


def _dists(kind: str, i: int, rng: np.random.Generator, clean: bool) -> list[AppliedDistortion]:
    if clean:
        return []
    if kind.endswith("_sd"):
        cat = CATEGORY_ORDER[i % len(CATEGORY_ORDER)]
        return [AppliedDistortion(name=f"{cat}_test", category=cat,
                                  severity=int(rng.integers(1, 6)))]
    first = CATEGORY_ORDER[i % len(CATEGORY_ORDER)]
    second = PAIR_TABLE[first][i % len(PAIR_TABLE[first])]
    return [AppliedDistortion(name=f"{c}_test", category=c, severity=int(rng.integers(1, 4)))
            for c in (first, second)]


def make_samples(root: Path | str, kind: str, split: str, n: int, *, seed: int = 0,
                 clean_every: int = 0, offset: int = 0) -> list[SampleRecord]:
    """Write `n` samples of `kind` into `root` (images + samples/<kind>/<split>.jsonl).

    Sample i has category CATEGORY_ORDER[(i + offset) % 12]; every `clean_every`-th sample
    has a clean A (0: never). Returns the records written.
    """
    store = Store(root)
    records = []
    for j in range(n):
        i = j + offset
        ref_id = f"ref{i:03d}"
        sd = derive_seed(seed, kind, split, ref_id, 0)
        rng = rng_for(sd, "test")
        ref = _reference(i + 1000 * seed)
        ref_rel = f"references/{ref_id}.png"
        _png(store, ref_rel, ref)
        sid = f"{kind}-{split}-{ref_id}-0"
        clean = bool(clean_every) and j % clean_every == clean_every - 1
        A = _dists(kind, i, rng, clean)
        a_rel = f"images/{kind}/{split}/{sid}_A.png"
        info_A = ImageInfo(path=a_rel, sha256=_png(store, a_rel, _perturb(ref, rng, 1 + len(A))),
                           distortions=A)
        info_B = judge = None
        if kind.startswith("refAB"):
            B = _dists(kind, i + 5, rng, False)
            b_rel = f"images/{kind}/{split}/{sid}_B.png"
            info_B = ImageInfo(path=b_rel, sha256=_png(store, b_rel, _perturb(ref, rng, 3)),
                               distortions=B)
            judge = JudgeVerdict(judge="test", score_A=0.5, score_B=0.4,
                                 A_better_B=bool(i % 2 == 0))
        records.append(SampleRecord(sample_id=sid, kind=kind, split=split, ref_id=ref_id,
                                    seed=sd, width=48, height=48, image_ref=ref_rel,
                                    image_A=info_A, image_B=info_B, judge=judge))
    atomic_write_jsonl(store.samples_path(kind, split), records)
    return records
