"""Label task families end to end: `dqgen build --no-prefect` of a manifest with AGIQA-3k,
AIGCIQA2023 and KonIQ-10k fixtures (official layouts) writes A_score, the AIGC tasks per
target, k-fold sets and A_score_isp records; unit checks of level words, prompt quoting
and the ISP augmentations."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.assemble import read_task_file
from pipeline.cli import app
from pipeline.export import to_sharegpt
from pipeline.exporters.llava import to_llava_onevision as to_llava
from pipeline.label_tasks import (
    LABEL_TASK_TYPES,
    LEVEL_RULE,
    build_label_tasks,
    isp_record,
    level_word,
    load_score_pools,
    quote_prompt,
)
from pipeline.labels.records import LabelledImage
from pipeline.manifest import IspConfig, load_manifest
from pipeline.schema import LlavaRecord, ShareGPTRecord, split_form, validate_task_record
from pipeline.store import Store, read_jsonl
from tests.pipeline.labels import fixtures as F

runner = CliRunner()
TRICKY = 'a "quoted" cat,\non a mat\twith {{ braces }} — café 猫 🐱'
LONG = "a very long prompt " + " ".join(f"word{i}" for i in range(80))
MAX_CHARS = 120


def _rewrite_csv(path: Path, fn, *, bom: bool = False) -> None:
    """Change cells of a fixture's label table in place, keeping its layout."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    body = [fn(dict(zip(header, r, strict=True))) for r in body]
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([[row[h] for h in header] for row in body])


def _agiqa3k(root: Path) -> None:
    fx = F.make_agiqa3k(root)
    p0, p1 = fx["prompts"][:2]

    def fn(row: dict) -> dict:
        row["prompt"] = {p0: TRICKY, p1: LONG}.get(row["prompt"], row["prompt"])
        try:  # alignment runs against quality: a target mixed up shows at once
            row["mos_align"] = f"{5.0 - float(row['mos_quality']):.3f}"
        except ValueError:
            pass
        return row

    _rewrite_csv(root / "data.csv", fn, bom=True)


def _aigciqa2023(root: Path) -> None:
    F.make_aigciqa2023(root)

    def fn(row: dict) -> dict:
        try:
            q = float(row["quality_mos"])
        except ValueError:
            return row
        row["correspondence_mos"] = f"{100.0 - q:.1f}" if q <= 100 else "40"
        # bin edges on purpose: 20 -> poor, 40 -> fair, 80 -> excellent
        row["authenticity_mos"] = ("20.0", "40.0", "80.0", "10.0")[int(row[""]) % 4]
        return row

    _rewrite_csv(root / "AIGCIQA2023.csv", fn)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label_tasks")
    _agiqa3k(tmp / "data" / "agiqa3k")
    _aigciqa2023(tmp / "data" / "aigciqa2023")
    F.make_koniq10k(tmp / "data" / "koniq10k")
    manifest = tmp / "m.yaml"
    manifest.write_text(
        "name: lt\nseed: 5\nsources:\n"
        "  - {dataset: agiqa3k, root: data/agiqa3k, repeats: 3}\n"
        "  - {dataset: aigciqa2023, root: data/aigciqa2023, repeats: 3}\n"
        "  - {dataset: koniq10k, root: data/koniq10k}\n"
        f"tasks:\n  labels:\n    folds: 3\n    prompt_max_chars: {MAX_CHARS}\n"
        "    isp: {k: 3, scale_probability: 0.5, flip_probability: 0.5}\n")
    out = tmp / "out"
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return manifest, out


def _records(out: Path, task: str, split: str) -> list[dict]:
    return read_task_file(out / "tasks" / task / f"{split}.json")


def _images(out: Path, dataset: str) -> dict[str, LabelledImage]:
    path = out / "labels" / dataset / "images.jsonl"
    return {im.image_id: im for im in read_jsonl(path, LabelledImage)}


def _all_files(out: Path) -> list[tuple[str, str, Path]]:
    files = []
    for task in LABEL_TASK_TYPES:
        folder = out / "tasks" / task
        files += [(task, p.stem, p) for p in folder.glob("*.json")]
        files += [(task, f"{p.parent.name}/{p.stem}", p) for p in folder.glob("fold*/*.json")]
    return files


