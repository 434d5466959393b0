"""Plan: the sampling rules of the spec hold on a large plan (no pixels touched)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

import distortions
from pipeline.manifest import Manifest
from pipeline.plan import PlanError, make_plans, plan_split, sample_id
from pipeline.records import ReferenceRecord
from pipeline.seeds import derive_seed
from pipeline.store import Store, atomic_write_jsonl

REFS = [f"ref{i:02d}" for i in range(25)]
N = 6000


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest(name="stats", seed=99, clean_probability=0.05)


@pytest.fixture(scope="module")
def sd_pairs(manifest: Manifest):
    return make_plans(manifest, "refAB_sd", "train", REFS, count=N)


def test_clean_probability_and_uniform_draws(manifest: Manifest) -> None:
    plans = make_plans(manifest, "refA_sd", "train", REFS, count=N)
    clean = [p for p in plans if not p.A]
    assert _within(len(clean), N, 0.05)
    distorted = [p.A[0] for p in plans if p.A]
    assert all(len(p.A) == 1 and p.B is None for p in plans if p.A)
    cats = Counter(d.category for d in distorted)
    assert set(cats) == set(distortions.CATEGORY_ORDER)
    for c in distortions.CATEGORY_ORDER:  # category uniform over the 12
        assert _within(cats[c], len(distorted), 1 / 12), (c, cats[c])
    sev = Counter(d.severity for d in distorted)
    assert set(sev) == {1, 2, 3, 4, 5}
    for s in range(1, 6):
        assert _within(sev[s], len(distorted), 1 / 5), (s, sev[s])
    for d in distorted:
        assert distortions.category_of(d.name) == d.category


def test_pairs_never_share_category_and_severity(sd_pairs) -> None:
    for p in sd_pairs:
        a = (p.A[0].category, p.A[0].severity) if p.A else None
        b = (p.B[0].category, p.B[0].severity) if p.B else None
        assert a != b, p.sample_id
    # A is drawn before any redraw, so it keeps the clean probability.
    assert _within(sum(1 for p in sd_pairs if not p.A), N, 0.05)
    # Same category with another severity is allowed (and happens).
    assert any(p.A and p.B and p.A[0].category == p.B[0].category for p in sd_pairs)


def _check_pair(img) -> None:
    first, second = img
    assert second.category in distortions.PAIR_TABLE[first.category]
    assert first.category != second.category
    assert 1 <= first.severity <= 3 and 1 <= second.severity <= 3


def test_multi_distortion_mix_is_the_originals(manifest: Manifest) -> None:
    """refA_md: clean p = 0.05, else a pair; refAB_md images: clean p = 0.05, else one
    distortion (p = 0.5, severity 1..5) or a pair; pairs uniform over the allowed pairs."""
    n = N // 2
    plans = make_plans(manifest, "refA_md", "train", REFS, count=n)
    assert _within(sum(1 for p in plans if not p.A), n, 0.05)
    assert {len(p.A) for p in plans} == {0, 2}
    for p in plans:
        if p.A:
            _check_pair(p.A)
    pairs = make_plans(manifest, "refAB_md", "train", REFS, count=n)
    a_sizes = Counter(len(p.A) for p in pairs)  # A is drawn before any redraw of B
    assert _within(a_sizes[0], n, 0.05)
    assert _within(a_sizes[1], n, 0.95 * 0.5) and _within(a_sizes[2], n, 0.95 * 0.5)
    singles = [img[0] for p in pairs for img in (p.A, p.B) if len(img) == 1]
    assert {d.severity for d in singles} == {1, 2, 3, 4, 5}
    for p in pairs:
        for img in (p.A, p.B):
            if len(img) == 2:
                _check_pair(img)
        assert [(d.category, d.severity) for d in p.A] != [(d.category, d.severity) for d in p.B]
    # uniform over the 78 allowed ordered pairs: oversharpen -> brighten is ~1/78 of pairs
    md = [tuple(d.category for d in p.A) for p in plans if p.A]
    assert _within(sum(1 for c in md if c == ("oversharpen", "brighten")), len(md), 1 / 78)


def test_md_mix_dqgen_v1_keeps_the_old_mix(manifest: Manifest) -> None:
    old = manifest.model_copy(update={"md_mix": "dqgen_v1"})
    for kind in ("refA_md", "refAB_md"):
        plans = make_plans(old, kind, "train", REFS, count=N // 2)
        firsts = Counter()
        for p in plans:
            for img in [p.A] + ([p.B] if kind == "refAB_md" else []):
                assert len(img) == 2  # dqgen 1: md images are never clean
                _check_pair(img)
            firsts[p.A[0].category] += 1
        for c in distortions.CATEGORY_ORDER:  # first category uniform (not the pairs)
            assert _within(firsts[c], len(plans), 1 / 12)


def test_grey_references_get_no_colour_distortion(manifest: Manifest) -> None:
    grey = REFS[:5]
    for kind in ("refA_sd", "refAB_sd", "refA_md", "refAB_md"):
        plans = make_plans(manifest, kind, "train", REFS, count=1500, grey=grey)
        for p in plans:
            cats = {d.category for img in (p.A, p.B or []) for d in img}
            if p.ref_id in grey:
                assert not cats & set(distortions.COLOUR_CATEGORIES), p.sample_id
        colour = {d.category for p in plans if p.ref_id not in grey for d in p.A}
        assert colour & set(distortions.COLOUR_CATEGORIES)  # colour photos still get them


def test_ids_seeds_and_round_robin(manifest: Manifest, sd_pairs) -> None:
    refs = sorted(REFS)
    for i, p in enumerate(sd_pairs[:100]):
        assert p.ref_id == refs[i % len(refs)]
        assert p.index == i // len(refs)
        assert p.sample_id == sample_id("refAB_sd", "train", p.ref_id, p.index)
        assert p.seed == derive_seed(manifest.seed, "refAB_sd", "train", p.ref_id, p.index)
    assert len({p.sample_id for p in sd_pairs}) == N
    # A larger count only appends: the first plans are unchanged.
    more = make_plans(manifest, "refAB_sd", "train", list(reversed(REFS)), count=N + 30)
    assert more[:N] == sd_pairs


def test_plan_split_writes_same_bytes_and_needs_references(tmp_path: Path) -> None:
    m = Manifest(name="p", counts={"refA_sd": {"train": 12, "test": 2}})
    store = Store(tmp_path)
    with pytest.raises(PlanError, match="run the ingest stage"):
        plan_split(m, store, "refA_sd", "train")
    refs = [ReferenceRecord(ref_id=r, source=f"{r}.png", split="train", path=f"references/{r}.png",
                            sha256="0" * 64, width=64, height=64, orig_width=64,
                            orig_height=64, orig_mode="RGB") for r in ("a", "b", "c")]
    atomic_write_jsonl(store.references_index, refs)
    plans = plan_split(m, store, "refA_sd", "train")
    first = store.plan_path("refA_sd", "train").read_bytes()
    assert len(first.splitlines()) == 12 == len(plans)
    plan_split(m, store, "refA_sd", "train")
    assert store.plan_path("refA_sd", "train").read_bytes() == first
    with pytest.raises(PlanError, match="split 'test' has no references"):
        plan_split(m, store, "refA_sd", "test")
