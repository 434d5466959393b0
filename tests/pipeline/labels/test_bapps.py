"""BAPPS adapter: 2AFC triplets with judge .npy files, ties dropped, official split kept."""

from __future__ import annotations

import pytest

from pipeline.labels.pairs import filter_native_pairs
from tests.pipeline.labels.checks import make_and_read
from tests.pipeline.labels.fixtures import make_bapps


@pytest.fixture(scope="module")
def bapps(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_bapps, "bapps")


def test_pairs_as_published(bapps):
    root, info, out = bapps
    assert out.images == []  # no per-image score in BAPPS
    got = {p.pair_id: p for p in out.pairs}
    assert set(got) == set(info["judges"])
    for pid, judge in info["judges"].items():
        p = got[pid]
        assert p.A_better_B == (judge < 0.5)
        assert p.score_B == judge and p.score_A == pytest.approx(1 - judge)
        assert p.difference == pytest.approx(abs(1 - 2 * judge))
        assert p.A_path.endswith(f"/p0/{pid[-6:]}.png") and p.B_path.endswith(f"/p1/{pid[-6:]}.png")
        assert (root / p.ref_path).is_file() and p.ref_path.split("/")[-2] == "ref"
        assert p.split == ("train" if "_train_" in pid else "test")
        assert p.label == "human:bapps:judge"


def test_bad_triplets_are_failures(bapps):
    _, _, out = bapps
    types = {f.item_id: f.error_type for f in out.failures}
    assert types == {
        "bapps:2afc/train/cnn/000010": "nan_score",
        "bapps:2afc/train/cnn/000011": "missing_file",
        "bapps:2afc/train/cnn/000012": "out_of_range",
    }
    missing = next(f for f in out.failures if f.error_type == "missing_file")
    assert "p1/000011.png" in missing.message


def test_ties_dropped_and_cap(bapps):
    _, info, out = bapps
    kept = filter_native_pairs(out.pairs, dataset="bapps", margin=0.0, cap=None, seed=0)
    assert len(kept) == len(info["judges"]) - 2  # the two 0.5 judgements of train
    assert all(p.difference > 0 for p in kept)
    strict = filter_native_pairs(out.pairs, dataset="bapps", margin=0.5, cap=None, seed=0)
    assert {p.pair_id for p in strict} == {
        pid for pid, j in info["judges"].items() if abs(1 - 2 * j) > 0.5
    }
    capped = filter_native_pairs(out.pairs, dataset="bapps", margin=0.0, cap={"train": 2}, seed=0)
    per_split = {s: sum(p.split == s for p in capped) for s in ("train", "test")}
    assert per_split == {"train": 2, "test": 3}
    again = filter_native_pairs(out.pairs, dataset="bapps", margin=0.0, cap={"train": 2}, seed=0)
    assert [p.pair_id for p in again] == [p.pair_id for p in capped]
