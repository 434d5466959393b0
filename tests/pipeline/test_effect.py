"""Labels true to pixels: the effect check and the tie rule, measured on the written images.

A build of ~300 samples over the ten bundled photos (two of them grey), scaled to 40 px:
no labelled image equals its reference (or is within the effect threshold of it), no
colour-only distortion lands on a grey reference, clean images are the reference, and no
pair has a verdict that the judge's scores cannot separate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import yaml

import distortions
from pipeline import effect
from pipeline.build import run_build
from pipeline.ingest import decode_png
from pipeline.judge import FrScoreJudge, fr_score
from pipeline.manifest import load_manifest
from pipeline.records import AppliedDistortion, ReferenceRecord, SampleRecord
from pipeline.store import Store, atomic_write_jsonl, read_jsonl

PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
          "motorcycle_left.png", "retina.jpg", "rocket.jpg", "coins.png", "ihc.png")
COUNTS = {"refA_sd": 100, "refA_md": 60, "refAB_sd": 70, "refAB_md": 70}


def _manifest(folder: Path) -> Path:
    data = {
        "name": "effect", "seed": 3, "output": str(folder / "out"),
        "references": {"root": str(Path(skimage.data.__file__).resolve().parent),
                       "splits": {"train": list(PHOTOS)}},
        "resize": {"short_side": 40}, "chunk_size": 50,
        "counts": {k: {"train": n} for k, n in COUNTS.items()},
        "tasks": {"report": False},
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("effect")
    run_build(load_manifest(_manifest(folder)), stages=["ingest", "plan", "synthesize"])
    return Store(folder / "out")


def _samples(store: Store) -> list[SampleRecord]:
    return [s for kind in COUNTS
            for s in read_jsonl(store.samples_path(kind, "train"), SampleRecord)]


def test_no_labelled_image_equals_its_reference(built: Store) -> None:
    refs = {r.ref_id: r for r in read_jsonl(built.references_index, ReferenceRecord)}
    assert sorted(r.ref_id for r in refs.values() if r.grey) == ["camera", "coins"]
    samples = _samples(built)
    assert len(samples) == sum(COUNTS.values())
    labelled = clean = 0
    for s in samples:
        ref_px = decode_png(built.abs(s.image_ref).read_bytes())
        for img in (s.image_A, s.image_B):
            if img is None:
                continue
            px = decode_png(built.abs(img.path).read_bytes())
            if not img.distortions:  # clean: exactly the reference
                clean += 1
                assert img.path == s.image_ref and np.array_equal(px, ref_px)
                continue
            labelled += 1
            assert not np.array_equal(px, ref_px), (s.sample_id, img.distortions)
            assert effect.psnr(ref_px, px) < effect.MAX_EFFECT_PSNR_DB, s.sample_id
            if refs[s.ref_id].grey:
                cats = {d.category for d in img.distortions}
                assert not cats & set(distortions.COLOUR_CATEGORIES), s.sample_id
    assert labelled > 300 and clean > 0


def test_no_verdict_on_a_tie(built: Store) -> None:
    pairs = [s for s in _samples(built) if s.image_B is not None]
    assert len(pairs) == COUNTS["refAB_sd"] + COUNTS["refAB_md"]
    for s in pairs:
        a = decode_png(built.abs(s.image_A.path).read_bytes())
        b = decode_png(built.abs(s.image_B.path).read_bytes())
        if s.tie:
            assert s.judge is None
            continue
        assert s.judge is not None
        assert not np.array_equal(a, b), s.sample_id
        assert abs(s.judge.score_A - s.judge.score_B) >= effect.TIE_MARGIN, s.sample_id
        # the recorded scores are the pixels' scores
        ref = decode_png(built.abs(s.image_ref).read_bytes())
        assert s.judge.score_A == fr_score(ref, a) and s.judge.score_B == fr_score(ref, b)
    # a pair whose B was redrawn for a tie says so
    for s in pairs:
        for r in s.image_B.redraws:
            assert r.reason.startswith(("tie with A", *(d.name for d in r.distortions)))


def test_md_images_are_clean_one_or_two(built: Store) -> None:
    samples = _samples(built)
    a_md = {len(s.image_A.distortions) for s in samples if s.kind == "refA_md"}
    ab_md = {len(img.distortions) for s in samples if s.kind == "refAB_md"
             for img in (s.image_A, s.image_B)}
    assert a_md <= {0, 2} and 2 in a_md
    assert ab_md <= {0, 1, 2} and {1, 2} <= ab_md


# ------------------------------------------------------------------------- the mechanism
def test_a_step_without_effect_is_redrawn_deterministically_and_recorded() -> None:
    flat = np.full((40, 48, 3), (180, 120, 60), np.uint8)  # the stretch cannot act on it
    planned = [AppliedDistortion(name="contrast_strengthen_stretch",
                                 category="contrast_strengthen", severity=3)]
    one = effect.render_checked(flat, planned, 1234, "A")
    two = effect.render_checked(flat, planned, 1234, "A")
    px, used, _, rejected = one
    assert np.array_equal(px, two[0]) and used == two[1] and rejected == two[3]
    assert rejected[0].distortions == planned and rejected[0].reason.endswith("unchanged")
    assert used != planned and not np.array_equal(px, flat)
    assert effect.psnr(flat, px) < effect.MAX_EFFECT_PSNR_DB


def test_grey_reference_stats() -> None:
    grey = np.repeat(skimage.data.camera()[::8, ::8, None], 3, axis=2)
    m, is_grey = effect.colour_stats(grey)
    assert is_grey and m == 0.0
    m, is_grey = effect.colour_stats(skimage.data.astronaut()[::8, ::8])
    assert not is_grey and m > 15
    assert effect.excluded_categories(True) == distortions.COLOUR_CATEGORIES
    assert effect.excluded_categories(False) == ()


def test_two_identical_images_are_always_a_tie() -> None:
    ref = skimage.data.astronaut()[::8, ::8].copy()
    same = [AppliedDistortion(name="contrast_strengthen_scale", category="contrast_strengthen",
                              severity=3)]
    judge = FrScoreJudge()

    def verdict(a: np.ndarray, b: np.ndarray):
        return judge.verdict("s", ref, a, b)

    assert effect.is_tie(0.9, 0.9) and effect.is_tie(0.5, 0.2, ref, ref)
    assert not effect.is_tie(0.9, 0.9 - 2 * effect.TIE_MARGIN)
    # without redraws (a judge that does not score pixels): no verdict, a tie
    images, v, tie = effect.render_sample_images(ref, 5, same, same, judge=verdict)
    assert np.array_equal(images["A"].pixels, images["B"].pixels)
    assert v is None and tie
    # with redraws (the built-in judge): B is drawn again, the tie is recorded, a verdict
    # is given only once the scores are separable
    images, v, tie = effect.render_sample_images(ref, 5, same, same, judge=verdict,
                                                 redraw_ties=True)
    assert not tie and v is not None
    assert abs(v.score_A - v.score_B) >= effect.TIE_MARGIN
    assert images["B"].redraws[0].reason.startswith("tie with A")
    assert images["B"].redraws[0].distortions == same


def test_assemble_leaves_a_tie_out_of_the_comparison_tasks(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["counts"] = {"refAB_sd": {"train": 4}}
    data["references"]["splits"] = {"train": ["astronaut.png", "chelsea.png"]}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    manifest = load_manifest(path)
    run_build(manifest, stages=["ingest", "plan", "synthesize"])
    store = Store(tmp_path / "out")
    samples = list(read_jsonl(store.samples_path("refAB_sd", "train"), SampleRecord))
    tied = samples[0].model_copy(update={"tie": True, "judge": None})
    atomic_write_jsonl(store.samples_path("refAB_sd", "train"), [tied, *samples[1:]])
    run_build(manifest, stages=["respond", "assemble"])
    summary = json.loads((store.root / "tasks" / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped"].get("tie") == 1
    for task in ("refAB_brief", "AB_brief", "refAB_detail_sd", "AB_detail_sd"):
        text = store.task_path(task, "train").read_text(encoding="utf-8")
        assert tied.sample_id not in text, task
        assert samples[1].sample_id in text, task
