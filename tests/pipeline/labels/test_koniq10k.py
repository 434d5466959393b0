"""KonIQ-10k adapter: official set column, header variants, tricky rows, NR pairs."""

from __future__ import annotations

import pytest

from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_koniq10k


@pytest.fixture(scope="module")
def koniq(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_koniq10k, "koniq-10k")


def test_records_official_split(koniq):
    root, info, out = koniq
    assert_images(root, out.images, {k: v[0] for k, v in info["good"].items()}, lambda x: x / 100)
    expected_split = {"training": "train", "validation": "val", "test": "test"}
    for im in out.images:
        assert im.split == expected_split[info["good"][im.image_id][1]]
        assert im.path.startswith("1024x768/")
        assert im.labels["sd"] == 0.55 and im.labels["c_total"] == 100
        assert im.ref_id is None and im.prompt is None


def test_tricky_rows_are_failures(koniq):
    _, _, out = koniq
    assert_failures(
        out,
        "koniq10k",
        ["missing_file", "duplicate", "bad_number", "nan_score"],
        "koniq10k_distributions_sets.csv",
    )


def test_official_split_and_pairs_within_split(koniq):
    _, _, out = koniq
    images, pairs = split_and_pair(
        out.images, dataset="koniq10k", rule="official", group="image", pair_group=None
    )
    assert [im.split for im in images] == [im.split for im in out.images]  # kept as published
    assert_pairs(images, pairs, margin=0.1, group=None)
    assert all(p.ref_path is None for p in pairs)  # no reference: AB form only