def test_build_writes_scoring_alignment_fold_and_isp_files(built) -> None:
    _, out = built
    for task in ("A_score", "A_score_prompt", "A_align", "A_auth", "AB_score_prompt",
                 "AB_align", "AB_auth", "A_score_isp"):
        assert _records(out, task, "train"), task
        assert (out / "tasks" / task / "test.json").is_file(), task
        for k in range(3):
            assert (out / "tasks" / task / f"fold{k}" / "train.json").is_file(), (task, k)
    sources = {r["dataset"] for r in _records(out, "A_score", "train")}
    assert sources == {"agiqa3k", "aigciqa2023", "koniq10k"}
    assert {r["dataset"] for r in _records(out, "A_align", "train")} == {"agiqa3k",
                                                                        "aigciqa2023"}
    assert {r["dataset"] for r in _records(out, "A_auth", "train")} == {"aigciqa2023"}
    summary = json.loads((out / "tasks" / "summary.json").read_text())
    assert "A_score" in summary["tasks"] and "fold0/test" in summary["folds"]["A_align"]
    lock = json.loads((out / "manifest.lock.json").read_text())
    assert "tasks/A_score_isp/fold2/test.json" in lock["outputs"]


def test_records_load_as_depictqa_reads_them(built) -> None:
    # DepictQA's TrainDataset takes image_ref/image_A/image_B for task types containing
    # "quality" and reads `conversations`; its ValDataset reads id, the three paths, query.
    _, out = built
    files = _all_files(out)
    assert len(files) > 30
    for task, split, path in files:
        records = json.loads(path.read_text(encoding="utf-8"))
        for rec in records:
            validate_task_record(rec, split)
            assert "quality" in rec["task_type"] and rec["task_type"] == LABEL_TASK_TYPES[task]
            for key in ("image_ref", "image_A", "image_B"):
                assert key in rec
                if rec[key]:
                    assert os.path.isfile(os.path.join(out, rec[key])), rec[key]
            if split_form(split) == "train":
                assert [t["from"] for t in rec["conversations"]] == ["human", "gpt"]
            else:
                assert rec["query"] and rec["answer"] and rec["id"]


def test_level_words_at_bin_edges() -> None:
    edges = {0.0: "bad", 0.1999: "bad", 0.2: "poor", 0.3999: "poor", 0.4: "fair",
             0.5999: "fair", 0.6: "good", 0.7999: "good", 0.8: "excellent", 1.0: "excellent",
             3 * 0.2: "good", 60.0 / 100.0: "good"}
    for score, word in edges.items():
        assert level_word(score) == word, score
    for bad in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match="score"):
            level_word(bad)


def test_level_answers_follow_the_bin_rule(built) -> None:
    _, out = built
    seen_edges = set()
    for split in ("train", "test"):
        for task in ("A_score", "A_score_prompt", "A_align", "A_auth"):
            for rec in _records(out, task, split):
                assert rec["level"] == level_word(rec["score"]) and rec["level_rule"] == LEVEL_RULE
                answer = rec["answer"] if split == "test" else rec["conversations"][1]["value"]
                if rec["answer_form"] == "short":
                    assert answer == rec["level"].capitalize()
                else:
                    assert rec["level"] in answer
                assert split != "test" or rec["answer_form"] == "short"
                if rec["score"] in (0.2, 0.4, 0.6, 0.8):
                    seen_edges.add((rec["score"], rec["level"]))
    assert {(0.2, "poor"), (0.4, "fair"), (0.8, "excellent"), (0.6, "good")} <= seen_edges
    koniq = next(r for r in _records(out, "A_score", "train") if r["dataset"] == "koniq10k")
    assert koniq["mos"] == pytest.approx(100 * koniq["score"]) and koniq["std"] == 0.55
    assert koniq["score_std"] == pytest.approx(0.0055)


def test_prompts_with_quotes_newlines_unicode(built) -> None:
    _, out = built
    text = (out / "tasks" / "A_align" / "train.json").read_text(encoding="utf-8")
    json.loads(text)  # the file is valid JSON whatever the prompt holds
    recs = [r for s in ("train", "test") for r in _records(out, "A_align", s)
            if r["dataset"] == "agiqa3k"]
    tricky = [r for r in recs if r["prompt"] == TRICKY]
    long = [r for r in recs if r["prompt"] == LONG]
    assert tricky and long
    quoted = quote_prompt(TRICKY, MAX_CHARS)
    assert quoted == "\"a 'quoted' cat, on a mat with {{ braces }} — café 猫 🐱\""
    for rec in tricky:
        q = rec["conversations"][0]["value"] if "conversations" in rec else rec["query"]
        assert quoted in q and "\n" not in q and "\t" not in q and q.count('"') == 2
    cut = quote_prompt(LONG, MAX_CHARS)
    assert len(cut) <= MAX_CHARS + 2 and cut.endswith('..."') and LONG.startswith(cut[1:-4])
    for rec in long:
        q = rec["conversations"][0]["value"] if "conversations" in rec else rec["query"]
        assert cut in q and LONG not in q


