"""Instant-rating pairs: margin, caps and their allocation, balance, determinism, sampling."""

from __future__ import annotations

import pytest

from pipeline.labels import LabelledImage, Scale
from pipeline.labels import pairs as P
from pipeline.labels.pairs import allocate, pair_id, pairs_from_images


def _images(n_refs: int, per_ref: int, *, split_every: int = 0) -> list[LabelledImage]:
    out = []
    for r in range(n_refs):
        for k in range(per_ref):
            score = ((r * 7 + k * 13) % 100) / 99
            out.append(
                LabelledImage(
                    dataset="toy",
                    image_id=f"r{r:02d}_{k:03d}",
                    path=f"img/r{r:02d}_{k:03d}.png",
                    ref_id=f"r{r:02d}",
                    ref_path=f"ref/r{r:02d}.png",
                    split="test" if split_every and r % split_every == 0 else "train",
                    labels={"mos": score * 4 + 1},
                    label="mos",
                    scale=Scale(min=1, max=5),
                    score=score,
                    rule="(mos - 1) / 4",
                    label_file="toy.csv",
                    row=len(out) + 2,
                )
            )
    return out


def test_allocate_total_per_split_and_none():
    assert allocate(None, {"train": 10, "test": 4}) == {"train": 10, "test": 4}
    assert allocate(7, {"train": 10, "test": 4}) == {"train": 5, "test": 2}
    assert sum(allocate(5, {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}).values()) == 5
    assert allocate(100, {"train": 10, "test": 4}) == {"train": 10, "test": 4}
    assert allocate({"train": 3}, {"train": 10, "test": 4}) == {"train": 3, "test": 4}


def test_margin_is_exclusive_and_validated():
    ims = _images(1, 2)
    ims = [ims[0].model_copy(update={"score": 0.2}), ims[1].model_copy(update={"score": 0.3})]
    assert (
        pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1 + 1e-12, cap=None, seed=0)
        == []
    )
    assert (
        len(pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.05, cap=None, seed=0))
        == 1
    )
    with pytest.raises(ValueError, match="margin"):
        pairs_from_images(ims, dataset="toy", group_by="ref", margin=1.0, cap=None, seed=0)


def test_uncapped_is_every_eligible_pair_of_a_group():
    ims = _images(3, 12)
    pairs = pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1, cap=None, seed=0)
    expected = 0
    for r in range(3):
        s = [im.score for im in ims if im.ref_id == f"r{r:02d}"]
        expected += sum(abs(a - b) > 0.1 for i, a in enumerate(s) for b in s[i + 1 :])
    assert len(pairs) == expected
    assert len({p.pair_id for p in pairs}) == len(pairs)


def test_cap_is_seeded_balanced_and_shared_by_splits():
    ims = _images(10, 20, split_every=5)  # refs 0 and 5 in test
    a = pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1, cap=300, seed=1)
    b = pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1, cap=300, seed=1)
    c = pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1, cap=300, seed=2)
    assert len(a) == 300 and a == b and a != c
    n_test = sum(p.split == "test" for p in a)
    assert 45 <= n_test <= 75  # ~2/10 of the eligible pairs
    share = sum(p.A_better_B for p in a) / len(a)
    assert 0.4 < share < 0.6  # seeded coin flip for which image is A
    assert all(p.ref_id == p.A_id[:3] == p.B_id[:3] for p in a)


def test_large_groups_are_sampled(monkeypatch):
    monkeypatch.setattr(P, "CANDIDATE_LIMIT", 500)
    ims = _images(1, 60)  # 1770 pairs > limit: candidates drawn, de-duplicated
    pairs = pairs_from_images(ims, dataset="toy", group_by=None, margin=0.1, cap=200, seed=0)
    assert len(pairs) == 200
    assert len({p.pair_id for p in pairs}) == 200
    assert all(p.A_id != p.B_id and p.difference > 0.1 for p in pairs)


def test_pair_id_is_order_free():
    assert pair_id("toy", "a", "b") == pair_id("toy", "b", "a") != pair_id("toy", "a", "c")


def test_images_need_a_split():
    ims = [im.model_copy(update={"split": None}) for im in _images(1, 3)]
    with pytest.raises(ValueError, match="no split"):
        pairs_from_images(ims, dataset="toy", group_by="ref", margin=0.1, cap=None, seed=0)
