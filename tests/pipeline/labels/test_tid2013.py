"""TID2013 adapter: `<mos> <name>` lines, case-insensitive files, tricky lines, pairs."""

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
from tests.pipeline.labels.fixtures import make_tid2013


@pytest.fixture(scope="module")
def tid(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_tid2013, "tid2013")


def test_records_case_insensitive_files(tid):
    root, info, out = tid
    assert_images(root, out.images, info["good"], lambda x: x / 9)
    im = next(i for i in out.images if i.image_id == "i01_02_1.bmp")
    assert im.path == "distorted_images/I01_02_1.BMP"  # the real on-disk name
    assert im.ref_id == "I01" and im.ref_path == "reference_images/I01.BMP"
    assert im.attributes == {"distortion": "02", "level": "1"}


def test_tricky_lines_are_failures(tid):
    _, _, out = tid
    assert_failures(
        out,
        "tid2013",
        ["missing_file", "nan_score", "duplicate", "bad_number", "bad_row"],
        "mos_with_names.txt",
    )


def test_pairs_and_reference_grouping(tid):
    _, _, out = tid
    images, pairs = split_and_pair(
        out.images,
        dataset="tid2013",
        rule="reference",
        group="ref",
        pair_group="ref",
        test_fraction=0.5,
    )
    assert_pairs(images, pairs, margin=0.1, group="ref")
    assert {im.split for im in images} == {"train", "test"}
    # scores 6.1, 5.0, 3.2, 1.5 (+0.1 r): all 6 pairs of a reference differ by > 0.9 MOS
    assert len(pairs) == 12


def test_std_from_mos_std_txt(tid):
    _, info, out = tid
    got = {im.image_id: im.labels for im in out.images}
    assert {name: labels["std"] for name, labels in got.items()} == info["std"]
    assert all(labels["mos"] == info["good"][name] for name, labels in got.items())
    assert all(im.label == "mos" for im in out.images)  # std is kept, mos still decides


def test_without_mos_std_txt_no_std(tmp_path):
    info = make_tid2013(tmp_path)
    (tmp_path / "mos_std.txt").unlink()
    out = get_adapter("tid2013").read(tmp_path)
    assert {im.image_id for im in out.images} == set(info["good"])
    assert all(set(im.labels) == {"mos"} for im in out.images)
    assert len(out.failures) == 5


def test_mos_std_txt_of_another_length_is_one_failure(tmp_path):
    info = make_tid2013(tmp_path)
    std = tmp_path / "mos_std.txt"
    std.write_text("".join(std.read_text().splitlines(keepends=True)[:-1]))  # one line short
    out = get_adapter("tid2013").read(tmp_path)
    assert {im.image_id for im in out.images} == set(info["good"])  # MOS still read
    assert all("std" not in im.labels for im in out.images)  # misaligned: not used
    bad = [f for f in out.failures if f.item_id == "tid2013:mos_std.txt"]
    assert len(bad) == 1 and "12 std values for the 13 lines" in bad[0].message
    assert len(out.failures) == 6


def test_bad_std_value_is_a_bad_row(tmp_path):
    make_tid2013(tmp_path)
    std = tmp_path / "mos_std.txt"
    rows = std.read_text().splitlines()
    rows[1] = "n/a"  # row 2: i01_02_1.bmp
    std.write_text("\n".join(rows) + "\n")
    out = get_adapter("tid2013").read(tmp_path)
    assert "i01_02_1.bmp" not in {im.image_id for im in out.images}
    bad = next(f for f in out.failures if f.item_id == "tid2013:mos_with_names.txt:2")
    assert bad.error_type == "bad_number" and "mos_std.txt" in bad.message