def test_alignment_and_quality_targets_kept_apart(built) -> None:
    _, out = built
    for dataset, align_key, quality_key in (("agiqa3k", "mos_align", "mos_quality"),
                                            ("aigciqa2023", "correspondence_mos", "quality_mos")):
        images = _images(out, dataset)
        scale = next(iter(images.values())).scale.max
        for split in ("train", "test"):
            for rec in _records(out, "A_align", split):
                if rec["dataset"] != dataset:
                    continue
                im = images[rec["image_id"]]
                assert rec["label"] == align_key
                assert rec["score"] == pytest.approx(im.labels[align_key] / scale)
                assert rec["score"] != pytest.approx(im.score)
            for rec in _records(out, "A_score_prompt", split):
                if rec["dataset"] == dataset:
                    assert rec["label"] == quality_key and rec["score"] == images[rec["image_id"]].score
            for task, key in (("AB_align", align_key), ("AB_score_prompt", quality_key)):
                for rec in _records(out, task, split):
                    if rec["dataset"] != dataset:
                        continue
                    a, b = images[rec["A_id"]], images[rec["B_id"]]
                    assert rec["A_better_B"] == (a.labels[key] > b.labels[key]), task
                    assert a.prompt == b.prompt == rec["prompt"]
                    assert rec["difference"] > rec["margin"]
    auth = _records(out, "A_auth", "train")
    assert {r["label"] for r in auth} == {"authenticity_mos"}
    # alignment runs against quality in the fixtures: the two pair sets disagree
    align_pairs = {(r["A_id"], r["B_id"]): r["A_better_B"] for r in _records(out, "AB_align", "train")}
    quality = {(r["A_id"], r["B_id"]): r["A_better_B"]
               for r in _records(out, "AB_score_prompt", "train")}
    common = set(align_pairs) & set(quality)
    assert common and all(align_pairs[p] != quality[p] for p in common)


def test_kfold_sets_never_share_a_prompt(built) -> None:
    _, out = built
    tests_per_fold = []
    for k in range(3):
        for task in ("A_score_prompt", "A_align", "AB_align", "A_score"):
            folder = out / "tasks" / task / f"fold{k}"
            prompts = {s: {r["prompt"] for r in read_task_file(folder / f"{s}.json")}
                       for s in ("train", "test")}
            assert prompts["train"] and prompts["test"], (task, k)
            assert not prompts["train"] & prompts["test"], (task, k)
        for dataset in ("agiqa3k", "aigciqa2023"):
            doc = json.loads((out / "labels" / dataset / "splits.json").read_text())
            test_ids = {r["image_id"] for r in read_task_file(
                out / "tasks" / "A_score_prompt" / f"fold{k}" / "test.json")
                if r["dataset"] == dataset}
            assert test_ids == set(doc["repeats"][k]["test"]), (dataset, k)
        tests_per_fold.append(frozenset(
            r["id"] for r in read_task_file(out / "tasks" / "A_align" / f"fold{k}" / "test.json")))
    assert len(set(tests_per_fold)) > 1  # the folds are different splits
    koniq = [r for r in read_task_file(out / "tasks" / "A_score" / "fold0" / "train.json")
             if r["dataset"] == "koniq10k"]
    assert not koniq  # an official split has no repeats


