"""Plan: decide every sample (reference, distortions, severities, seed) before any pixel work.

Reads `references.jsonl`; writes `plans/<kind>/<split>.jsonl` (one `SamplePlan` per
sample, in sample order) atomically.

Rules (../shared/spec/distortions.md, "Sampling defaults" and "Multi-distortion pairs"):

* The count N of a kind and split is spread over the split's references (sorted by id)
  round-robin: sample i uses reference refs[i % R] with per-reference index i // R, so
  raising a count only appends samples. Sample id: `<kind>-<split>-<ref_id>-<index:03d>`.
* Seed of a sample: `derive_seed(manifest.seed, kind, split, ref_id, index)`; the plan
  draws from `rng_for(seed, "plan")` (pixels later use the streams "A" and "B"), so a plan
  never depends on worker order or on other samples.
* Single-distortion images (sd kinds): clean (no distortion, severity 0) with probability
  `clean_probability`, else `distortions.sample_single` (category uniform, name uniform in
  it, severity uniform 1..5). A and B of refAB_sd are drawn independently.
* Multi-distortion images (md kinds), manifest `md_mix: original` (the default, DQ-495K's
  mix): a pair is `distortions.sample_pair` (two distinct categories in order, redrawn
  until allowed: uniform over the allowed ordered pairs; severities 1..3). refA_md: clean
  with `clean_probability`, else a pair. refAB_md, each of A and B: clean with
  `clean_probability`, else one distortion (p = 0.5, severity 1..5, as sd) or a pair.
  `md_mix: dqgen_v1` keeps dqgen 1's mix: every md image a pair, never clean, drawn by
  `distortions.sample_pair_v1` (first category uniform, then a partner).
* What the reference allows (the plan-time half of pipeline/effect.py): a grey reference
  (`ReferenceRecord.grey`) never gets a colour-only category (`effect.excluded_categories`).
* Pairs (refAB_*): B is redrawn while it has the same category and the same severity as A
  (md: the same categories and severities, in order). Two clean images count as the same
  (category none, severity 0), so a pair is never clean/clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence

import numpy as np

import distortions
from pipeline.effect import excluded_categories
from pipeline.manifest import Manifest
from pipeline.records import KINDS, AppliedDistortion, ReferenceRecord, SamplePlan
from pipeline.seeds import derive_seed, rng_for
from pipeline.store import Store, atomic_write_jsonl, read_jsonl

__all__ = [
    "MAX_REDRAWS",
    "PlanError",
    "draw_image",
    "load_plans",
    "iter_plans",
    "load_references",
    "make_plans",
    "pair_sampler",
    "plan_sample",
    "plan_split",
    "sample_id",
]

MAX_REDRAWS = 1000  # B redraws per pair; reaching it means a degenerate registry
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class PlanError(ValueError):
    """A plan that cannot be made (no references in a split, unknown kind, ...)."""


def sample_id(kind: str, split: str, ref_id: str, index: int) -> str:
    """Stable, filesystem-safe sample id."""
    return f"{kind}-{split}-{ref_id}-{index:03d}"


def pair_sampler(md_mix: str) -> Callable[..., tuple]:
    """The pair draw of a manifest's md mix ("original" or "dqgen_v1")."""
    return distortions.sample_pair_v1 if md_mix == "dqgen_v1" else distortions.sample_pair


def draw_image(rng: np.random.Generator, *, multi: bool, clean_probability: float,
               md_mix: str = "original", pair: bool = False, exclude: Collection[str] = ()
               ) -> list[AppliedDistortion]:
    """Distortions of one image in the order applied (empty list: clean).

    `pair`: the image belongs to a refAB sample (refAB_md images may carry one distortion).
    """
    if multi and md_mix == "dqgen_v1":
        picks = list(distortions.sample_pair_v1(rng, exclude=exclude))
    else:
        # Always consume the clean draw first so the stream layout is the same for every p.
        if rng.random() < clean_probability:
            return []
        if multi and not (pair and rng.random() < 0.5):
            picks = list(distortions.sample_pair(rng, exclude=exclude))
        else:
            picks = [distortions.sample_single(rng, exclude=exclude)]
    return [AppliedDistortion(name=n, category=distortions.category_of(n), severity=s)
            for n, s in picks]


def _signature(image: list[AppliedDistortion]) -> tuple[tuple[str, int], ...]:
    return tuple((d.category, d.severity) for d in image)


