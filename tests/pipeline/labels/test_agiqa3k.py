"""AGIQA-3k adapter: data.csv with prompts, header variants, prompt-grouped splits and pairs."""

from __future__ import annotations

import pytest

from pipeline.labels import get_adapter
from pipeline.labels.splits import assign_splits, grouping_violations
from tests.pipeline.labels.checks import (
    assert_failures,
    assert_images,
    assert_pairs,
    make_and_read,
    split_and_pair,
)
from tests.pipeline.labels.fixtures import make_agiqa3k


@pytest.fixture(scope="module")
def agiqa(tmp_path_factory):
    return make_and_read(tmp_path_factory, make_agiqa3k, "AGIQA-3k")


def test_records_with_prompt_and_alignment(agiqa):
    root, info, out = agiqa
    assert_images(root, out.images, {k: v[0] for k, v in info["good"].items()}, lambda x: x / 5)
    im = next(i for i in out.images if i.image_id == "sd1.5_normal_001.jpg")
    assert im.prompt == "a photo of thing 1"
    assert im.labels["mos_align"] == 2.5 and im.labels["std_quality"] == 0.4
    assert im.attributes == {"style": "anime style", "model": "sd1.5", "setting": "normal"}
    assert im.path == "AGIQA-3K/sd1.5_normal_001.jpg"


def test_tricky_rows_are_failures(agiqa):
    _, _, out = agiqa
    assert_failures(
        out, "agiqa3k", ["missing_file", "duplicate", "nan_score", "bad_number"], "data.csv"
    )


def test_ten_prompt_grouped_splits(agiqa):
    _, info, out = agiqa
    items = [(im.image_id, im.group("prompt"), im.split) for im in out.images]
    reps = assign_splits(items, "prompt", seed=5, dataset="agiqa3k", test_fraction=0.2, repeats=10)
    assert len(reps) == 10
    group = {i: g for i, g, _ in items}
    for rep in reps:
        assert not grouping_violations([(group[i], s) for i, s in rep.items()])
        test_prompts = {group[i] for i, s in rep.items() if s == "test"}
        assert len(test_prompts) == 1  # round(0.2 * 6 prompts)
    assert len({frozenset(i for i, s in rep.items() if s == "test") for rep in reps}) > 1


def test_pairs_within_one_prompt(agiqa):
    _, _, out = agiqa
    images, pairs = split_and_pair(
        out.images, dataset="agiqa3k", rule="prompt", group="prompt", pair_group="prompt"
    )
    assert_pairs(images, pairs, margin=0.1, group="prompt")
    assert all(p.prompt is not None and p.ref_path is None for p in pairs)


def test_quoted_prompt_with_comma_and_newline(tmp_path):
    from tests.pipeline.labels.fixtures import tiny_image

    for n in ("a.jpg", "b.jpg"):
        tiny_image(tmp_path / n, 1)
    (tmp_path / "data.csv").write_text(
        "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"
        'a.jpg,"a cat, sitting\non a mat",,,,2.5,0.3,2.0,0.4\n'
        "b.jpg,a dog,,,,3.5,0.3,2.0,0.4\n"
    )
    out = get_adapter("agiqa3k").read(tmp_path)
    assert not out.failures
    a, b = out.images
    assert a.prompt == "a cat, sitting\non a mat" and a.row == 3  # physical line where it ends
    assert b.row == 4 and b.path == "b.jpg"
