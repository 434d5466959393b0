"""PIPAL adapter: one label file per reference, ELO min-max normalisation, tricky lines."""

from __future__ import annotations

import pytest

from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_pipal


@pytest.fixture(scope="module")
def pipal(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_pipal, "pipal")


def test_records_elo_min_max(pipal):
    root, info, out = pipal
    lo, hi = info["min"], info["max"]
    assert_images(root, out.images, info["good"], lambda x: (x - lo) / (hi - lo))
    im = next(i for i in out.images if i.image_id == "A0002_01_01.bmp")
    assert im.ref_id == "A0002" and im.ref_path == "Train_Ref/A0002.bmp"
    assert im.path == "Train_Dist/A0002_01_01.bmp"
    assert im.scale.min == lo and im.scale.max == hi
    assert "1101" in im.rule and "1702" in im.rule
    assert im.label_file == "Train_Label/A0002.txt"
    assert {i.score for i in out.images} >= {0.0, 1.0}


def test_tricky_lines_name_their_label_file(pipal):
    _, _, out = pipal
    assert_failures(
        out,
        "pipal",
        ["missing_file", "nan_score", "duplicate", "bad_number", "bad_row"],
        "Train_Label/A0002.txt",
    )
    assert all(f.item_id.startswith("pipal:Train_Label/A0002.txt:") for f in out.failures)


def test_pairs_per_reference(pipal):
    _, _, out = pipal
    images, pairs = split_and_pair(
        out.images,
        dataset="pipal",
        rule="reference",
        group="ref",
        pair_group="ref",
        test_fraction=0.5,
    )
    assert_pairs(images, pairs, margin=0.1, group="ref")
    assert len(pairs) == 12  # ELO steps of 200 = 0.33 of the range: all 6 pairs per reference
    # a wider margin drops the neighbours (0.333 < 0.4) and keeps 3 pairs per reference
    _, wide = split_and_pair(
        out.images,
        dataset="pipal",
        rule="reference",
        group="ref",
        pair_group="ref",
        margin=0.4,
        test_fraction=0.5,
    )
    assert len(wide) == 6 and all(p.difference > 0.4 for p in wide)
