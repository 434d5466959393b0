"""AGIQA-1k adapter: xlsx with Image/Prompt/MOS, tricky rows, prompt-grouped pairs."""

from __future__ import annotations

import pytest

from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_agiqa1k


@pytest.fixture(scope="module")
def agiqa1k(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_agiqa1k, "AGIQA-1k")


def test_records_with_prompt(agiqa1k):
    root, info, out = agiqa1k
    assert_images(root, out.images, {k: v[0] for k, v in info["good"].items()}, lambda x: x / 5)
    for im in out.images:
        assert im.prompt == info["good"][im.image_id][1]
        assert im.path.startswith("file/")


def test_tricky_rows_are_failures(agiqa1k):
    _, _, out = agiqa1k
    assert_failures(
        out,
        "agiqa1k",
        ["missing_file", "duplicate", "bad_number", "out_of_range"],
        "AIGC_MOS_Zscore.xlsx",
    )


def test_pairs_within_one_prompt(agiqa1k):
    _, _, out = agiqa1k
    images, pairs = split_and_pair(
        out.images,
        dataset="agiqa1k",
        rule="prompt",
        group="prompt",
        pair_group="prompt",
        test_fraction=0.25,
    )
    assert_pairs(images, pairs, margin=0.1, group="prompt")
    assert len(pairs) == 4 * 3  # MOS steps of 1.2 = 0.24 > 0.1: all 3 pairs per prompt