def test_isp_examples_from_the_targets_split_never_the_target(built) -> None:
    _, out = built
    n = 0
    for _, split, path in [f for f in _all_files(out) if f[0] == "A_score_isp"]:
        fold = split.split("/")[0] if "/" in split else None
        for rec in read_task_file(path):
            dataset = rec["dataset"]
            split_of = {i: im.split for i, im in _images(out, dataset).items()}
            if fold is not None:
                doc = json.loads((out / "labels" / dataset / "splits.json").read_text())
                split_of = {i: s for s, ids in doc["repeats"][int(fold[4:])].items() for i in ids}
            assert rec["image_id"] not in rec["isp_ids"]
            pool = sum(1 for s in split_of.values() if s == rec["split"])
            assert len(set(rec["isp_ids"])) == len(rec["isp_ids"]) == rec["isp_k"]
            assert rec["isp_k"] == min(3, pool - 1)  # KonIQ's val split has two images
            assert all(split_of[i] == split_of[rec["image_id"]] == rec["split"]
                       for i in rec["isp_ids"])
            assert all(p.startswith(f"labels/{dataset}/src/") for p in rec["isp_images"])
            n += 1
            if split_form(rec["split"]) == "test":
                assert not rec["isp_flipped"] and rec["isp_gamma"] == 1.0
    assert n > 50
    train = _records(out, "A_score_isp", "train")
    assert any(r["isp_flipped"] for r in train) and any(r["isp_gamma"] != 1.0 for r in train)
    for rec in train:
        q = rec["conversations"][0]["value"]
        assert ("lower is better" in q) == rec["isp_flipped"]
        assert all(f"{s:.2f}" in q for s in rec["isp_scores"])
        g = rec["isp_gamma"]
        expect = [round(1 - s ** g if rec["isp_flipped"] else s ** g, 2)
                  for s in rec["isp_scores_raw"]]
        assert rec["isp_scores"] == expect


def test_flipped_isp_scores_are_one_minus_s(built) -> None:
    _, out = built
    images = list(_images(out, "koniq10k").values())
    train = [im for im in images if im.split == "train"]
    pools = load_score_pools()
    cfg = IspConfig(k=4, scale_probability=0.0, flip_probability=1.0)
    for target in train:
        rec = isp_record(target, train, pools, cfg, split="train", seed=5,
                         prefix="labels/koniq10k/src/")
        assert rec is not None and rec["isp_flipped"] and rec["isp_gamma"] == 1.0
        assert rec["isp_scores"] == [round(1 - s, 2) for s in rec["isp_scores_raw"]]
        assert rec["conversations"][1]["value"] == f"{round(1 - target.score, 2):.2f}"
        assert "lower is better" in rec["conversations"][0]["value"]
        plain = isp_record(target, train, pools, cfg.model_copy(update={"flip_probability": 0}),
                           split="train", seed=5, prefix="labels/koniq10k/src/")
        assert plain["isp_ids"] == rec["isp_ids"]  # the flip does not move the draw
        assert plain["isp_scores"] == [round(s, 2) for s in rec["isp_scores_raw"]]
    alone = isp_record(train[0], train[:1], pools, cfg, split="train", seed=5, prefix="x/")
    assert alone is None  # no example other than the target


def test_isp_exports_put_examples_before_the_target(built) -> None:
    _, out = built
    rec = _records(out, "A_score_isp", "train")[0]
    llava = LlavaRecord.model_validate(to_llava(rec))
    assert llava.image == [*rec["isp_images"], rec["image_A"]]
    share = ShareGPTRecord.model_validate(to_sharegpt(rec))
    assert share.images[-1] == rec["image_A"]


def test_rerun_writes_the_same_bytes(built) -> None:
    manifest, out = built
    before = {p: p.read_bytes() for _, _, p in _all_files(out)}
    build_label_tasks(load_manifest(manifest), Store(out))
    after = {p: p.read_bytes() for _, _, p in _all_files(out)}
    assert before == after


# --------------------------------------------------------------------------- MOS-grounded
def _describing(manifest: Path):
    m = load_manifest(manifest)
    labels_cfg = m.tasks.labels.model_copy(update={"describe": True})
    return m.model_copy(update={"tasks": m.tasks.model_copy(update={"labels": labels_cfg})})


