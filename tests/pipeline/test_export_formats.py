"""The consumer formats (LLaVA 1.5 / OneVision, DeQA-Score, Q-Insight, one-schema JSON Lines),
each checked against its consumer's own rules, re-implemented here from their code:

- LLaVA 1.5, haotian-liu/LLaVA llava/train/train.py: `os.path.join(image_folder,
  record["image"])` (a string) and preprocess_multimodal (one "<image>", moved first);
- LLaVA-NeXT/OneVision, LLaVA-VL/LLaVA-NeXT llava/train/train.py: image lists, tokens kept
  in place when there are several;
- DeQA-Score build_soft_labels/gen_soft_label.py: the soft labels, recomputed with scipy;
- Q-Insight src/open-r1-multimodal/src/open_r1/qinsight_{multi_task,comparison}.py: keys,
  word sets, the data_config yaml loader;
- HuggingFace datasets: one load_dataset("json") call over the whole jsonl export.

One dataset serves all: the tiny synthetic task dataset plus the label fixtures (official
layouts) of KonIQ-10k, KADID-10k, TID2013, AGIQA-3k and SPAQ, built by the labels stage, so
refAB_brief holds synthetic and human pairs.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.assemble import assemble_tasks, read_task_file
from pipeline.cli import app
from pipeline.export import export_tasks, from_llava, task_files
from pipeline.exporters.deqa_score import soft_label
from pipeline.exporters.jsonl import ROW_KEYS, from_row
from pipeline.labels.build import build_labels
from pipeline.labels.records import LabelledImage
from pipeline.manifest import DeqaSourceConfig, ExportOptions, LabelSourceConfig
from pipeline.store import read_jsonl
from tests.pipeline.labels import fixtures as F
from tests.pipeline.task_fixtures import make_dataset

SOURCES = ("koniq10k", "kadid10k", "tid2013", "agiqa3k", "spaq")
WITH_STD = {"koniq10k", "kadid10k", "tid2013", "agiqa3k"}
IMAGE = "<image>"
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats")
    manifest, store = make_dataset(tmp / "ds")
    for name in SOURCES:
        getattr(F, f"make_{name}")(tmp / "data" / name)
    manifest = manifest.model_copy(update={"sources": [
        LabelSourceConfig(dataset=n, root=str(tmp / "data" / n)) for n in SOURCES]})
    build_labels(manifest, store)
    assemble_tasks(manifest, store)
    return store


def _images(rec):
    # what the model sees: in-context examples (A_score_isp) first, then ref, A, B
    return list(rec.get("isp_images") or []) + [
        rec[k] for k in ("image_ref", "image_A", "image_B") if rec[k] is not None]


# --------------------------------------------------------------------------- LLaVA 1.5
def _llava15_preprocess(value: str) -> str:
    # llava/train/train.py preprocess_multimodal: every "<image>" removed, one put first
    if IMAGE in value:
        value = (IMAGE + "\n" + value.replace(IMAGE, "").strip()).strip()
    return value


def _check_llava15(root: Path, rec: dict) -> None:
    assert isinstance(rec["image"], str)
    assert os.path.isfile(os.path.join(root, rec["image"]))
    human, gpt = rec["conversations"]
    assert (human["from"], gpt["from"]) == ("human", "gpt")
    assert human["value"].count(IMAGE) == 1 and human["value"].startswith(IMAGE + "\n")
    assert _llava15_preprocess(human["value"]) == human["value"]  # nothing lost there
    assert IMAGE not in gpt["value"]


def test_llava15_writes_single_image_tasks_and_refuses_the_others(store) -> None:
    result = export_tasks(store, "llava")
    out = store.root / "exports" / "llava"
    sources = {(t, s): read_task_file(p) for t, s, p in task_files(store)}
    multi = sorted({t for (t, _), recs in sources.items() if any(len(_images(r)) > 1
                                                                    for r in recs)})
    assert sorted(result["refused"]) == multi and "refAB_brief" in multi
    for (task, split), recs in sources.items():
        path = out / task / f"{split}.json"
        if task in multi:
            assert not path.exists()
            continue
        back = read_task_file(path)
        assert len(back) == len(recs)
        for src, rec in zip(recs, back):
            _check_llava15(store.root, rec)
            assert rec["image"] == src["image_A"]
    with pytest.raises(ValueError, match="llava-onevision.*--compose side-by-side"):
        export_tasks(store, "llava", tasks=["refAB_brief"], dest=store.root / "x")
    cli = runner.invoke(app, ["export", str(store.root), "--format", "llava"])
    assert cli.exit_code == 0, cli.output
    assert "not written" in cli.output and "--compose side-by-side" in cli.output


def test_llava15_side_by_side_canvases(store, tmp_path) -> None:
    opts = ExportOptions(compose="side-by-side")
    result = export_tasks(store, "llava", options=opts)
    assert result["refused"] == [] and not result["skipped"]
    folder = store.root / "exports" / "llava" / "images"
    canvases = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    names = {"left", "middle", "right"}
    seen = 0
    for task, split, _ in task_files(store):
        for rec in read_task_file(store.root / "exports" / "llava" / task / f"{split}.json"):
            _check_llava15(store.root, rec)
            if "panels" not in rec or seen >= 12:  # pixels of a dozen canvases suffice
                continue
            seen += 1
            legend = rec["conversations"][0]["value"].split("\n")[1]
            for panel in rec["panels"]:
                assert panel["position"] in names
                assert f"the {panel['position']} panel ({panel['name']})" in legend
            # every panel holds its image's pixels, left to right, 8 px apart
            canvas = np.asarray(Image.open(store.root / rec["image"]).convert("RGB"))
            parts = [np.asarray(Image.open(store.root / p["image"]).convert("RGB"))
                     for p in rec["panels"]]
            height = max(p.shape[0] for p in parts)
            assert canvas.shape[1] == sum(p.shape[1] for p in parts) + 8 * (len(parts) - 1)
            x, top = 0, canvas.shape[0] - height
            for part in parts:
                y = top + (height - part.shape[0]) // 2
                assert np.array_equal(canvas[y:y + part.shape[0], x:x + part.shape[1]], part)
                x += part.shape[1] + 8
            assert from_llava(rec)["images"] == [p["image"] for p in rec["panels"]]
    assert seen and canvases
    # derived data: removed and rebuilt, the same bytes; a stale canvas is pruned
    for p in sorted(folder.glob("*.png"))[::4]:
        p.unlink()
    (folder / "stale.png").write_bytes(b"x")
    export_tasks(store, "llava", options=opts)
    assert {p.name: p.read_bytes() for p in folder.glob("*.png")} == canvases


def test_llava_onevision_lists_one_token_per_image(store) -> None:
    export_tasks(store, "llava-onevision")
    for task, split, path in task_files(store):
        src = read_task_file(path)
        back = read_task_file(store.root / "exports" / "llava_onevision" / task / f"{split}.json")
        for s, rec in zip(src, back):
            assert isinstance(rec["image"], list) and rec["image"] == _images(s)
            human = rec["conversations"][0]["value"]
            # LLaVA-NeXT preprocess_multimodal: only a lone token is moved; n tokens, n images
            n = len(re.findall(IMAGE, human))
            assert n == len(rec["image"])
            assert n > 1 or human.startswith(IMAGE)


# --------------------------------------------------------------------------- DeQA-Score
def _their_soft_label(mos, std, lo, hi, density, thre_std=0.2, thre_diff=0.1):
    """gen_soft_label.py's arithmetic (scipy.stats.norm there: the same densities here, with
    scipy.special.ndtr, the normal CDF that scipy.stats.norm.cdf calls)."""
    from scipy.special import ndtr

    mos_norm = 4 * (mos - lo) / (hi - lo) + 1
    std_norm = 4 * std / (hi - lo)
    xs = np.arange(5, 0, -1)
    if density == "cdf":
        probs = (ndtr((xs + 0.5 - mos_norm) / std_norm)
                 - ndtr((xs - 0.5 - mos_norm) / std_norm))
    else:
        z = (xs - mos_norm) / std_norm
        probs = np.exp(-0.5 * z * z) / (std_norm * np.sqrt(2 * np.pi))
    a, b = probs.sum(), np.inner(probs, xs)
    alpha = (mos_norm - 3) / (b - 3.0 * a + 1e-9)
    beta = (1.0 - alpha * a) / 5.0
    adjusted = np.maximum(probs * alpha + beta, 0)
    if std_norm < thre_std or abs(np.inner(adjusted, xs) - mos_norm) > thre_diff:
        eps, bins = 1e-8, np.zeros(5)
        for idx in range(1, 5):
            left, right = 1 + (idx - 1) - eps, 1 + idx + eps
            if left < mos_norm <= right:
                bins[idx - 1] = (right - mos_norm) / (right - left)
                bins[idx] = (mos_norm - left) / (right - left)
                break
        assert (bins == 0).sum() == 3 and round(bins.sum(), 5) == 1
        adjusted = bins[::-1]
    return mos_norm, std_norm, probs, adjusted


def _alpha_beta(probs, score):
    xs = np.arange(5, 0, -1)
    alpha = (score - 3) / (np.inner(probs, xs) - 3.0 * probs.sum() + 1e-9)
    return alpha, (1.0 - alpha * probs.sum()) / 5.0


def _their_level(mos, lo, hi):
    words = ["bad", "poor", "fair", "good", "excellent"]
    for idx in range(1, 6):
        if lo + (idx - 1) / 5 * (hi - lo) - 1e-8 < mos <= lo + idx / 5 * (hi - lo) + 1e-8:
            return words[idx - 1]
    raise AssertionError(mos)


@pytest.mark.parametrize(("mos", "std", "density", "binary"), [
    (3.2, 0.9, "pdf", False), (4.4, 0.7, "pdf", False), (1.9, 1.1, "cdf", None),
    (2.6, 0.05, "pdf", True),  # std_norm < thre_std: the two-level split
    (4.95, 0.3, "pdf", None), (3.0, 0.6, "cdf", None), (2.2, 0.4, "cdf", None),
])
def test_deqa_soft_labels_match_their_script(mos, std, density, binary) -> None:
    ours = soft_label(mos, std, 1.0, 5.0, density=density)
    mos_norm, std_norm, org, probs = _their_soft_label(mos, std, 1.0, 5.0, density)
    if binary is not None:
        assert ours["binary"] is binary
    assert ours["binary"] is (not np.allclose(probs, np.maximum(org * _alpha_beta(org, mos_norm)[0]
                                                                 + _alpha_beta(org, mos_norm)[1],
                                                                 0)))
    assert ours["gt_score_norm"] == pytest.approx(mos_norm, abs=1e-6)
    assert ours["std_norm"] == pytest.approx(std_norm, abs=1e-6)
    assert np.allclose(ours["level_probs_org"], org, atol=1e-6, rtol=0)
    assert np.allclose(ours["level_probs"], probs, atol=1e-6, rtol=0)


def test_deqa_score_metas_per_source(store) -> None:
    result = export_tasks(store, "deqa-score")
    out = store.root / "exports" / "deqa_score"
    assert {f.split("/")[0] for f in result["files"]} == WITH_STD
    assert any("spaq" in r and "no std" in r for r in result["skipped"])
    train_keys = {"id", "image", "gt_score", "gt_score_norm", "level_probs_org", "level_probs",
                  "std", "std_norm", "conversations"}
    for name in sorted(WITH_STD):
        images = list(read_jsonl(store.root / "labels" / name / "images.jsonl", LabelledImage))
        moses = [im.labels[im.label] for im in images]
        lo, hi = min(moses), max(moses)
        density = "pdf"  # theirs for KonIQ and KADID, ours for the others
        by_id = {}
        for im in images:
            std = {"koniq10k": im.labels.get("sd", 0) * (99 / 4 if hi > 5 else 1),
                   "kadid10k": math.sqrt(im.labels.get("var", 0)),
                   "agiqa3k": im.labels.get("std_quality", 0)}.get(name, im.labels.get("std"))
            by_id[f"{Path(im.path).name}->{im.labels[im.label]}"] = (im, std)
        for split_file in sorted((out / name).glob("*.json")):
            metas = json.loads(split_file.read_text())
            train = split_file.stem == "train"
            for meta in metas:
                im, std = by_id[meta["id"]]
                assert im.split == split_file.stem
                assert set(meta) == (train_keys if train else
                                     train_keys - {"level_probs", "level_probs_org",
                                                   "conversations"})
                assert (store.root / meta["image"]).is_file()
                mos_norm, std_norm, org, probs = _their_soft_label(
                    meta["gt_score"], std, lo, hi, density)
                assert meta["gt_score_norm"] == pytest.approx(mos_norm, abs=1e-6)
                assert meta["std_norm"] == pytest.approx(std_norm, abs=1e-6)
                if train:
                    assert np.allclose(meta["level_probs"], probs, atol=1e-6, rtol=0)
                    assert np.allclose(meta["level_probs_org"], org, atol=1e-6, rtol=0)
                    human, gpt = meta["conversations"]
                    assert human["from"] == "human" and human["value"].endswith("\n<|image|>")
                    level = _their_level(meta["gt_score"], lo, hi)
                    assert gpt == {"from": "gpt", "value": f"The quality of the image is {level}."}
    # SPAQ has no std: the binary split on request; a density per source from the CLI
    opts = ExportOptions(deqa_score={"spaq": DeqaSourceConfig(missing_std="binary")})
    res = export_tasks(store, "deqa-score", dest=store.root / "d2", options=opts,
                       tasks=["spaq"])
    spaq = json.loads((store.root / "d2" / "spaq" / "train.json").read_text())
    for meta in spaq:
        assert meta["std"] is None and sum(v > 0 for v in meta["level_probs"]) <= 2
        assert sum(meta["level_probs"]) == pytest.approx(1.0)
    assert res["files"]
    cli = runner.invoke(app, ["export", str(store.root), "-f", "deqa-score", "--dest",
                              str(store.root / "d3"), "--density", "kadid10k=cdf"])
    assert cli.exit_code == 0, cli.output
    kadid = json.loads((store.root / "d3" / "kadid10k" / "train.json").read_text())
    base = json.loads((out / "kadid10k" / "train.json").read_text())
    assert [m["level_probs_org"] for m in kadid] != [m["level_probs_org"] for m in base]


# --------------------------------------------------------------------------- Q-Insight
SEVERITIES = {"slight", "moderate", "obvious", "serious", "catastrophic"}


def _their_yaml_loader(path: Path, data_root: str, root: Path) -> list[dict]:
    # qinsight_multi_task.py _load_samples_from_yaml, with data_root linked to the dataset
    samples = []
    for ds in yaml.safe_load(path.read_text()).get("datasets", []):
        json_path = ds["json_path"]
        assert json_path.startswith(data_root + "/") and json_path.endswith(".json")
        samples += json.loads((root / json_path[len(data_root) + 1:]).read_text())
    return samples


def test_qinsight_files(store) -> None:
    result = export_tasks(store, "qinsight")
    out, root = store.root / "exports" / "qinsight", store.root
    dist = _their_yaml_loader(out / "data_config" / "iqa_dist.yaml", "./data/dqgen", root)
    assert dist and {"null"} < {d["distortion_class"] for d in dist}
    for row in dist:
        assert set(row) == {"image", "distortion_class", "severity"}
        assert (root / row["image"]).is_file()
        if row["distortion_class"] == "null":
            assert row["severity"] == "null"
        else:
            assert row["distortion_class"] in {"noise", "compression", "blur", "darken"}
            assert row["severity"] in SEVERITIES
    comp = _their_yaml_loader(out / "data_config" / "iqa_comparison.yaml", "./data/dqgen", root)
    assert {r["result"] for r in comp} <= {"Image A", "Image B"}
    assert any(r["ref_image"].startswith("labels/") for r in comp)  # human pairs
    assert any(r["ref_image"].startswith("references/") for r in comp)  # judged pairs
    for row in comp:
        assert set(row) == {"ref_image", "ImageA", "ImageB", "result"}
        assert all((root / row[k]).is_file() for k in ("ref_image", "ImageA", "ImageB"))
    score = _their_yaml_loader(out / "data_config" / "iqa_score.yaml", "./data/dqgen", root)
    assert score and all(1 <= s["gt_score_norm"] <= 5 and (root / s["image"]).is_file()
                         for s in score)
    assert "score_koniq10k_train.json" in result["files"]
    every = export_tasks(store, "qinsight", dest=store.root / "q2",
                         options=ExportOptions(qinsight_categories=["all"]))
    rows = json.loads((store.root / "q2" / "dist_train.json").read_text())
    assert {"brighten", "contrast_weaken"} & {r["distortion_class"] for r in rows}
    assert every["files"]["dist_train.json"] > result["files"]["dist_train.json"]
    with pytest.raises(ValueError, match="unknown distortion category 'fog'|fog"):
        export_tasks(store, "qinsight", options=ExportOptions(qinsight_categories=["fog"]))


# --------------------------------------------------------------------------- JSON Lines
def test_jsonl_one_schema_loads_with_datasets(store, tmp_path) -> None:
    export_tasks(store, "jsonl")
    out = store.root / "exports" / "jsonl"
    paths = sorted(out.rglob("*.jsonl"))
    assert (out / "README.md").is_file()
    types: dict[str, set[str]] = {k: set() for k in ROW_KEYS}
    total = 0
    for path in paths:
        task = path.parent.relative_to(out).as_posix()
        src = read_task_file(store.root / "tasks" / task / f"{path.stem}.json")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [from_row(r) for r in rows] == src
        for row in rows:
            assert tuple(row) == ROW_KEYS
            for k, v in row.items():
                if v is not None:
                    types[k].add(type(v).__name__)
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
            assert row["messages"][0]["content"].count(IMAGE) == len(row["images"])
        total += len(rows)
    assert all(len(t) == 1 for t in types.values()), types  # one type per key
    datasets = pytest.importorskip("datasets")
    # the folder (its README.md declares configs and features): every task, both splits
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    # the default config: every task but the k-fold sets (configs of their own)
    plain = [p for p in paths if not p.parent.name.startswith("fold")]
    assert set(ds) == {p.stem for p in plain} and {"train", "test"} <= set(ds)
    for split, d in ds.items():
        assert tuple(d.column_names) == ROW_KEYS and set(d["split"]) == {split}
    rows = [json.loads(line) for p in plain for line in p.read_text().splitlines()]
    assert sum(d.num_rows for d in ds.values()) == len(rows) <= total
    assert sorted(i for d in ds.values() for i in d["id"]) == sorted(r["id"] for r in rows)


# --------------------------------------------------------------------------- derived data
def test_exports_rebuild_byte_for_byte(store) -> None:
    formats = ("jsonl", "llava-onevision", "deqa-score", "qinsight")

    def snapshot():
        for fmt in formats:
            export_tasks(store, fmt)
        base = store.root / "exports"
        return {p.relative_to(base).as_posix(): p.read_bytes()
                for fmt in formats for p in sorted((base / fmt.replace("-", "_")).rglob("*"))
                if p.is_file()}

    first = snapshot()
    import shutil
    for fmt in formats:
        shutil.rmtree(store.root / "exports" / fmt.replace("-", "_"))
    assert snapshot() == first


def test_export_options_from_the_lock(store) -> None:
    lock = store.root / "manifest.lock.json"
    lock.write_text(json.dumps({"manifest": {"name": "x", "tasks": {
        "exports": ["llava"], "export_options": {"compose": "side-by-side"}}}}))
    try:
        cli = runner.invoke(app, ["export", str(store.root), "-f", "llava", "--tasks",
                                  "refAB_brief", "--dest", str(store.root / "l2")])
    finally:
        lock.unlink()
    assert cli.exit_code == 0, cli.output
    recs = read_task_file(store.root / "l2" / "refAB_brief" / "train.json")
    assert recs and all(r["image"].startswith("exports/llava/images/") for r in recs)


def test_dqgen_build_writes_the_listed_formats(tmp_path) -> None:
    """`dqgen build` of human-labelled sources with `tasks.exports` naming the new formats,
    its export options from the manifest; `dqgen export` afterwards gives the same bytes."""
    lines = ["name: humans", "seed: 4", "sources:"]
    for name in ("kadid10k", "koniq10k"):
        getattr(F, f"make_{name}")(tmp_path / "data" / name)
        lines += [f"  - dataset: {name}", f"    root: data/{name}"]
    lines += ["tasks:", "  report: false", "  exports: [jsonl, deqa-score, qinsight, llava]",
              "  export_options:", "    compose: side-by-side",
              "    deqa_score: {kadid10k: {density: cdf}}"]
    manifest = tmp_path / "humans.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ex = out / "exports"
    kadid = json.loads((ex / "deqa_score" / "kadid10k" / "train.json").read_text())
    images = list(read_jsonl(out / "labels" / "kadid10k" / "images.jsonl", LabelledImage))
    moses = [im.labels["dmos"] for im in images]
    for meta in kadid:  # the manifest's cdf, not the pdf default
        _, _, org, _ = _their_soft_label(meta["gt_score"], meta["std"], min(moses),
                                         max(moses), "cdf")
        assert np.allclose(meta["level_probs_org"], org, atol=1e-6, rtol=0)
    comp = json.loads((ex / "qinsight" / "comparison_train.json").read_text())
    assert comp and all(r["ref_image"].startswith("labels/kadid10k/src/") for r in comp)
    llava = read_task_file(ex / "llava" / "refAB_brief" / "train.json")
    assert llava and all(r["image"].startswith("exports/llava/images/") for r in llava)
    assert (ex / "jsonl" / "AB_brief" / "train.jsonl").is_file()
    before = {p.relative_to(ex).as_posix(): p.read_bytes() for p in sorted(ex.rglob("*"))
              if p.is_file()}
    import shutil
    shutil.rmtree(ex)
    for fmt in ("jsonl", "deqa-score", "qinsight", "llava"):
        res = runner.invoke(app, ["export", str(out), "-f", fmt])  # options from the lock
        assert res.exit_code == 0, res.output
    after = {p.relative_to(ex).as_posix(): p.read_bytes() for p in sorted(ex.rglob("*"))
             if p.is_file()}
    assert after == before
