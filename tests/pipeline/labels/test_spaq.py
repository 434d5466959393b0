"""SPAQ adapter: xlsx (openpyxl) with attribute scores, tricky rows, random split, pairs."""

from __future__ import annotations

import pytest

from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_spaq


@pytest.fixture(scope="module")
def spaq(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_spaq, "spaq")


def test_records_with_attributes(spaq):
    root, info, out = spaq
    assert_images(root, out.images, info["good"], lambda x: x / 100)
    im = out.images[0]
    assert im.labels == {
        "mos": 14.0,
        "brightness": 50,
        "colorfulness": 51,
        "contrast": 52,
        "noisiness": 53,
        "sharpness": 54,
    }
    assert im.path == "TestImage/00001.jpg" and im.split is None


def test_tricky_rows_are_failures(spaq):
    _, _, out = spaq
    types = sorted(f.error_type for f in out.failures)
    # openpyxl may store NaN as an error cell (text) or a float NaN: either is a failure
    assert types[:2] == ["bad_number", "bad_number"] or "nan_score" in types
    assert_failures(out, "spaq", types, "MOS and Image attribute scores.xlsx")
    assert {"missing_file", "duplicate"} <= set(types) and len(types) == 4


def test_random_split_and_pairs(spaq):
    _, _, out = spaq
    images, pairs = split_and_pair(
        out.images, dataset="spaq", rule="random", group="image", pair_group=None, test_fraction=0.3
    )
    assert sum(im.split == "test" for im in images) == 3
    assert_pairs(images, pairs, margin=0.1, group=None)