def test_mos_descriptions_template_validated_against_their_bin(built) -> None:
    from pipeline.records import ResponseRecord
    from pipeline.respond.mos import mos_items, respond_mos
    from pipeline.validate import validate_mos_answer

    manifest, out = built
    m, store = _describing(manifest), Store(out)
    result = respond_mos(m, store, datasets=["agiqa3k", "koniq10k"])
    assert result["totals"]["accepted"] > 20 and result["totals"]["failed"] == 0
    for dataset in ("agiqa3k", "koniq10k"):
        for split in ("train", "test"):
            items = {i.sample_id: i for i in mos_items(m, store, dataset, split)}
            path = store.responses_path("template", f"mos/{dataset}", split)
            rows = list(read_jsonl(path, ResponseRecord))
            assert [r.sample_id for r in rows] == list(items)
            for r in rows:
                item = items[r.sample_id]
                assert validate_mos_answer(r.text, level=item.level, word_limit=60).ok
                assert r.prompt_id == "mos_describe" and r.kind == f"mos/{dataset}"
                assert (item.prompt is not None) == ("prompt" in r.text)  # alignment sentence
    before = store.responses_path("template", "mos/koniq10k", "train").read_bytes()
    again = respond_mos(m, store, datasets=["koniq10k"])
    assert again["totals"]["accepted"] == 0 and again["totals"]["already_done"] > 0
    assert store.responses_path("template", "mos/koniq10k", "train").read_bytes() == before
    summary = build_label_tasks(m, store, tasks=["A_describe"])
    assert summary["tasks"]["A_describe"]["train"] > 0 and "fold0/test" in summary["folds"][
        "A_describe"]
    for rec in _records(out, "A_describe", "test"):
        validate_task_record(rec, "test")
        assert rec["task_type"] == "quality_describe_A_noref"
        assert rec["level"] == level_word(rec["score"]) and rec["level"] in rec["answer"]
        if rec["prompt"]:
            assert quote_prompt(rec["prompt"], MAX_CHARS) in rec["query"]


def test_mos_descriptions_contradicting_the_bin_are_reasked_then_failed(built, monkeypatch):
    import re

    from pipeline.records import FailureRecord, ResponseRecord
    from pipeline.respond.mos import respond_mos
    from tests.support.fake_openai import Answer, FakeOpenAI
    from tests.support.respond_samples import fast_openai_config

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-label-0123456789")
    manifest, out = built
    m, store = _describing(manifest), Store(out)

    def answer(user: str) -> str:  # a consistent answer: the level word the prompt states
        level = re.search(r"which is (\w+) quality", user).group(1)
        return f"Edges are clear and colours natural. Overall, its quality is {level}."

    wrong = "Edges are clear. Overall, its quality is excellent, not bad."
    # KonIQ's val split: two images; the first answer contradicts its bin and is re-asked
    with FakeOpenAI(queue=[Answer(wrong)], answer=answer) as srv:
        cfg = fast_openai_config(srv.base_url, "gpt-4o-mini", concurrency=1, max_reasks=1)
        s = respond_mos(m, store, datasets=["koniq10k"], splits=["val"], config=cfg)
        t = s["totals"]
        assert (t["accepted"], t["rejected_answers"], srv.chat_calls) == (2, 1, 3)
        assert t["rejected"] == {"level_mismatch": 1}
        path = store.responses_path("openai--gpt-4o-mini", "mos/koniq10k", "val")
        path.unlink()  # rebuilt from the request cache (the rejected answer replayed too)
        s2 = respond_mos(m, store, datasets=["koniq10k"], splits=["val"], config=cfg)
        assert (s2["totals"]["accepted"], s2["totals"]["cached"], srv.chat_calls) == (2, 3, 3)
        assert len(list(read_jsonl(path, ResponseRecord))) == 2
    # always contradicting: a failure record with the raw answer, the run goes on
    with FakeOpenAI(queue=[Answer(wrong)] * 4) as srv:
        cfg = fast_openai_config(srv.base_url, "gpt-4o-other", concurrency=1, max_reasks=1)
        s = respond_mos(m, store, datasets=["koniq10k"], splits=["val"], config=cfg)
        assert (s["totals"]["failed"], srv.chat_calls) == (2, 4)
    fails = [f for f in read_jsonl(out / "failures" / "respond.jsonl", FailureRecord)
             if f.path.endswith("mos/koniq10k/val.jsonl") and "gpt-4o-other" in f.path]
    assert len(fails) == 2 and all(f.error_type == "rejected" and f.raw_output == wrong
                                   for f in fails)


def test_isp_records_in_the_torch_dataset(built) -> None:
    from pipeline.torch_dataset import TaskDataset

    _, out = built
    ds = TaskDataset(out, "A_score_isp", "fold1/train")
    item = ds[0]
    k = item["record"]["isp_k"]
    assert item["image_names"] == [f"example{i + 1}" for i in range(k)] + ["A"]
    assert len(item["images"]) == k + 1 and item["answer"] == item["record"]["conversations"][1]["value"]
