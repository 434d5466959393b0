"""Seeded splits: rules, grouping (no group in two splits), repeats, errors."""

from __future__ import annotations

import pytest

from pipeline.labels.splits import assign_splits, group_by_for, grouping_violations

ITEMS = [(f"img{i:03d}", f"g{i // 4:02d}", None) for i in range(80)]  # 20 groups of 4


def _groups_ok(split_of: dict[str, str]) -> bool:
    group = {i: g for i, g, _ in ITEMS}
    return not grouping_violations([(group[i], s) for i, s in split_of.items()])


@pytest.mark.parametrize("rule", ["reference", "prompt", "random"])
def test_seeded_grouped_split(rule):
    a = assign_splits(ITEMS, rule, seed=3, dataset="toy", test_fraction=0.2)[0]
    b = assign_splits(ITEMS, rule, seed=3, dataset="toy", test_fraction=0.2)[0]
    c = assign_splits(ITEMS, rule, seed=4, dataset="toy", test_fraction=0.2)[0]
    assert a == b and a != c and set(a) == {i for i, _, _ in ITEMS}
    assert _groups_ok(a)  # the group key decides: all 4 images of a group move together
    assert sum(s == "test" for s in a.values()) == 16  # 4 of 20 groups


def test_prompt_rule_repeats_and_others_do_not():
    reps = assign_splits(ITEMS, "prompt", seed=0, dataset="toy", repeats=10)
    assert len(reps) == 10 and len({tuple(sorted(r.items())) for r in reps}) > 5
    assert all(_groups_ok(r) for r in reps)
    assert len(assign_splits(ITEMS, "reference", seed=0, dataset="toy", repeats=10)) == 1


def test_official_keeps_published_split_and_splits_the_rest():
    items = [
        ("a", "a", "train"),
        ("b", "b", "val"),
        ("c", "c", "test"),
        ("d", "d", None),
        ("e", "e", None),
    ]
    out = assign_splits(items, "official", seed=0, dataset="toy", test_fraction=0.5)[0]
    assert out["a"] == "train" and out["b"] == "val" and out["c"] == "test"
    assert {out["d"], out["e"]} == {"train", "test"}


def test_fixed_split_and_group_keys():
    assert set(assign_splits(ITEMS, "train", seed=0, dataset="toy")[0].values()) == {"train"}
    assert set(assign_splits(ITEMS, "test", seed=0, dataset="toy")[0].values()) == {"test"}
    assert group_by_for("reference", "fr") == "ref" and group_by_for("prompt", "aigc") == "prompt"
    assert group_by_for("official", "nr") == "image" and group_by_for("train", "fr") == "ref"


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="unknown split rule 'bogus'"):
        assign_splits(ITEMS, "bogus", seed=0, dataset="toy")
    with pytest.raises(ValueError, match="test_fraction"):
        assign_splits(ITEMS, "random", seed=0, dataset="toy", test_fraction=1.5)
    with pytest.raises(ValueError, match="repeats"):
        assign_splits(ITEMS, "prompt", seed=0, dataset="toy", repeats=0)


def test_violations_are_reported():
    assert grouping_violations([("g", "train"), ("g", "test"), ("h", "train")]) == {
        "g": ["test", "train"]
    }
