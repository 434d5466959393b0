"""The labels stage end to end: `dqgen build --no-prefect` on a manifest with all nine
datasets (official layouts made by the fixtures), then `dqgen labels build` for the task
files; a re-run changes nothing; a manifest mixing synthetic and human-labelled sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.labels import adapter_names
from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.records import FailureRecord
from pipeline.store import read_jsonl
from tests.pipeline.labels import fixtures as F
from tests.pipeline.labels.fixtures import tiny_image

FAILURES = {
    "kadid10k": 4,
    "tid2013": 5,
    "pipal": 5,
    "bapps": 3,
    "koniq10k": 4,
    "spaq": 4,
    "livec": 3,
    "agiqa1k": 4,
    "agiqa3k": 4,
    "aigciqa2023": 4,
}
FR = {"bapps", "kadid10k", "pipal", "tid2013"}
runner = CliRunner()


def _manifest(tmp: Path, extra: str = "") -> Path:
    # no report (tested in tests/pipeline/test_report.py): most of a small build's time
    lines = ["name: humans", "seed: 11", "tasks: {report: false}", "sources:"]
    for name in adapter_names():
        getattr(F, f"make_{name}")(tmp / "data" / name)
        lines += [f"  - dataset: {name}", f"    root: data/{name}"]
        if name == "kadid10k":
            lines += ["    max_pairs: 10", "    images: copy"]
        if name == "pipal":
            lines += ["    split: train"]
    path = tmp / "humans.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labels_build")
    manifest = _manifest(tmp)
    out = tmp / "out"
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return manifest, out, res.output


def test_every_source_written(built):
    _, out, output = built
    assert "labels" in output
    for name in adapter_names():
        d = out / "labels" / name
        for f in ("images.jsonl", "pairs.jsonl", "splits.json", "failures.jsonl", "summary.json"):
            assert (d / f).is_file(), f"{name}/{f}"
        pairs = list(read_jsonl(d / "pairs.jsonl", HumanPair))
        assert pairs, name
        assert sorted(p.stem for p in (out / "pairs" / name).glob("*.jsonl")) == sorted(
            {p.split for p in pairs}
        )
        assert len(list(read_jsonl(d / "failures.jsonl", FailureRecord))) == FAILURES[name]
    failures = list(read_jsonl(out / "failures" / "labels.jsonl", FailureRecord))
    assert len(failures) == sum(FAILURES.values())


def test_caps_split_rules_and_grouping(built):
    _, out, _ = built
    kadid = list(read_jsonl(out / "labels" / "kadid10k" / "pairs.jsonl", HumanPair))
    assert len(kadid) == 10  # max_pairs
    pipal = list(read_jsonl(out / "labels" / "pipal" / "pairs.jsonl", HumanPair))
    assert {p.split for p in pipal} == {"train"}  # split: train
    for name, key in (
        ("kadid10k", "ref"),
        ("tid2013", "ref"),
        ("agiqa3k", "prompt"),
        ("aigciqa2023", "prompt"),
    ):
        images = list(read_jsonl(out / "labels" / name / "images.jsonl", LabelledImage))
        seen: dict[str, set[str]] = {}
        for im in images:
            seen.setdefault(im.group(key), set()).add(im.split)
        assert all(len(s) == 1 for s in seen.values()), name
        doc = json.loads((out / "labels" / name / "splits.json").read_text())
        assert doc["group_by"] == key and doc["seed"] == 11
    agiqa = json.loads((out / "labels" / "agiqa3k" / "splits.json").read_text())
    assert agiqa["rule"] == "prompt" and len(agiqa["repeats"]) == 10


def test_lock_hashes_splits_and_pair_files(built):
    _, out, _ = built
    lock = json.loads((out / "manifest.lock.json").read_text())
    for name in adapter_names():
        assert f"labels/{name}/splits.json" in lock["outputs"]
        assert any(k.startswith(f"pairs/{name}/") for k in lock["outputs"])
    assert not any("/src/" in k for k in lock["outputs"] if not k.startswith("labels/kadid10k"))
    assert lock["manifest"]["sources"][0]["dataset"] == adapter_names()[0]
    # the split of every source, summarised in the lock: rule, grouping, seed, split sizes
    for name in adapter_names():
        doc = json.loads((out / "labels" / name / "splits.json").read_text())
        entry = lock["label_splits"][name]
        assert (entry["rule"], entry["group_by"], entry["seed"]) == (
            doc["rule"], doc["group_by"], doc["seed"])
        assert entry["repeats"] == [{s: len(ids) for s, ids in rep.items()}
                                    for rep in doc["repeats"]]
    assert len(lock["label_splits"]["agiqa3k"]["repeats"]) == 10


def test_comparison_pairs_resolve_and_agree(built):
    _, out, _ = built
    for name in adapter_names():
        for f in (out / "pairs" / name).glob("*.jsonl"):
            for row in read_jsonl(f):
                for key in ("image_ref", "image_A", "image_B"):
                    if row[key] is not None:
                        assert (out / row[key]).is_file(), row[key]
                assert (row["image_ref"] is not None) == (name in FR)
                assert row["provenance"] == "human" and row["judge"].startswith(f"human:{name}:")
                assert row["A_better_B"] == (row["extra"]["norm_A"] > row["extra"]["norm_B"])
    assert not (out / "labels" / "kadid10k" / "src").is_symlink()  # images: copy
    assert (out / "labels" / "tid2013" / "src").is_symlink()


def test_rerun_changes_nothing(built):
    manifest, out, _ = built
    before = _snapshot(out)
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _snapshot(out) == before


def _says_better(answer: str, a_better_b: bool) -> bool:
    better, other = ("Image A", "Image B") if a_better_b else ("Image B", "Image A")
    return better in answer and (other not in answer or answer.index(better) < answer.index(other))


def test_build_writes_brief_comparison_tasks(built):
    _, out, _ = built
    ref_train = json.loads((out / "tasks" / "refAB_brief" / "train.json").read_text())
    noref_train = json.loads((out / "tasks" / "AB_brief" / "train.json").read_text())
    assert {r["dataset"] for r in ref_train} == FR
    assert {r["dataset"] for r in noref_train} == set(adapter_names())
    for rec in ref_train + noref_train:
        assert rec["provenance"] == "human" and rec["judge"].startswith("human:")
        assert _says_better(rec["conversations"][1]["value"], rec["A_better_B"])
        for key in ("image_ref", "image_A", "image_B"):
            if rec[key] is not None:
                assert (out / rec[key]).is_file()
    test_recs = json.loads((out / "tasks" / "AB_brief" / "test.json").read_text())
    assert test_recs and all(r["answer"] in ("Image A", "Image B") for r in test_recs)
    assert all(_says_better(r["answer"], r["A_better_B"]) for r in test_recs)


def test_labels_build_command_reproduces_the_tasks(built):
    manifest, out, _ = built
    before = {
        p: (out / "tasks" / p / "train.json").read_bytes() for p in ("refAB_brief", "AB_brief")
    }
    res = runner.invoke(app, ["labels", "build", str(manifest), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "refAB_brief" in res.output and "kadid10k" in res.output
    for p, data in before.items():
        assert (out / "tasks" / p / "train.json").read_bytes() == data


def test_splits_option_on_a_sources_only_manifest(tmp_path):
    """`--splits test` is a split the sources give, though the manifest has no counts."""
    manifest = tmp_path / "m.yaml"
    F.make_kadid10k(tmp_path / "data" / "kadid10k")
    manifest.write_text("name: k\nseed: 3\nsources:\n  - dataset: kadid10k\n"
                        "    root: data/kadid10k\n    split: reference\n")
    out = tmp_path / "o"
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--splits", "test",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "tasks" / "AB_brief" / "test.json").is_file()
    assert not (out / "tasks" / "AB_brief" / "train.json").exists()
    bad = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--splits", "val",
                              "--out", str(out)])
    assert bad.exit_code == 2 and "known splits: train, test" in " ".join(bad.output.split())


def test_unknown_dataset_and_missing_root(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsources:\n  - dataset: kadid-11k\n    root: x\n")
    res = runner.invoke(app, ["labels", "build", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown dataset 'kadid-11k'" in res.output
    missing = tmp_path / "missing.yaml"
    missing.write_text("name: m\nsources:\n  - dataset: tid2013\n    root: nowhere\n")
    res = runner.invoke(app, ["build", str(missing), "--no-prefect", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    fails = list(read_jsonl(tmp_path / "o" / "failures" / "labels.jsonl", FailureRecord))
    assert len(fails) == 1 and "nowhere" in fails[0].message and "not found" in fails[0].message


def test_mixed_synthetic_and_human_sources(tmp_path):
    refs = tmp_path / "refs"
    for i in range(3):
        tiny_image(refs / f"photo{i}.png", i, size=(96, 80))
    F.make_kadid10k(tmp_path / "kadid")
    m = tmp_path / "mixed.yaml"
    m.write_text(
        "name: mixed\nreferences:\n  root: refs\n  test_fraction: 0.0\n"
        "counts:\n  refA_sd: {train: 2}\n"
        "sources:\n  - dataset: kadid10k\n    root: kadid\n"
    )
    out = tmp_path / "out"
    res = runner.invoke(app, ["build", str(m), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(list(read_jsonl(out / "samples" / "refA_sd" / "train.jsonl"))) == 2
    assert (out / "pairs" / "kadid10k").is_dir()
    assert len(list(read_jsonl(out / "labels" / "kadid10k" / "images.jsonl"))) == 12


def test_unreadable_label_file_is_one_failure_and_the_build_goes_on(tmp_path):
    F.make_kadid10k(tmp_path / "kadid")
    (tmp_path / "spaq" / "Annotations").mkdir(parents=True)
    (tmp_path / "spaq" / "Annotations" / "MOS and Image attribute scores.xlsx").write_text("no")
    m = tmp_path / "m.yaml"
    m.write_text(
        "name: m\nsources:\n  - {dataset: spaq, root: spaq}\n"
        "  - {dataset: kadid10k, root: kadid}\n"
    )
    res = runner.invoke(app, ["build", str(m), "--no-prefect", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    fails = list(read_jsonl(tmp_path / "o" / "failures" / "labels.jsonl", FailureRecord))
    spaq = [f for f in fails if f.item_id.startswith("spaq:")]
    assert len(spaq) == 1 and "unreadable" in spaq[0].message
    assert (tmp_path / "o" / "pairs" / "kadid10k").is_dir()


def test_pairs_off_writes_records_and_splits_only(tmp_path):
    F.make_koniq10k(tmp_path / "koniq")
    m = tmp_path / "m.yaml"
    m.write_text(
        "name: m\nseed: 1\nsources:\n"
        "  - {dataset: koniq10k, root: koniq, pairs: false, images: copy, split: random}\n"
    )
    res = runner.invoke(app, ["labels", "build", str(m), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "o"
    images = list(read_jsonl(out / "labels" / "koniq10k" / "images.jsonl", LabelledImage))
    assert len(images) == 12 and {im.split for im in images} == {"train", "test"}
    assert not list(read_jsonl(out / "labels" / "koniq10k" / "pairs.jsonl"))
    assert not (out / "pairs" / "koniq10k").exists()
    for im in images:  # images: copy without pairs copies every image
        assert (out / "labels" / "koniq10k" / "src" / im.path).is_file()
