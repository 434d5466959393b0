"""Benchmark: the label task families (pipeline/label_tasks.py) against the labels stage.

Writes two datasets in their official layouts into a temp folder (tiny images): a
KonIQ-10k-like one (`--koniq` photos, official set column) and an AGIQA-3k-like one
(`--agiqa` images over `--agiqa // 10` prompts, 10 repeated prompt splits). Then, in the
same run:

- baseline: the labels stage (`build_labels`: read the label files, splits, pairs);
- label tasks: `build_label_tasks` with the defaults (A_score, the AIGC tasks, A_score_isp)
  and again with `folds: 10` (k-fold sets of the AGIQA-like source).

Prints seconds, records per second and the ratio to the baseline; writes
bench/results/label_tasks.json. About a minute with the defaults.

    .venv/bin/python bench/label_tasks.py [--koniq 10000] [--agiqa 3000] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.label_tasks import build_label_tasks  # noqa: E402
from pipeline.labels.build import build_labels  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402
from pipeline.store import Store  # noqa: E402


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((8, 8, 3), (value * 37 % 256, value * 91 % 256, value * 53 % 256), np.uint8)
    Image.fromarray(arr).save(path)


def _koniq(root: Path, n: int, rng: np.random.Generator) -> None:
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"]
    rows = []
    for i in range(n):
        name = f"{100000 + i}.jpg"
        _image(root / "1024x768" / name, i)
        s = "training" if i % 10 < 7 else "validation" if i % 10 == 7 else "test"
        rows.append([name, 0.1, 0.2, 0.3, 0.3, 0.1, 100, round(float(rng.uniform(1, 100)), 3),
                     round(float(rng.uniform(0.3, 0.8)), 3), s])
    with open(root / "koniq10k_distributions_sets.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def _agiqa(root: Path, n: int, rng: np.random.Generator) -> None:
    header = ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality",
              "mos_align", "std_align"]
    rows = []
    for i in range(n):
        name = f"model{i % 10}_normal_{i // 10:04d}.jpg"
        _image(root / "AGIQA-3K" / name, i)
        rows.append([name, f'a "photo" of thing {i // 10}\nwith detail', "", "", "",
                     round(float(rng.uniform(0.2, 4.5)), 3), 0.4,
                     round(float(rng.uniform(0.2, 4.5)), 3), 0.5])
    with open(root / "data.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--koniq", type=int, default=10000)
    ap.add_argument("--agiqa", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="2,000 and 600 images")
    args = ap.parse_args()
    if args.quick:
        args.koniq, args.agiqa = 2000, 600
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        _koniq(t / "koniq", args.koniq, rng)
        _agiqa(t / "agiqa", args.agiqa, rng)
        results = {}
        for folds in (0, 10):
            (t / "m.yaml").write_text(
                "name: bench\nseed: 1\nsources:\n"
                "  - {dataset: koniq10k, root: koniq}\n"
                "  - {dataset: agiqa3k, root: agiqa, repeats: 10}\n"
                f"tasks:\n  labels:\n    folds: {folds}\n")
            m = load_manifest(t / "m.yaml")
            store = Store(t / f"out{folds}")
            t0 = time.perf_counter()
            build_labels(m, store)
            labels_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = build_label_tasks(m, store)
            tasks_s = time.perf_counter() - t0
            records = sum(sum(v.values()) for v in summary["tasks"].values())
            records += sum(sum(v.values()) for v in summary["folds"].values())
            results[f"folds={folds}"] = {
                "labels_stage_s": round(labels_s, 3), "label_tasks_s": round(tasks_s, 3),
                "records": records, "records_per_s": round(records / tasks_s, 1),
                "ratio_to_labels_stage": round(tasks_s / labels_s, 2)}
            r = results[f"folds={folds}"]
            print(f"folds={folds:2d}: labels stage {labels_s:6.2f} s (baseline) | label tasks "
                  f"{tasks_s:6.2f} s, {records} records, {r['records_per_s']:.0f} records/s, "
                  f"{r['ratio_to_labels_stage']:.2f}x the labels stage")
    out = ROOT / "bench" / "results" / "label_tasks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"koniq_images": args.koniq, "agiqa_images": args.agiqa,
                               "python": platform.python_version(), "results": results},
                              indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
