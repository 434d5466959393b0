"""LIVE Challenge adapter: .mat files written with scipy, training entries left out."""

from __future__ import annotations

import pytest

from pipeline.labels import get_adapter
from pipeline.labels.livec import TRAINING_ENTRIES
from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_livec


@pytest.fixture(scope="module")
def livec(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_livec, "CLIVE")


def test_records_skip_training_entries(livec):
    root, info, out = livec
    assert_images(root, out.images, info["good"], lambda x: x / 100)
    assert not any(im.image_id.startswith("t") for im in out.images)
    assert TRAINING_ENTRIES == 7 and "1..7" in out.notes[0]
    im = out.images[0]
    assert im.row == 8 and im.labels["std"] == 10.0 and im.path == "Images/100.JPG"


def test_tricky_entries_are_failures(livec):
    _, _, out = livec
    assert_failures(out, "livec", ["missing_file", "nan_score", "duplicate"], "AllMOS_release.mat")


def test_pairs(livec):
    _, _, out = livec
    images, pairs = split_and_pair(
        out.images, dataset="livec", rule="random", group="image", pair_group=None
    )
    assert_pairs(images, pairs, margin=0.1, group=None)


def test_length_mismatch_is_a_clear_error(tmp_path):
    import numpy as np
    from scipy.io import savemat

    from pipeline.labels._io import DatasetLayoutError

    (tmp_path / "Data").mkdir()
    cell = np.empty((3, 1), dtype=object)
    for i in range(3):
        cell[i, 0] = np.array([f"{i}.bmp"])
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[1.0, 2.0]])})
    with pytest.raises(DatasetLayoutError, match="disagree in length"):
        get_adapter("livec").read(tmp_path)
