"""Instant-rating pairs from human labels: which of two images is better, and by how much.

Two sources:

- Published pairs (BAPPS 2AFC): kept as they are (A = p0, B = p1), minus those whose
  normalised difference |1 - 2 judge| does not exceed the margin (default 0: exact ties).
- Scored images (PIPAL, KADID-10k, TID2013, and the MOS datasets): every pair of images of
  one group (one reference for full-reference datasets, one prompt for AI-generated ones,
  the whole split for in-the-wild photos) whose normalised scores differ by more than the
  margin. Pairs never cross splits.

The margin is on the normalised [0, 1] scale. The default 0.1 is about the 95% confidence
interval of the difference of two MOS with the usual ~20-30 ratings per image: KADID-10k's
median rating standard deviation is ~0.8 on 1..5, so one DMOS has a standard error of about
0.15 and the difference of two about 0.21; 1.96 x 0.21 = 0.41 DMOS = 0.10 of the scale. On
PIPAL it is ~100 ELO points, a 64 % expected preference: pairs closer than that are too
close to call, which is the point of the margin.

Caps: a cap (`max_pairs`) draws a uniform random subset of the eligible pairs, seeded, and
is shared between splits in proportion to their eligible pairs (largest remainder), or given
per split. Which image becomes A is a seeded coin flip, so "Image A" and "Image B" answers
are balanced. All draws of a split come from `rng_for(derive_seed(seed, "labels_pairs",
split, dataset, 0), "pairs")`: the same manifest gives the same pairs.

Very large groups (an in-the-wild split of thousands of photos has millions of pairs) are
not enumerated: `CANDIDATE_LIMIT` candidate pairs are drawn uniformly (with the same seed)
and de-duplicated first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.labels.splits import GroupBy
from pipeline.seeds import derive_seed, rng_for, stable_hash

__all__ = ["CANDIDATE_LIMIT", "allocate", "filter_native_pairs", "pair_id", "pairs_from_images"]

CANDIDATE_LIMIT = 2_000_000  # pairs per group enumerated exactly; above: sampled candidates


def pair_id(dataset: str, a: str, b: str) -> str:
    """Stable id of the unordered pair {a, b} of `dataset`."""
    lo, hi = sorted((a, b))
    return f"{dataset}_{stable_hash(dataset, lo, hi)[:16]}"


def allocate(cap: int | Mapping[str, int] | None, eligible: Mapping[str, int]) -> dict[str, int]:
    """Pairs to keep per split.

    Args:
        cap: None (all), a total shared in proportion to `eligible` (largest remainder),
            or a per-split mapping (splits not named are uncapped).
        eligible: eligible pairs per split.
    """
    if cap is None:
        return dict(eligible)
    if isinstance(cap, Mapping):
        return {s: min(n, int(cap[s])) if s in cap else n for s, n in eligible.items()}
    total = sum(eligible.values())
    if total <= cap:
        return dict(eligible)
    shares = {s: cap * n / total for s, n in eligible.items()}
    out = {s: int(v) for s, v in shares.items()}
    left = cap - sum(out.values())
    for s in sorted(shares, key=lambda s: (-(shares[s] - out[s]), s))[:left]:
        out[s] += 1
    return out


def _rng(seed: int, dataset: str, split: str) -> np.random.Generator:
    return rng_for(derive_seed(seed, "labels_pairs", split, dataset, 0), "pairs")


def _group_candidates(
    scores: np.ndarray, margin: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = len(scores)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if n * (n - 1) // 2 <= CANDIDATE_LIMIT:
        i, j = np.triu_indices(n, k=1)
    else:
        a = rng.integers(0, n, size=CANDIDATE_LIMIT)
        b = rng.integers(0, n, size=CANDIDATE_LIMIT)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        code = np.unique(lo[keep].astype(np.int64) * n + hi[keep])
        i, j = code // n, code % n
    ok = np.abs(scores[i] - scores[j]) > margin
    return i[ok].astype(np.int64), j[ok].astype(np.int64)


def pairs_from_images(
    images: Sequence[LabelledImage],
    *,
    dataset: str,
    group_by: GroupBy | None,
    margin: float,
    cap: int | Mapping[str, int] | None,
    seed: int,
) -> list[HumanPair]:
    """Pairs of images of one group and split whose normalised scores differ by > `margin`.

    Args:
        images: records with `split` set (the labels stage assigns it first).
        dataset: adapter name.
        group_by: `ref`, `prompt`, or None/`image` for one group per split.
        margin: minimum normalised difference, exclusive, in [0, 1).
        cap: see `allocate`.
        seed: manifest seed.

    Returns:
        Pairs sorted by split, then group, then image order; A and B by a seeded coin flip.

    Raises:
        ValueError: margin out of range or an image without a split.
    """
    if not 0.0 <= margin < 1.0:
        msg = f"margin must be in [0, 1), got {margin}"
        raise ValueError(msg)
    by_split: dict[str, dict[str, list[LabelledImage]]] = defaultdict(lambda: defaultdict(list))
    for im in images:
        if im.split is None:
            msg = f"{dataset}: image {im.image_id!r} has no split; assign splits first"
            raise ValueError(msg)
        key = im.group(group_by) if group_by in ("ref", "prompt") else ""
        by_split[im.split][key].append(im)
    candidates: dict[str, list[tuple[list[LabelledImage], np.ndarray, np.ndarray]]] = {}
    rngs: dict[str, np.random.Generator] = {}
    for split in sorted(by_split):
        rngs[split] = _rng(seed, dataset, split)
        candidates[split] = []
        for key in sorted(by_split[split]):
            members = sorted(by_split[split][key], key=lambda im: im.image_id)
            scores = np.array([im.score for im in members], dtype=np.float64)
            i, j = _group_candidates(scores, margin, rngs[split])
            candidates[split].append((members, i, j))
    eligible = {s: sum(len(i) for _, i, _ in c) for s, c in candidates.items()}
    keep = allocate(cap, eligible)
    out: list[HumanPair] = []
    for split, groups in candidates.items():
        rng = rngs[split]
        total, k = eligible[split], keep[split]
        chosen = (
            np.sort(rng.choice(total, size=k, replace=False)) if k < total else np.arange(total)
        )
        flips = rng.random(len(chosen)) < 0.5
        offsets = np.cumsum([0] + [len(i) for _, i, _ in groups])
        for pos, flip in zip(chosen, flips, strict=False):
            g = int(np.searchsorted(offsets, pos, side="right") - 1)
            members, ii, jj = groups[g]
            a, b = members[ii[pos - offsets[g]]], members[jj[pos - offsets[g]]]
            if flip:
                a, b = b, a
            out.append(
                HumanPair(
                    dataset=dataset,
                    pair_id=pair_id(dataset, a.image_id, b.image_id),
                    split=split,
                    ref_id=a.ref_id if a.ref_id == b.ref_id else None,
                    ref_path=a.ref_path if a.ref_id == b.ref_id else None,
                    A_id=a.image_id,
                    B_id=b.image_id,
                    A_path=a.path,
                    B_path=b.path,
                    label=f"human:{dataset}:{a.label}",
                    score_A=a.labels[a.label],
                    score_B=b.labels[b.label],
                    norm_A=a.score,
                    norm_B=b.score,
                    difference=abs(a.score - b.score),
                    margin=margin,
                    A_better_B=a.score > b.score,
                    prompt=a.prompt if a.prompt == b.prompt else None,
                    attributes={f"A_{k}": v for k, v in a.attributes.items()}
                    | {f"B_{k}": v for k, v in b.attributes.items()},
                )
            )
    return out


def filter_native_pairs(
    pairs: Sequence[HumanPair],
    *,
    dataset: str,
    margin: float,
    cap: int | Mapping[str, int] | None,
    seed: int,
) -> list[HumanPair]:
    """Published pairs (BAPPS) whose difference exceeds `margin`, capped like the others.

    Orientation is kept as published. Pairs are returned in their input order per split.
    """
    if not 0.0 <= margin < 1.0:
        msg = f"margin must be in [0, 1), got {margin}"
        raise ValueError(msg)
    by_split: dict[str, list[HumanPair]] = defaultdict(list)
    for p in pairs:
        if p.difference > margin:
            by_split[p.split].append(p)
    keep = allocate(cap, {s: len(v) for s, v in by_split.items()})
    out: list[HumanPair] = []
    for split in sorted(by_split):
        items = by_split[split]
        k = keep[split]
        if k < len(items):
            idx = np.sort(_rng(seed, dataset, split).choice(len(items), size=k, replace=False))
            items = [items[i] for i in idx]
        out.extend(p.model_copy(update={"margin": margin}) for p in items)
    return out
