"""Only the manifest's `sources` feed the brief comparison tasks and failures/labels.jsonl.

Each test builds twice into one dataset folder (`dqgen build --no-prefect`, real fixture
files), changing the manifest or the source in between, and checks what the second build
leaves in tasks/AB_brief/, tasks/refAB_brief/, pairs/ and failures/labels.jsonl.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.manifest import ManifestError, load_manifest
from pipeline.records import FailureRecord
from pipeline.store import read_jsonl
from tests.pipeline.labels import fixtures as F

runner = CliRunner()
ROW_FAILURES = {"kadid10k": 4, "tid2013": 5}  # the fixtures' tricky rows


def _write_manifest(tmp: Path, *entries: str) -> Path:
    path = tmp / "m.yaml"
    # no report: these tests read the task files (the report of human pairs is tested in
    # tests/pipeline/test_report.py), and its figures are most of a small build's time
    lines = ["name: m", "seed: 3", "tasks: {report: false}", "sources:",
             *(f"  - {{{e}}}" for e in entries)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _build(manifest: Path, out: Path) -> None:
    res = runner.invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(out)])
    assert res.exit_code == 0, res.output


def _task_datasets(out: Path, task: str) -> set[str]:
    found: set[str] = set()
    for split_file in (out / "tasks" / task).glob("*.json"):
        found |= {r["dataset"] for r in json.loads(split_file.read_text())}
    return found


def _failures_by_dataset(out: Path) -> Counter[str]:
    failures = read_jsonl(out / "failures" / "labels.jsonl", FailureRecord)
    return Counter(f.item_id.split(":", 1)[0] for f in failures)


@pytest.fixture
def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    """kadid10k and tid2013 built once into tmp/out; returns (tmp, out)."""
    F.make_kadid10k(tmp_path / "kadid")
    F.make_tid2013(tmp_path / "tid")
    out = tmp_path / "out"
    _build(_write_manifest(tmp_path, "dataset: kadid10k, root: kadid",
                           "dataset: tid2013, root: tid"), out)
    assert _task_datasets(out, "AB_brief") == {"kadid10k", "tid2013"}
    assert _task_datasets(out, "refAB_brief") == {"kadid10k", "tid2013"}
    assert _failures_by_dataset(out) == ROW_FAILURES
    return tmp_path, out


def test_a_dataset_dropped_from_the_manifest_stops_feeding_tasks(two_sources):
    tmp, out = two_sources
    _build(_write_manifest(tmp, "dataset: kadid10k, root: kadid"), out)
    assert list((out / "pairs" / "tid2013").glob("*.jsonl"))  # still there from build 1 ...
    assert _task_datasets(out, "AB_brief") == {"kadid10k"}  # ... but no longer read
    assert _task_datasets(out, "refAB_brief") == {"kadid10k"}
    train = json.loads((out / "tasks" / "AB_brief" / "train.json").read_text())
    assert train and all(r["dataset"] == "kadid10k" for r in train)
    assert _failures_by_dataset(out) == {"kadid10k": 4}  # tid2013's bad rows left out too


@pytest.mark.parametrize("how", ["label file gone", "root moved"])
def test_pairs_of_an_unreadable_source_are_removed(two_sources, how):
    tmp, out = two_sources
    if how == "label file gone":  # root still there, images too: the old pairs would resolve
        (tmp / "tid" / "mos_with_names.txt").unlink()
    else:
        shutil.move(tmp / "tid", tmp / "tid-moved")
    _build(_write_manifest(tmp, "dataset: kadid10k, root: kadid",
                           "dataset: tid2013, root: tid"), out)
    assert not list((out / "pairs" / "tid2013").glob("*.jsonl"))
    assert _task_datasets(out, "AB_brief") == {"kadid10k"}
    assert _task_datasets(out, "refAB_brief") == {"kadid10k"}
    failures = list(read_jsonl(out / "failures" / "labels.jsonl", FailureRecord))
    tid = [f for f in failures if f.item_id.startswith("tid2013:")]
    assert len(tid) == 1  # one failure naming the source, not last run's row failures
    assert "mos_with_names.txt" in tid[0].message if how == "label file gone" else (
        "not found" in tid[0].message)
    assert _failures_by_dataset(out)["kadid10k"] == 4


@pytest.mark.parametrize("second", ["tid2013", "TID2013", "tid-2013"])
def test_a_dataset_listed_twice_is_a_manifest_error(tmp_path, second):
    F.make_tid2013(tmp_path / "tid")
    manifest = _write_manifest(tmp_path, "dataset: tid2013, root: tid",
                               f"dataset: {second}, root: tid, margin: 0.2")
    with pytest.raises(ManifestError, match="'tid2013' listed twice"):
        load_manifest(manifest)
    out = tmp_path / "out"
    for cmd in (["build", str(manifest), "--no-prefect"], ["labels", "build", str(manifest)]):
        res = runner.invoke(app, [*cmd, "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert "listed twice" in res.output
    assert not out.exists()  # refused before anything was written


def test_bapps_triplet_without_judge_is_a_failure_in_the_build(tmp_path):
    F.make_bapps(tmp_path / "bapps")
    out = tmp_path / "out"
    manifest = _write_manifest(tmp_path, "dataset: bapps, root: bapps")
    _build(manifest, out)
    assert _failures_by_dataset(out) == {"bapps": 3}
    # a triplet whose judge/<n>.npy is missing (an interrupted download)
    base = tmp_path / "bapps" / "2afc" / "val" / "traditional"
    for k, part in enumerate(("ref", "p0", "p1")):
        F.tiny_image(base / part / "000007.png", k)
    _build(manifest, out)
    failures = list(read_jsonl(out / "failures" / "labels.jsonl", FailureRecord))
    gap = [f for f in failures if f.item_id == "bapps:2afc/val/traditional/000007"]
    assert len(gap) == 1 and gap[0].error_type == "missing_file"
    assert "missing judge/000007.npy" in gap[0].message
    assert len(failures) == 4
    test_pairs = list(read_jsonl(out / "pairs" / "bapps" / "test.jsonl"))
    assert not any(p["pair_id"].endswith("_000007") for p in test_pairs)
    # the judgement arrives: the triplet becomes a pair, the failure goes
    np.save(base / "judge" / "000007.npy", np.array([0.9]))
    _build(manifest, out)
    assert _failures_by_dataset(out) == {"bapps": 3}
    test_pairs = list(read_jsonl(out / "pairs" / "bapps" / "test.jsonl"))
    assert any(p["pair_id"] == "bapps_val_traditional_000007" for p in test_pairs)
