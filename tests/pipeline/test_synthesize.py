"""Synthesis of one split through the stage API: records, clean reuse, failures, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.build import (
    chunk_plans,
    ingest_references,
    merge_samples,
    plan_split,
    synthesize_chunk,
)
from pipeline.manifest import Manifest
from pipeline.records import AppliedDistortion, SamplePlan, SampleRecord
from pipeline.store import Store, atomic_write_jsonl, read_jsonl
from pipeline.synthesize import chunk_path, render_image
from tests.pipeline.build_fixtures import image_array, load, photo_dir, write_manifest

__all__ = ["photo_dir"]


@pytest.fixture
def setup(photo_dir: Path, tmp_path: Path) -> tuple[Manifest, Store]:
    m = load(write_manifest(tmp_path, photo_dir, counts={"refAB_sd": {"train": 7}}))
    store = Store(tmp_path / "out")
    ingest_references(m, store)
    return m, store


def _run_split(m: Manifest, store: Store, kind: str, split: str) -> list[dict[str, int]]:
    plans = plan_split(m, store, kind, split)
    return [synthesize_chunk(m, store, kind, split, i, c)
            for i, c in chunk_plans(plans, m.chunk_size)]


def test_stage_api_round_trip_and_resume(setup: tuple[Manifest, Store]) -> None:
    m, store = setup
    first = _run_split(m, store, "refAB_sd", "train")
    assert [s["done"] for s in first] == [3, 3, 1]
    assert merge_samples(store, "refAB_sd", "train") == {"samples": 7, "failed": 0}
    recs = list(read_jsonl(store.samples_path("refAB_sd", "train"), SampleRecord))
    plans = list(read_jsonl(store.plan_path("refAB_sd", "train"), SamplePlan))
    assert [r.sample_id for r in recs] == [p.sample_id for p in plans]
    for r, p in zip(recs, plans):
        assert r.image_A.distortions == p.A and r.image_B.distortions == p.B
        assert r.judge.judge == "fr_msssim_ycc_v1"
        assert r.judge.A_better_B == (r.judge.score_A >= r.judge.score_B)
    again = _run_split(m, store, "refAB_sd", "train")
    assert [s["skipped"] for s in again] == [3, 3, 1] and all(s["done"] == 0 for s in again)

    # Another encoder setting makes the chunk stale: it is redone, not skipped.
    m6 = m.model_copy(update={"png_compress_level": 6})
    redo = _run_split(m6, store, "refAB_sd", "train")
    assert [s["done"] for s in redo] == [3, 3, 1]


def test_pixels_follow_the_plan_and_clean_reuses_reference(setup: tuple[Manifest, Store]
                                                           ) -> None:
    m, store = setup
    plans = plan_split(m, store, "refAB_sd", "train")
    plan = plans[0]
    d = AppliedDistortion(name=plan.A[0].name if plan.A else plan.B[0].name,
                          category=(plan.A or plan.B)[0].category, severity=2)
    custom = plan.model_copy(update={"A": [], "B": [d]})
    synthesize_chunk(m, store, "refAB_sd", "train", 0, [custom])
    data = json.loads(chunk_path(store, "refAB_sd", "train", 0).read_text())
    rec = SampleRecord.model_validate(data["samples"][0])
    assert rec.image_A.path == rec.image_ref == f"references/{plan.ref_id}.png"
    assert rec.image_A.distortions == []
    assert rec.judge.A_better_B and rec.judge.score_A == 1.0
    ref = image_array(store.abs(rec.image_ref))
    from pipeline.seeds import rng_for

    expected, _ = render_image(ref, [d], rng_for(plan.seed, "B"))
    assert np.array_equal(image_array(store.abs(rec.image_B.path)), expected)


def test_failing_sample_is_recorded_and_chunk_goes_on(setup: tuple[Manifest, Store]) -> None:
    m, store = setup
    plans = plan_split(m, store, "refAB_sd", "train")[:3]
    bad = plans[1].model_copy(update={
        "A": [AppliedDistortion(name="no_such_distortion", category="blur", severity=1)]})
    chunk = [plans[0], bad, plans[2]]
    atomic_write_jsonl(store.plan_path("refAB_sd", "train"), chunk)
    summary = synthesize_chunk(m, store, "refAB_sd", "train", 0, chunk)
    assert summary == {"done": 2, "skipped": 0, "failed": 1, "judged": 0}
    assert merge_samples(store, "refAB_sd", "train") == {"samples": 2, "failed": 1}
    failures = store.failures("synthesize")
    assert [f.item_id for f in failures] == [bad.sample_id]
    assert "no_such_distortion" in failures[0].message
    assert not list(store.image_dir("refAB_sd", "train").rglob(f"{bad.sample_id}_*"))
    # Merging again does not duplicate the failure.
    merge_samples(store, "refAB_sd", "train")
    assert len(store.failures("synthesize")) == 1


def test_merge_refuses_missing_chunks(setup: tuple[Manifest, Store]) -> None:
    m, store = setup
    plans = plan_split(m, store, "refAB_sd", "train")
    synthesize_chunk(m, store, "refAB_sd", "train", 0, plans[:3])
    with pytest.raises(RuntimeError, match="chunk 1 is missing"):
        merge_samples(store, "refAB_sd", "train")


def test_distortion_notes_reach_the_record(tmp_path: Path) -> None:
    import distortions
    from PIL import Image

    if "quantization_otsu" not in distortions.REGISTRY:
        pytest.skip("quantization_otsu is not registered")
    root = tmp_path / "refs"
    root.mkdir()
    Image.new("RGB", (48, 40), (128, 128, 128)).save(root / "flat.png")  # flat: must be noted
    m = Manifest(name="n", output=str(tmp_path / "out"), references={"root": str(root),
                 "test_fraction": 0.0}, counts={"refA_sd": {"train": 1}})
    store = Store(tmp_path / "out")
    ingest_references(m, store)
    plan = plan_split(m, store, "refA_sd", "train")[0].model_copy(update={
        "A": [AppliedDistortion(name="quantization_otsu", category="quantization", severity=3)]})
    atomic_write_jsonl(store.plan_path("refA_sd", "train"), [plan])
    synthesize_chunk(m, store, "refA_sd", "train", 0, [plan])
    merge_samples(store, "refA_sd", "train")
    rec = next(read_jsonl(store.samples_path("refA_sd", "train"), SampleRecord))
    # Otsu cannot change a flat image: the note is kept with the rejected draw, and the
    # image is redrawn (the effect check) until a distortion changes it
    first = rec.image_A.redraws[0]
    assert first.distortions[0].name == "quantization_otsu" and first.reason.endswith("unchanged")
    assert first.notes
    assert all(n.startswith("quantization_otsu: ") for n in rec.image_A.notes)
    assert not any(n.startswith("quantization_otsu: quantization_otsu") for n in rec.image_A.notes)


def test_chunks_dealt_by_reference_decode_each_once(photo_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 samples over 3 train references, dealt round-robin in the plan: consecutive chunks
    # of 4 would decode all 3 references in each chunk; dealt, each chunk holds one.
    import pipeline.synthesize as synth

    decoded: list[int] = []
    real = synth.decode_png

    def counting(data: bytes) -> np.ndarray:
        decoded[-1] += 1
        return real(data)

    monkeypatch.setattr(synth, "decode_png", counting)
    outputs = {}
    for size in (1, 4, 256):
        m = load(write_manifest(tmp_path / str(size), photo_dir, chunk_size=size,
                                counts={"refA_sd": {"train": 12}}))
        store = Store(tmp_path / str(size) / "out")
        ingest_references(m, store)
        plans = plan_split(m, store, "refA_sd", "train")
        decoded.clear()
        for i, chunk in chunk_plans(plans, size):
            decoded.append(0)
            synthesize_chunk(m, store, "refA_sd", "train", i, chunk)
            assert decoded[-1] == len({p.ref_id for p in chunk})  # once per reference
        assert len(decoded) == -(-12 // size)
        assert sum(decoded) == {1: 12, 4: 3, 256: 3}[size]
        merge_samples(store, "refA_sd", "train")
        recs = list(read_jsonl(store.samples_path("refA_sd", "train"), SampleRecord))
        assert [r.sample_id for r in recs] == [p.sample_id for p in plans]  # plan order
        images = sorted((store.root / "images").rglob("*.png"))
        outputs[size] = (store.samples_path("refA_sd", "train").read_bytes(),
                         [(p.relative_to(store.root), p.read_bytes()) for p in images])
    assert outputs[1] == outputs[4] == outputs[256]
