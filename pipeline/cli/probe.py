"""dqgen command of the training side: `probe` (the learnability probe, pipeline/train/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pipeline.cli._app import JSON_HELP, app, console, dataset_dir, emit, fail

__all__ = ["probe"]


class _RichProgress:
    """A rich progress bar fed by the probe's progress callback (images/s, loss)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("probe epoch {task.fields[epoch]}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("steps"),
                            TextColumn("{task.fields[speed]:.0f} img/s"),
                            TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                            console=console, transient=False)
        self.task: Any = None

    def __call__(self, info: dict[str, Any]) -> None:
        fields = {"epoch": f"{info['epoch'] + 1}/{info['epochs']}",
                  "speed": info["images_per_s"], "loss": info["loss"]}
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("probe", total=info["total_steps"], **fields)
        self.bar.update(self.task, completed=info["step"], **fields)
        if info.get("final"):
            self.bar.stop()


@app.command("probe")
def probe(
    dataset: Path = typer.Argument(..., help="Dataset folder (with tasks/A_brief_sd and "
                                   "tasks/refAB_brief assembled)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or "
                               "cuda. CUDA: mixed precision, torch.compile, pinned memory."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Passes over the train split "
                               "(default: the manifest's probe.epochs, else 6).",
                               show_default=False),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, order and crops "
                             "(default: the manifest's, else 0).", show_default=False),
    minutes: float = typer.Option(None, "--minutes", min=0.05, help="Cap on the run's wall "
                                  "time: training stops in time for the final evaluation "
                                  "and metrics.json says it was capped.", show_default=False),
    batch_size: int = typer.Option(None, "--batch-size", min=2, help="Items per batch "
                                   "(default 64).", show_default=False),
    workers: int = typer.Option(None, "--workers", "-w", min=0, help="Loader processes "
                                "(default: 0 on CPU, up to 4 on CUDA).", show_default=False),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: "
                             "DATASET/probe).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a small CNN from scratch on the dataset and score it on the test split.

    Three tasks: identify the distortion of image A from A alone (A_brief_sd, clean + 12
    categories), its severity, and which of A and B is closer to the reference
    (refAB_brief). Writes `probe/metrics.json` (accuracies with chance rates and counts,
    confusion matrix, severity Spearman, pair accuracy, images/s), `confusion.png`,
    `curves.png` and `checkpoint.pt`; `dqgen report` then adds a Learnability section.
    Two CPU runs with one seed give the same metrics (unless `--minutes` stops them).
    """
    from pipeline.cli.tasks import _manifest_from_lock
    from pipeline.learnability import format_metric, probe_settings, run_dataset_probe

    dataset_dir(dataset)
    if not (dataset / "tasks").is_dir():
        fail(f"{dataset}: no tasks/ folder; build or assemble the dataset first")
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        fail(f"--device must be auto, cpu or cuda, got {device!r}")
    settings = {"epochs": 6, "seed": 0, **probe_settings(
        _manifest_from_lock(dataset), epochs=epochs, seed=seed, minutes=minutes,
        batch_size=batch_size, workers=workers)}
    settings["device"] = device
    try:
        m = run_dataset_probe(dataset, settings, progress=_RichProgress(), out=out)
    except (FileNotFoundError, ValueError, ImportError, OSError) as err:
        fail(str(err))
    ident, cmp_, sev = m["identify"], m["compare"], m["severity"]
    f = format_metric

    cap = " (stopped by --minutes)" if m["time_capped"] else ""
    lines = (f"identify: {f(ident['test_accuracy'])} (chance {f(ident['chance'])}, "
             f"n {ident['n_test']}); severity Spearman {f(sev['test_spearman'])} "
             f"(n {sev['n_test']}); compare: {f(cmp_['test_accuracy'])} (n {cmp_['n_test']})\n"
             f"{m['device']}: {m['epochs_completed']:g}/{m['epochs_requested']} epochs{cap}, "
             f"{m['train_images_per_s']:.0f} train images/s, {m['wall_s']:.0f} s; "
             f"wrote {out or dataset / 'probe'}/metrics.json")
    emit(lines, m, as_json)