def plan_sample(manifest_seed: int, kind: str, split: str, ref_id: str, index: int,
                clean_probability: float, *, md_mix: str = "original", grey: bool = False
                ) -> SamplePlan:
    """The plan of one sample, a pure function of its coordinates (and of what the
    reference allows: `grey`)."""
    if kind not in KINDS:
        msg = f"kind must be one of {', '.join(KINDS)}, got {kind!r}"
        raise PlanError(msg)
    seed = derive_seed(manifest_seed, kind, split, ref_id, index)
    rng = rng_for(seed, "plan")
    multi, pair = kind.endswith("_md"), kind.startswith("refAB")
    opts = {"multi": multi, "clean_probability": clean_probability, "md_mix": md_mix,
            "pair": pair, "exclude": excluded_categories(grey)}
    a = draw_image(rng, **opts)
    b = None
    if pair:
        for _ in range(MAX_REDRAWS):
            b = draw_image(rng, **opts)
            if _signature(b) != _signature(a):
                break
        else:
            sid = sample_id(kind, split, ref_id, index)
            msg = f"{sid}: no B unlike A after {MAX_REDRAWS} draws"
            raise PlanError(msg)
    return SamplePlan(sample_id=sample_id(kind, split, ref_id, index), kind=kind, split=split,
                      ref_id=ref_id, index=index, seed=seed, A=a, B=b)


def make_plans(manifest: Manifest, kind: str, split: str, ref_ids: Sequence[str],
               count: int | None = None, grey: Collection[str] = ()) -> list[SamplePlan]:
    """Plans of a kind and split over the given reference ids (no I/O).

    Args:
        manifest: seed, clean probability and counts.
        kind, split: which plan.
        ref_ids: ids of the split's references (sorted here).
        count: number of samples; default the manifest's count for kind/split.
        grey: ids of grey references (no colour-only distortion planned for them).

    Raises:
        PlanError: samples requested but no reference in the split.
    """
    return list(iter_plans(manifest, kind, split, ref_ids, count, grey))


def iter_plans(manifest: Manifest, kind: str, split: str, ref_ids: Sequence[str],
               count: int | None = None, grey: Collection[str] = ()) -> Iterator[SamplePlan]:
    """`make_plans` one plan at a time (the checks run at once, the plans when iterated)."""
    n = manifest.counts.get(kind, {}).get(split, 0) if count is None else count
    if not split or _UNSAFE.search(split):
        msg = f"split name {split!r} must use only letters, digits, '.', '_' and '-'"
        raise PlanError(msg)
    refs = sorted(ref_ids)
    if n and not refs:
        msg = f"counts.{kind}.{split}: {n} samples requested but split {split!r} has no references"
        raise PlanError(msg)
    grey = set(grey)
    return (plan_sample(manifest.seed, kind, split, refs[i % len(refs)], i // len(refs),
                        manifest.clean_probability, md_mix=manifest.md_mix,
                        grey=refs[i % len(refs)] in grey) for i in range(n))


def load_references(store: Store) -> list[ReferenceRecord]:
    """The ingested references (references.jsonl), sorted by id."""
    return sorted(read_jsonl(store.references_index, ReferenceRecord), key=lambda r: r.ref_id)


def plan_split(manifest: Manifest, store: Store | str, kind: str, split: str
               ) -> list[SamplePlan]:
    """Make and write `plans/<kind>/<split>.jsonl` (atomic; same bytes on every run).

    Reads references.jsonl (run ingest first). Returns the plans.
    """
    store = store if isinstance(store, Store) else Store(store)
    ids, grey = _split_references(store, split)
    plans = make_plans(manifest, kind, split, ids, grey=grey)
    atomic_write_jsonl(store.plan_path(kind, split), plans)
    return plans


def _split_references(store: Store, split: str) -> tuple[list[str], list[str]]:
    """The reference ids of a split and those of them that are grey (from ingest)."""
    if not store.references_index.exists():
        msg = f"{store.references_index} not found: run the ingest stage first"
        raise PlanError(msg)
    in_split = [r for r in load_references(store) if r.split == split]
    return [r.ref_id for r in in_split], [r.ref_id for r in in_split if r.grey]


def load_plans(store: Store, kind: str, split: str) -> list[SamplePlan]:
    """The written plans of a kind and split (empty when none)."""
    return list(read_jsonl(store.plan_path(kind, split), SamplePlan))


def write_plan(manifest: Manifest, store: Store | str, kind: str, split: str) -> int:
    """`plan_split` streamed: the plans are made and written one at a time (never a list
    of the whole split), and a plan file that already holds the same bytes is left as it
    is (a re-run rewrites nothing). Returns the number of plans."""
    store = store if isinstance(store, Store) else Store(store)
    ids, grey = _split_references(store, split)
    plans = iter_plans(manifest, kind, split, ids, grey=grey)
    return atomic_write_jsonl(store.plan_path(kind, split), plans)
