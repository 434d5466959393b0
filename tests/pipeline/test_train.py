"""The training side (pipeline/train/): datasets, loaders, the probe, `dqgen probe`, the build hook.

Real tiny builds (scaled-down bundled photos, 48 px), real PNG files, real training on CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.build import run_build
from pipeline.manifest import load_manifest
from tests.pipeline.build_fixtures import photo_dir, write_manifest  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
# speed figures and paths differ between two runs; everything else must not
_RUN_KEYS = {"train_images_per_s", "train_s", "eval_s", "wall_s", "dataset"}
_TINY = {"epochs": 1, "batch_size": 8, "crop": 32, "eval_crop": 48, "width": 8, "seed": 3,
         "device": "cpu", "threads": 1}


def _model_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in _RUN_KEYS}


@pytest.fixture(scope="module")
def tiny(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A tiny build: A_brief_sd and refAB_brief with train and test records."""
    folder = tmp_path_factory.mktemp("probe-tiny")
    path = write_manifest(folder, photo_dir, counts={"refA_sd": {"train": 12, "test": 4},
                                                     "refAB_sd": {"train": 6, "test": 3}})
    return Path(run_build(load_manifest(path))["output"])


def _records(root: Path, task: str, split: str) -> list[dict[str, Any]]:
    return json.loads((root / "tasks" / task / f"{split}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- data
def test_categories_match_the_distortion_registry() -> None:
    import distortions
    from pipeline.train import CATEGORIES

    cats = {spec.category for spec in distortions.REGISTRY.values()}
    assert CATEGORIES[0] == "clean" and set(CATEGORIES[1:]) == cats and len(CATEGORIES) == 13


def test_datasets_crop_aligned_and_seeded(tiny: Path) -> None:
    import torch

    from pipeline.train import PairDataset, TaskImageDataset, crop_params, sample_rng

    pairs = PairDataset(tiny, "refAB_brief", "train", crop=24, augment=True, seed=5)
    assert len(pairs) == len(_records(tiny, "refAB_brief", "train")) and pairs.skipped == 0
    item = pairs[1]
    rec = pairs.records[1]
    assert item["images"].shape == (3, 3, 24, 24) and item["images"].dtype == torch.uint8
    assert item["names"] == ["ref", "A", "B"] and item["better"] == float(rec["A_better_B"])
    # the same window of the three files, drawn from the item's own generator
    from PIL import Image

    ref = np.asarray(Image.open(tiny / rec["image_ref"]).convert("RGB"))
    top, left, flip = crop_params(sample_rng(5, 0, 1), *ref.shape[:2], 24)
    want = ref[top:top + 24, left:left + 24]
    want = want[:, ::-1] if flip else want
    assert np.array_equal(item["images"][0].permute(1, 2, 0).numpy(), want)
    # epoch 1 of index 1 is key n + 1: other crops, same again when asked again
    n = len(pairs)
    assert torch.equal(pairs[n + 1]["images"], pairs[n + 1]["images"])
    assert not all(torch.equal(pairs[i]["images"], pairs[n + i]["images"]) for i in range(n))
    single = TaskImageDataset(tiny, "A_brief_sd", "test", crop=24)
    rec = single.records[0]
    dist = rec["distortions"]["A"]
    assert single[0]["images"].shape == (1, 3, 24, 24)
    assert single[0]["severity"] == (dist[0]["severity"] if dist else 0)


def test_missing_task_file_names_it(tiny: Path) -> None:
    from pipeline.train import TaskImageDataset

    with pytest.raises(FileNotFoundError, match=r"tasks/A_brief_sd/valid\.json.*splits present: test, train"):
        TaskImageDataset(tiny, "A_brief_sd", "valid")


def test_loader_same_batches_for_any_worker_count(tiny: Path) -> None:
    import torch

    from pipeline.train import PairDataset, make_loader

    ds = PairDataset(tiny, "refAB_brief", "train", crop=16, augment=True, seed=1)

    def epochs(workers: int) -> list[torch.Tensor]:
        loader = make_loader(ds, 4, shuffle=True, seed=2, workers=workers)
        assert not loader.pin_memory  # CPU: no pinned memory
        if workers:  # workers never fork this (threaded, Prefect-touched) test process
            assert loader.multiprocessing_context.get_start_method() != "fork"
        out = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            out += [torch.cat([b["images"].flatten(), b["index"]]) for b in loader]
        return out

    zero, two = epochs(0), epochs(2)
    assert len(zero) == len(two) and all(torch.equal(a, b) for a, b in zip(zero, two))
    assert not torch.equal(zero[0], zero[len(zero) // 2])  # epoch 1: another order and crops


# --------------------------------------------------------------------------- probe
@pytest.mark.slow
def test_probe_runs_without_the_rest_of_the_pipeline_and_is_deterministic(
        tiny: Path, tmp_path: Path) -> None:
    """One short epoch in a subprocess where pydantic, prefect, yaml, ... cannot be imported
    (as on a GPU machine with only torch, numpy and Pillow), then again in this process:
    every key written, counts equal to the test split, the same metrics."""
    import torch

    from pipeline.train.probe import ProbeConfig, run_probe

    blocked = ["pydantic", "prefect", "yaml", "typer", "rich", "matplotlib", "skimage", "cv2",
               "openai", "tenacity", "httpx", "jinja2", "distortions", "flows", "prompts"]
    script = f"""
import importlib.abc, json, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        inside = name == "pipeline" or name.startswith("pipeline.train")
        if top in BLOCKED or (top == "pipeline" and not inside):
            raise ImportError("blocked in this test: " + name)
        return None
sys.meta_path.insert(0, Block())
from pipeline.train.probe import ProbeConfig, run_probe
run_probe({str(tiny)!r}, ProbeConfig(**{_TINY!r}), out={str(tmp_path / 'a')!r},
          progress=lambda info: None)
print(sorted(m for m in sys.modules if m.startswith("pipeline")))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pipeline.manifest" not in done.stdout and "pipeline.train.probe" in done.stdout
    first = json.loads((tmp_path / "a" / "metrics.json").read_text(encoding="utf-8"))
    for f in ("confusion.png", "curves.png", "checkpoint.pt"):
        assert (tmp_path / "a" / f).stat().st_size > 0
    for dotted in ("device", "identify.test_accuracy", "identify.chance", "identify.n_test",
                   "compare.test_accuracy", "compare.n_test", "severity.test_spearman",
                   "train_images_per_s"):
        node: Any = first
        for part in dotted.split("."):
            assert part in node, dotted
            node = node[part]
    assert first["device"] == "cpu" and first["amp"] is None and first["compiled"] is False
    assert first["identify"]["n_test"] == len(_records(tiny, "A_brief_sd", "test"))
    assert first["compare"]["n_test"] == len(_records(tiny, "refAB_brief", "test"))
    assert first["severity"]["n_test"] == first["identify"]["n_test"]
    conf = np.asarray(first["identify"]["confusion"])
    assert conf.shape == (13, 13) and conf.sum() == first["identify"]["n_test_labelled"]
    assert first["epochs_completed"] == 1 and first["time_capped"] is False
    assert len(first["curves"]) == 1 and first["train_images_per_s"] > 0
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert ckpt["classes"][0] == "clean" and "model" in ckpt

    second = run_probe(tiny, ProbeConfig(**_TINY), out=tmp_path / "b",
                       progress=lambda info: None)
    assert _model_figures(second) == _model_figures(first)


def test_minutes_cap_stops_and_says_so(tiny: Path, tmp_path: Path) -> None:
    from pipeline.train.probe import ProbeConfig, run_probe

    m = run_probe(tiny, ProbeConfig(**{**_TINY, "epochs": 50, "minutes": 0.001}),
                  out=tmp_path, progress=lambda info: None)
    assert m["time_capped"] is True and m["epochs_completed"] < 50 and m["minutes_cap"] == 0.001
    assert m["identify"]["n_test"] == len(_records(tiny, "A_brief_sd", "test"))  # still scored


def test_spearman_with_ties() -> None:
    from pipeline.train.probe import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.894427, abs=1e-5)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_probe_cli_errors_are_one_line(tiny: Path, tmp_path: Path) -> None:
    import torch

    from pipeline.cli import app

    res = CliRunner().invoke(app, ["probe", str(tmp_path)])
    assert res.exit_code == 2 and f"{tmp_path}: not a dataset folder" in res.output
    (tmp_path / "samples").mkdir()
    res = CliRunner().invoke(app, ["probe", str(tmp_path)])
    assert res.exit_code == 2 and "no tasks/ folder" in res.output
    res = CliRunner().invoke(app, ["probe", str(tiny), "--device", "tpu"])
    assert res.exit_code == 2 and "--device must be auto, cpu or cuda" in res.output
    if not torch.cuda.is_available():
        res = CliRunner().invoke(app, ["probe", str(tiny), "--device", "cuda"])
        assert res.exit_code == 2 and "no CUDA device here" in res.output


def test_build_runs_the_probe_when_the_manifest_asks(photo_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """`probe: {epochs: 1}` in the manifest: the build writes probe/, the card gets a
    Learnability section, the lock leaves probe/ out; `dqgen probe` rewrites it."""
    from pipeline.cli import app
    from pipeline.report import collect_stats, render_card
    from pipeline.store import Store

    path = write_manifest(tmp_path, photo_dir, counts={"refA_sd": {"train": 6, "test": 2},
                                                       "refAB_sd": {"train": 4, "test": 2}},
                          probe={"epochs": 1, "device": "cpu"})
    summary = run_build(load_manifest(path))
    root = Path(summary["output"])
    assert summary["probe"]["identify/test"]["done"] == len(_records(root, "A_brief_sd", "test"))
    metrics = json.loads((root / "probe" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["seed"] == 11  # the manifest's seed
    lock = json.loads((root / "manifest.lock.json").read_text(encoding="utf-8"))
    assert not [k for k in lock["outputs"] if k.startswith("probe/")]
    card = render_card(collect_stats(Store(root)), contact=[])
    assert "## Learnability" in card and "| identify (A_brief_sd) | top-1 accuracy |" in card
    assert f"| compare (refAB_brief) | pair accuracy | {metrics['compare']['test_accuracy']:.3f}" in card

    res = CliRunner().invoke(app, ["probe", str(root), "--epochs", "1", "--seed", "4",
                                   "--batch-size", "8", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    again = json.loads((root / "probe" / "metrics.json").read_text(encoding="utf-8"))
    assert again["config"]["seed"] == 4 and again["identify"]["n_test"] == metrics["identify"]["n_test"]
    assert '"train_images_per_s"' in res.output and "img/s" in res.output  # bar + JSON


@pytest.mark.slow
def test_probe_learns(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    """On a build just large enough: identification well above chance, pairs well above 0.5."""
    from pipeline.train.probe import ProbeConfig, run_probe

    folder = tmp_path_factory.mktemp("probe-learn")
    path = write_manifest(folder, photo_dir, resize={"short_side": 64},
                          counts={"refA_sd": {"train": 150, "test": 50},
                                  "refAB_sd": {"train": 60, "test": 40}}, chunk_size=64)
    root = Path(run_build(load_manifest(path), workers=2)["output"])
    # one thread: the same figures as two (seeded), without contending with the other
    # xdist worker; three epochs reach 0.30 top-1 (chance 0.075) and 0.81 pair accuracy
    m = run_probe(root, ProbeConfig(epochs=3, batch_size=16, crop=40, eval_crop=64, width=12,
                                    seed=0, device="cpu", lr=5e-3, threads=1),
                  out=folder / "probe", progress=lambda info: None)
    ident, cmp_ = m["identify"], m["compare"]
    assert ident["test_accuracy"] >= 2 * ident["chance"], ident
    assert cmp_["test_accuracy"] >= 0.65, cmp_
