"""Helpers shared by the flows: manifest parameters, run names, and the run summary.

A flow's `manifest` parameter is a path to a manifest file (what a deployment run gets;
a relative path is read from the working directory of the process running the flow, so
deployment runs should pass absolute paths), the resolved manifest as a dict (what
`dqgen build` and the parent flow pass, so a sub-flow sees exactly the parent's
manifest), or empty for the embedded demo (data_manifest/demo.yaml inside the installed
package: the deployments' default, found from any working directory).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.tasks import tally
from pipeline.manifest import Manifest, ManifestError, load_demo_manifest, load_manifest

__all__ = [
    "ManifestParam",
    "artifact_key",
    "load_manifest_param",
    "manifest_label",
    "output_dir",
    "publish_summary",
    "run_name",
    "summary_rows",
]

ManifestParam = str | dict[str, Any] | None


def load_manifest_param(manifest: ManifestParam) -> Manifest:
    """The Manifest a flow parameter names (see module docstring).

    Raises:
        ManifestError: a file that cannot be read or does not validate (a relative path
            that is not found names the working directory it was looked for in).
        pydantic.ValidationError: a dict that does not validate.
    """
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, dict):
        return Manifest.model_validate(manifest)
    if not manifest:
        return load_demo_manifest()
    path = Path(manifest).expanduser()
    if not path.is_absolute() and not path.exists():
        msg = (f"{manifest}: manifest not found in the working directory {Path.cwd()} of "
               f"the process running this flow; pass an absolute path (or leave "
               f"`manifest` empty for the embedded demo)")
        raise ManifestError(msg)
    return load_manifest(path)


def output_dir(manifest: Manifest, out: str | None) -> str:
    """The dataset folder: `out` when given, else the manifest's `output`."""
    return str(Path(out).expanduser().resolve() if out else manifest.output_dir())


def manifest_label(manifest: ManifestParam) -> str:
    """A short name for run names: the manifest's `name`, or the file stem."""
    if isinstance(manifest, dict):
        return str(manifest.get("name", "manifest"))
    if isinstance(manifest, Manifest):
        return manifest.name
    return Path(manifest).stem if manifest else "demo"


def run_name() -> str:
    """Flow run name `<manifest> <flow> <split or kinds>` (read from the run's parameters)."""
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    parts = [manifest_label(params.get("manifest")), flow_run.flow_name]
    split = params.get("split") or params.get("splits")
    if isinstance(split, (list, tuple)):
        split = ",".join(split)
    kinds = params.get("kinds")
    if kinds:
        parts.append(",".join(kinds))
    parts.append(split or "all-splits")
    return " ".join(str(p) for p in parts)


def artifact_key(*parts: str) -> str:
    """An artifact key from `parts`: lowercase letters, digits and dashes only (Prefect's rule)."""
    text = "-".join(parts).lower()
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text)).strip("-")


def summary_rows(summaries: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per stage: done, skipped (resumed), failed, cost."""
    rows = []
    for stage, summary in summaries.items():
        if not isinstance(summary, dict):
            continue
        t = tally(summary)
        rows.append({"stage": stage, "done": int(t["done"]), "skipped": int(t["skipped"]),
                     "failed": int(t["failed"]), "cost_usd": t["cost_usd"]})
    return rows


def publish_summary(title: str, key: str, summaries: dict[str, Any], output: str) -> None:
    """Log the run's counts and attach them to the run as a table and a markdown artifact."""
    rows = summary_rows(summaries)
    total = {k: sum(r[k] for r in rows) for k in ("done", "skipped", "failed", "cost_usd")}
    logger = get_run_logger()
    for r in rows:
        logger.info("%-10s done %6d | skipped %6d | failed %4d | cost $%.4f",
                    r["stage"], r["done"], r["skipped"], r["failed"], r["cost_usd"])
    logger.info("%s: %d done, %d skipped (resumed), %d failed, cost $%.4f -> %s", title,
                total["done"], total["skipped"], total["failed"], total["cost_usd"], output)
    create_table_artifact(rows, key=key, description=f"{title}: counts per stage")
    lines = [f"# {title}", "", f"Dataset folder: `{output}`", "",
             "| stage | done | skipped (resumed) | failed | cost (USD) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['done']} | {r['skipped']} | {r['failed']} | "
              f"{r['cost_usd']:.4f} |" for r in rows]
    lines += [f"| **total** | {total['done']} | {total['skipped']} | {total['failed']} | "
              f"{total['cost_usd']:.4f} |"]
    create_markdown_artifact("\n".join(lines), key=f"{key}-summary",
                             description=f"{title}: summary")
