"""Task assembly (pipeline/assemble.py) on a tiny real dataset folder."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from distortions.pairs import CATEGORY_PHRASES
from pipeline.assemble import (
    TASK_NAMES,
    ComparisonPair,
    assemble_tasks,
    identification_record,
    load_pools,
    pairs_path,
    read_task_file,
)
from pipeline.convert import mentions_reference
from pipeline.records import AppliedDistortion, ImageInfo, SampleRecord
from pipeline.schema import TestRecord, TrainRecord, validate_task_record
from pipeline.store import atomic_write_jsonl
from tests.pipeline.task_fixtures import make_dataset

SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    manifest, store = make_dataset(root)
    summary = assemble_tasks(manifest, store)
    return manifest, store, summary


def _records(store, task, split):
    return read_task_file(store.task_path(task, split))


def _expected_short(distortions) -> str:
    # Written independently of pipeline.assemble: the spec's rule.
    if not distortions:
        return "None"
    text = " and ".join(CATEGORY_PHRASES[d["category"]] for d in distortions)
    return text[0].upper() + text[1:]


def test_all_task_files_written_and_valid(built) -> None:
    _, store, summary = built
    assert len(TASK_NAMES) == 14
    for task in TASK_NAMES:
        for split in SPLITS:
            recs = _records(store, task, split)
            assert recs, f"{task}/{split} is empty"
            assert summary["tasks"][task][split] == len(recs)
            for rec in recs:
                model = validate_task_record(rec, split)
                assert isinstance(model, TrainRecord if split == "train" else TestRecord)
                assert rec["id"].startswith(f"{task}:")
                for p in model.image_paths():
                    assert store.abs(p).is_file(), p
            assert len({r["id"] for r in recs}) == len(recs)


def test_rerun_is_byte_identical_and_ignores_global_rng(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    random.seed(1)
    np.random.seed(1)
    assemble_tasks(manifest, store)
    first = {(t, s): store.task_path(t, s).read_bytes() for t in TASK_NAMES for s in SPLITS}
    random.seed(99)
    np.random.seed(99)
    assemble_tasks(manifest, store)
    again = {(t, s): store.task_path(t, s).read_bytes() for t in TASK_NAMES for s in SPLITS}
    assert first == again


def test_no_noref_record_mentions_a_reference(built) -> None:
    _, store, _ = built
    for task in TASK_NAMES:
        if task.startswith("ref"):
            continue
        for split in SPLITS:
            for rec in _records(store, task, split):
                model = validate_task_record(rec, split)
                assert model.image_ref is None
                assert model.task_type.endswith("_noref")
                assert not mentions_reference(model.answer_text), rec["id"]
                assert not mentions_reference(model.question), rec["id"]


def test_brief_answers_equal_ground_truth(built) -> None:
    _, store, _ = built
    for task in ("refA_brief_sd", "refA_brief_md", "A_brief_sd", "A_brief_md"):
        for split in SPLITS:
            for rec in _records(store, task, split):
                dist = rec["distortions"]["A"]
                model = validate_task_record(rec, split)
                if rec["answer_form"] == "short":
                    assert model.answer_text == _expected_short(dist)
                else:
                    text = model.answer_text.lower()
                    for d in dist:
                        assert CATEGORY_PHRASES[d["category"]] in text
                    if len(dist) == 2:
                        phrases = [CATEGORY_PHRASES[d["category"]] for d in dist]
                        assert " and ".join(phrases) in text
                    if not dist:
                        assert not any(p in text for p in CATEGORY_PHRASES.values())
    for task in ("refAB_brief", "AB_brief"):
        for split in SPLITS:
            for rec in _records(store, task, split):
                better = "Image A" if rec["A_better_B"] else "Image B"
                other = "Image B" if rec["A_better_B"] else "Image A"
                model = validate_task_record(rec, split)
                if rec["answer_form"] == "short":
                    assert model.answer_text == better
                else:
                    assert better in model.answer_text
                    assert model.answer_text.index(better) < model.answer_text.find(other) \
                        or other not in model.answer_text
                assert rec["provenance"] == "judge" and rec["judge"] == "fr_score_test"


def test_test_split_form_short_answer_and_count_hint(built) -> None:
    _, store, _ = built
    for task in ("refA_brief_sd", "refA_brief_md", "A_brief_sd", "A_brief_md"):
        for rec in _records(store, task, "test"):
            assert "conversations" not in rec and {"query", "answer"} <= rec.keys()
            assert rec["answer_form"] == "short"
            n = len(rec["distortions"]["A"])
            if n == 0:  # clean: nothing to count, and the answer is "None"
                assert rec["count_hint"] is None and not re.search(r"\b(ONE|TWO)\b", rec["query"])
                assert rec["answer"] == "None"
                continue
            assert re.search(r"\bONE\b" if n == 1 else r"\bTWO\b", rec["query"])
            assert "single word or phrase" in rec["query"] or "short phrase" in rec["query"]
    for task in ("refAB_brief", "AB_brief"):
        for rec in _records(store, task, "test"):
            assert rec["answer"] in ("Image A", "Image B")
    for rec in _records(store, "refA_detail_sd", "train"):
        assert "query" not in rec and len(rec["conversations"]) == 2


def _synthetic_sample(i: int, split: str, distortions) -> SampleRecord:
    return SampleRecord(
        sample_id=f"s{i}", kind="refA_sd" if len(distortions) < 2 else "refA_md", split=split,
        ref_id="r", seed=1000 + i, width=64, height=48, image_ref="references/r.png",
        image_A=ImageInfo(path=f"images/s{i}_A.png", sha256="0" * 64, distortions=distortions))


def test_train_draws_mix_forms_and_hints() -> None:
    pools = load_pools("v1")
    d = [AppliedDistortion(name="blur_gaussian", category="blur", severity=2)]
    recs = [identification_record(_synthetic_sample(i, "train", d), "A_brief_sd", pools)
            for i in range(300)]
    forms = [r["answer_form"] for r in recs]
    hints = [r["count_hint"] for r in recs]
    assert 0.38 < forms.count("short") / len(recs) < 0.62
    assert 0.38 < hints.count("ONE") / len(recs) < 0.62
    assert set(hints) == {"ONE", None}
    questions = {r["conversations"][0]["value"] for r in recs}
    assert len(questions) > 40  # many paraphrases x forms x hints
    for r in recs:
        if r["answer_form"] == "short":
            assert r["conversations"][1]["value"] == "Blur"
    test = [identification_record(_synthetic_sample(i, "test", d), "A_brief_sd", pools)
            for i in range(50)]
    assert {r["answer_form"] for r in test} == {"short"}
    assert {r["count_hint"] for r in test} == {"ONE"}


def test_clean_samples_get_no_count_hint() -> None:
    pools = load_pools("v1")
    for split in ("train", "test"):
        recs = [identification_record(_synthetic_sample(i, split, []), "A_brief_sd", pools)
                for i in range(40)]
        assert {r["count_hint"] for r in recs} == {None}
        texts = [r.get("query") or r["conversations"][0]["value"] for r in recs]
        assert not any(re.search(r"\b(ONE|TWO)\b", t) for t in texts)
    assert {r["answer"] for r in recs} == {"None"}  # test split: the short form


def test_md_answer_order_and_capitalisation() -> None:
    pools = load_pools("v1")
    d = [AppliedDistortion(name="brightness_brighten_shift_HSV", category="brighten", severity=2),
         AppliedDistortion(name="noise_speckle", category="noise", severity=3)]
    rec = identification_record(_synthetic_sample(1, "test", d), "refA_brief_md", pools)
    assert rec["answer"] == "Overly high brightness and noise"
    assert "TWO" in rec["query"]


def test_severity_filter_switch(tmp_path, built) -> None:
    _, store, summary = built
    assert summary["filtered"] == {"A_brief_sd": 2, "A_brief_md": 2}
    slight = [r for r in _records(store, "refA_brief_sd", "train")
              if any(d["severity"] == 1 and d["category"] == "brighten"
                     for d in r["distortions"]["A"])]
    assert slight  # kept with a reference
    noref_ids = {r["sample_id"] for r in _records(store, "A_brief_sd", "train")}
    assert not noref_ids & {r["sample_id"] for r in slight}

    manifest, store2 = make_dataset(tmp_path)
    manifest = manifest.model_copy(
        update={"tasks": manifest.tasks.model_copy(update={"severity_filter_noref": False})})
    summary2 = assemble_tasks(manifest, store2)
    assert summary2["filtered"] == {}
    assert summary2["tasks"]["A_brief_sd"] == summary2["tasks"]["refA_brief_sd"]


def test_detail_skips_and_drops_are_counted(built) -> None:
    _, store, summary = built
    assert summary["skipped"] == {"no_response:refA_sd": 1}
    assert summary["dropped"] == {"mentions_reference:A_detail_sd": 1}
    ref = {r["sample_id"] for r in _records(store, "refA_detail_sd", "train")}
    noref = {r["sample_id"] for r in _records(store, "A_detail_sd", "train")}
    assert len(ref) == len(noref) + 1
    rec = _records(store, "refAB_detail_md", "train")[0]
    assert {"responder", "model", "prompt_version", "seed", "judge", "A_better_B",
            "distortions", "sample_id"} <= rec.keys()
    assert rec["distortions"]["B"]
    summary_file = (store.root / "tasks" / "summary.json").read_text()
    assert "mentions_reference" in summary_file


def test_human_pairs_join_brief_comparison(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    pairs = [
        ComparisonPair(pair_id="kadid-0001", split="train", image_ref="references/ref0.png",
                       image_A="references/ref1.png", image_B="references/ref2.png",
                       A_better_B=False, provenance="human", judge="human:kadid10k",
                       score_A=2.1, score_B=3.9, source="kadid10k"),
        ComparisonPair(pair_id="kadid-0002", split="train", image_ref=None,
                       image_A="references/ref1.png", image_B="references/ref3.png",
                       A_better_B=True, provenance="human", judge="human:kadid10k",
                       source="kadid10k"),
        ComparisonPair(pair_id="kadid-0003", split="train", image_ref=None,
                       image_A="references/missing.png", image_B="references/ref3.png",
                       A_better_B=True, provenance="human", judge="human:kadid10k",
                       source="kadid10k"),
    ]
    atomic_write_jsonl(pairs_path(store, "kadid10k", "train"), pairs)
    # a pairs/ folder of a dataset the manifest does not list (left by an earlier build) is
    # ignored; naming it in tasks.pair_sources brings it in
    assemble_tasks(manifest, store)
    assert not any(r["id"].startswith("AB_brief:kadid")
                   for r in _records(store, "AB_brief", "train"))
    manifest = manifest.model_copy(
        update={"tasks": manifest.tasks.model_copy(update={"pair_sources": ["kadid10k"]})})
    summary = assemble_tasks(manifest, store)
    ref_ids = {r["id"] for r in _records(store, "refAB_brief", "train")}
    noref_ids = {r["id"] for r in _records(store, "AB_brief", "train")}
    assert "refAB_brief:kadid-0001" in ref_ids and "refAB_brief:kadid-0002" not in ref_ids
    assert {"AB_brief:kadid-0001", "AB_brief:kadid-0002"} <= noref_ids
    assert "AB_brief:kadid-0003" not in noref_ids
    assert summary["skipped"]["missing_image"] == 1
    rec = next(r for r in _records(store, "AB_brief", "train") if r["id"] == "AB_brief:kadid-0001")
    assert rec["provenance"] == "human" and rec["judge"] == "human:kadid10k"
    answer = rec["conversations"][1]["value"]
    assert answer == "Image B" if rec["answer_form"] == "short" else answer.startswith(
        ("Image B", "The quality of Image B", "Overall, Image B"))


def test_partial_rerun_keeps_other_counts(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    assemble_tasks(manifest, store)
    assemble_tasks(manifest, store, kinds=["refA_sd"], splits=["test"])
    summary = json.loads((store.root / "tasks" / "summary.json").read_text())
    assert set(summary["tasks"]) == set(TASK_NAMES)
    assert summary["tasks"]["refAB_brief"]["train"] > 0


def test_pools_are_large_enough_and_checked() -> None:
    pools = load_pools("v1")
    for key in ("ref", "noref"):
        assert len(set(pools.identify[key])) >= 20
        assert len(set(pools.compare[key])) >= 20
    for key in ("refA", "A", "refAB", "AB"):
        assert len(set(pools.detail[key])) >= 20
    with pytest.raises(FileNotFoundError, match="questions/identify.v999"):
        load_pools("v999")


def test_unknown_task_name(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown task"):
        assemble_tasks(manifest, store, tasks=["A_brief_xx"])


def test_end_to_end_bare_build(tmp_path) -> None:
    """The real build (ingest .. respond with the template responder .. assemble .. report)."""
    from pipeline.build import run_build
    from pipeline.manifest import Manifest
    from pipeline.records import SampleRecord
    from pipeline.schema import LlavaRecord, ShareGPTRecord
    from pipeline.store import read_jsonl

    manifest = Manifest.model_validate({
        "name": "tiny-e2e", "seed": 5, "output": str(tmp_path / "out"),
        "references": {"root": "@skimage",
                       "splits": {"train": ["astronaut.png", "chelsea.png"],
                                  "test": ["coffee.png"]}},
        "resize": {"short_side": 64},
        "counts": {"refA_sd": {"train": 6, "test": 3}, "refA_md": {"train": 3, "test": 2},
                   "refAB_sd": {"train": 3, "test": 2}, "refAB_md": {"train": 2, "test": 2}},
        "responder": {"kind": "template"},
        "tasks": {"exports": ["llava-onevision", "sharegpt", "llava", "deqa-score"],
                  "contact_sheet_samples": 4},
    })
    summary = run_build(manifest)
    store_root = tmp_path / "out"
    assert {"respond", "assemble", "report", "lock"} <= summary.keys()
    samples = {}
    for kind in manifest.kinds():
        for split in SPLITS:
            for s in read_jsonl(store_root / "samples" / kind / f"{split}.jsonl", SampleRecord):
                samples[s.sample_id] = s
    for task in TASK_NAMES:
        for split in SPLITS:
            recs = read_task_file(store_root / "tasks" / task / f"{split}.json")
            assert recs or task.startswith("A_brief"), f"{task}/{split} empty"
            for rec in recs:
                model = validate_task_record(rec, split)
                assert all((store_root / p).is_file() for p in model.image_paths())
                sample = samples[rec["sample_id"]]
                if "brief" in task and "AB" not in task and rec["answer_form"] == "short":
                    truth = [d.model_dump() for d in sample.image_A.distortions]
                    assert model.answer_text == _expected_short(truth)
                if task.endswith("AB_brief"):
                    assert rec["A_better_B"] == sample.judge.A_better_B
                if not task.startswith("ref"):
                    assert not mentions_reference(model.answer_text)
                    assert not mentions_reference(model.question)
    llava = read_task_file(store_root / "exports" / "llava_onevision" / "refAB_detail_md"
                           / "test.json")
    assert llava and all(len(LlavaRecord.model_validate(r).image) == 3 for r in llava)
    # LLaVA 1.5 writes the single-image tasks only; deqa-score has no labels/: said, not fatal
    assert (store_root / "exports" / "llava" / "A_brief_sd" / "train.json").is_file()
    assert not (store_root / "exports" / "llava" / "refA_brief_sd").exists()
    assert "labels" in summary["assemble"]["export:deqa-score"]["error"]
    share = json.loads((store_root / "exports" / "sharegpt" / "A_detail_sd_train.json").read_text())
    assert share and all(len(ShareGPTRecord.model_validate(r).images) == 1 for r in share)
    card = (store_root / "report" / "README.md").read_text()
    assert "# Dataset card: tiny-e2e" in card and "| AB_detail_md |" in card
    lock = json.loads((store_root / "manifest.lock.json").read_text())
    assert "tasks/refA_brief_sd/train.json" in lock["outputs"]
    assert "report/README.md" in lock["outputs"]
