"""The probe stage and the report's "Learnability" section (pipeline side of the probe).

The training code is `pipeline.train` (torch, numpy, Pillow only); this module connects it
to the build: `stage_probe` runs it when the manifest has a `probe:` entry, writing
``probe/`` in the dataset folder, and `learnability_lines` turns ``probe/metrics.json``
into the dataset card's section. torch is imported only when a probe runs (the `train`
extra).

``probe/`` holds a trained model and run figures (images/s, wall time; CUDA kernels are not
bit-reproducible), so `write_lock` leaves it out of the hashed outputs, like ``logs/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.manifest import Manifest

__all__ = ["PROBE_DIR", "format_metric", "learnability_lines", "probe_settings", "read_probe_metrics",
           "run_dataset_probe", "stage_probe"]

PROBE_DIR = "probe"


def probe_settings(manifest: Manifest | None, **overrides: Any) -> dict[str, Any]:
    """ProbeConfig keyword arguments from the manifest's `probe:` entry and `overrides`
    (None values in overrides are ignored)."""
    out: dict[str, Any] = {}
    if manifest is not None and manifest.probe is not None:
        p = manifest.probe
        out = {"epochs": p.epochs, "seed": manifest.seed if p.seed is None else p.seed,
               "device": p.device, "minutes": p.minutes}
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


def run_dataset_probe(root: str | Path, settings: dict[str, Any], *,
                      progress: Callable[[dict[str, Any]], None] | None = None,
                      out: str | Path | None = None) -> dict[str, Any]:
    """Run the probe on a dataset folder (writes ``<root>/probe/``); returns its metrics.

    Raises:
        ImportError: torch is missing (the message says what to install).
        FileNotFoundError / ValueError: from `pipeline.train.probe.run_probe`.
    """
    try:
        from pipeline.train.probe import ProbeConfig, run_probe
    except ImportError as err:
        msg = ("the probe needs torch: pip install torch (CPU wheel) or pip install "
               f"'dqgen[train]' ({err})")
        raise ImportError(msg) from err
    return run_probe(root, ProbeConfig(**settings), out=out or Path(root) / PROBE_DIR,
                     progress=progress)


def stage_probe(ctx: Any) -> dict[str, Any]:
    """Build stage: the probe, only when the manifest asks (`probe: {epochs: N}`)."""
    if ctx.manifest.probe is None:
        return {}
    m = run_dataset_probe(ctx.store.root, probe_settings(ctx.manifest),
                          progress=lambda info: None)
    return {"identify/test": {"done": m["identify"]["n_test"]},
            "compare/test": {"done": m["compare"]["n_test"]}}


def read_probe_metrics(root: str | Path) -> dict[str, Any] | None:
    """``probe/metrics.json`` of a dataset folder, or None (absent or unreadable)."""
    path = Path(root) / PROBE_DIR / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def format_metric(v: Any) -> str:
    """A metric with three decimals, or n/a."""
    return "n/a" if v is None else f"{v:.3f}"


def learnability_lines(metrics: dict[str, Any] | None) -> list[str]:
    """The card's "Learnability" section (Markdown lines); [] without probe metrics.

    Only figures of the model are shown (accuracies, counts, epochs), not speed, so the
    card stays a function of the dataset on CPU; images/s is in probe/metrics.json.
    """
    if not metrics:
        return []
    ident, sev, cmp_ = metrics.get("identify", {}), metrics.get("severity", {}), metrics.get("compare", {})
    acc, chance = ident.get("test_accuracy"), ident.get("chance")
    ratio = f" ({acc / chance:.1f}x chance)" if acc is not None and chance else ""
    capped = (f", stopped by the {metrics.get('minutes_cap')} min cap"
              if metrics.get("time_capped") else "")
    out = ["## Learnability", "",
           "A small CNN trained from scratch on this dataset's train split "
           f"(`dqgen probe`, {metrics.get('epochs_completed')} of "
           f"{metrics.get('epochs_requested')} epochs{capped}), scored on the test split:", "",
           "| task | metric | test | chance | n |", "|---|---|---|---|---|",
           f"| identify ({ident.get('task')}) | top-1 accuracy | {format_metric(acc)}{ratio} | "
           f"{format_metric(chance)} | {ident.get('n_test_labelled', ident.get('n_test'))} |",
           f"| severity ({sev.get('task')}) | Spearman | {format_metric(sev.get('test_spearman'))} | 0 | "
           f"{sev.get('n_test')} |",
           f"| compare ({cmp_.get('task')}) | pair accuracy | {format_metric(cmp_.get('test_accuracy'))} | "
           f"0.5 | {cmp_.get('n_test')} |"]
    human = cmp_.get("human") or {}
    if human.get("n_test"):
        out.append(f"| compare, human pairs | pair accuracy | {format_metric(human.get('test_accuracy'))} "
                   f"| 0.5 | {human['n_test']} |")
    per = ident.get("per_category") or {}
    if per:
        out += ["", "Identification accuracy per category (test): " + ", ".join(
            f"{name} {v['accuracy']:.2f} (n {v['n']})" for name, v in per.items())]
    out += ["", "![confusion](../probe/confusion.png)", "", "![curves](../probe/curves.png)", ""]
    return out
