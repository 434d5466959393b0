"""The learnability probe as a Prefect flow (`train_probe`), for a GPU work pool.

A thin wrapper: `pipeline.learnability.run_dataset_probe` does the work (the training code
is `pipeline.train`). The deployment `train_probe/gpu` in flows/prefect.yaml sends it to the
`gpu` work pool, so builds run on CPU machines and the probe where a GPU is
(`prefect worker start --pool gpu` on that machine, with the dataset folder at the same
path). See docs/training.md.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from pipeline.learnability import learnability_lines, probe_settings, run_dataset_probe

__all__ = ["probe_task", "train_probe"]


@task(name="probe", task_run_name="probe {dataset}", persist_result=False, retries=0)
def probe_task(dataset: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Train and score the probe on one dataset folder (writes DATASET/probe/)."""
    return run_dataset_probe(dataset, settings, progress=lambda info: None)


@flow(name="train_probe", persist_result=False, log_prints=False, validate_parameters=True)
def train_probe(dataset: str, epochs: int = 6, seed: int = 0, device: str = "auto",
                minutes: float | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Run the learnability probe on a dataset folder; returns probe/metrics.json's content.

    Args:
        dataset: absolute path of the dataset folder (as the worker sees it).
        epochs, seed, device, minutes, batch_size: as `dqgen probe`.
    """
    settings = probe_settings(None, epochs=epochs, seed=seed, device=device, minutes=minutes,
                              batch_size=batch_size)
    metrics = probe_task(dataset, settings)
    ident, cmp_ = metrics["identify"], metrics["compare"]
    get_run_logger().info(
        "probe on %s: identify %.3f (chance %.3f, n %d), compare %s (n %d), %.0f img/s",
        metrics["device"], ident["test_accuracy"] or 0.0, ident["chance"] or 0.0,
        ident["n_test"], cmp_["test_accuracy"], cmp_["n_test"], metrics["train_images_per_s"])
    create_markdown_artifact("\n".join(learnability_lines(metrics)), key="train-probe",
                             description=f"learnability probe of {dataset}")
    return metrics
