"""KADID-10k adapter: dmos.csv with a BOM and header variants, tricky rows, pairs per reference."""

from __future__ import annotations

import pytest

from pipeline.labels import get_adapter
from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_kadid10k


@pytest.fixture(scope="module")
def kadid(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_kadid10k, "KADID-10k")


def test_records_and_normalisation(kadid):
    root, info, out = kadid
    assert_images(root, out.images, info["good"], lambda x: (x - 1) / 4)
    im = next(i for i in out.images if i.image_id == "I02_03_01.png")
    assert im.ref_id == "I02" and im.ref_path == "images/I02.png"
    assert im.labels["var"] == 0.5
    assert im.attributes == {"distortion": "03", "level": "01"}
    assert im.rule == "(dmos - 1) / 4" and im.scale.min == 1 and im.scale.max == 5
    assert im.label_file == "dmos.csv" and im.row == 8


def test_tricky_rows_are_failures(kadid):
    _, _, out = kadid
    assert_failures(
        out, "kadid10k", ["missing_file", "nan_score", "duplicate", "bad_number"], "dmos.csv"
    )
    dup = next(f for f in out.failures if f.error_type == "duplicate")
    assert "I01_01_01.png" in dup.message and "row 2" in dup.message  # names the first row
    assert dup.item_id == "kadid10k:dmos.csv:16"


def test_pairs_within_one_reference_and_split(kadid):
    _, _, out = kadid
    images, pairs = split_and_pair(
        out.images, dataset="kadid10k", rule="reference", group="ref", pair_group="ref"
    )
    assert_pairs(images, pairs, margin=0.1, group="ref")
    # uncapped: every pair of one reference whose scores differ by > 0.1 (all 6 per ref here)
    assert len(pairs) == 3 * 6
    assert all(p.ref_path is not None for p in pairs)


def test_missing_label_file_is_a_clear_error(tmp_path):
    from pipeline.labels._io import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match="dmos.csv"):
        get_adapter("kadid10k").read(tmp_path)
