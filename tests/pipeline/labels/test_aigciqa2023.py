"""AIGCIQA2023 adapter: the published csv (unnamed index column), out-of-range row, pairs."""

from __future__ import annotations

import pytest

from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_aigciqa2023


@pytest.fixture(scope="module")
def aigc(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_aigciqa2023, "aigciqa2023")


def test_records_with_three_mos(aigc):
    root, info, out = aigc
    assert_images(root, out.images, {k: v[0] for k, v in info["good"].items()}, lambda x: x / 100)
    im = next(i for i in out.images if i.image_id == "5.png")
    assert im.prompt == "a corgi number 1" and im.path == "Image/allimg/5.png"
    assert im.labels["authenticity_mos"] == 50 and im.labels["correspondence_std"] == 1.3
    assert im.attributes == {"style": "Basic", "class": "Animals"}


def test_tricky_rows_are_failures(aigc):
    _, _, out = aigc
    assert_failures(
        out,
        "aigciqa2023",
        ["missing_file", "duplicate", "nan_score", "out_of_range"],
        "AIGCIQA2023.csv",
    )


def test_pairs_within_one_prompt(aigc):
    _, _, out = aigc
    images, pairs = split_and_pair(
        out.images, dataset="aigciqa2023", rule="prompt", group="prompt", pair_group="prompt"
    )
    assert_pairs(images, pairs, margin=0.1, group="prompt")
    # scores 35 + 8k + p: only k-pairs two apart or more differ by > 10 points -> 3 per prompt
    assert len(pairs) == 5 * 3
