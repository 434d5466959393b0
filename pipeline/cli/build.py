"""dqgen commands of the build core: `build`, `regenerate`, `judge`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipeline.cli._app import (
    JSON_HELP, app, console, emit, fail, load_manifest_or_demo, split_list,
)

__all__ = ["DEMO_MANIFEST", "build", "judge", "regenerate"]

DEMO_MANIFEST = "data_manifest/demo.yaml (embedded)"

_MANIFEST_HELP = "Build manifest (YAML). Default: the embedded demo, data_manifest/demo.yaml."
_OUT_HELP = "Dataset folder (default: the manifest's `output`, relative to the working directory)."


def _summary_table(title: str, summary: dict[str, Any]) -> Table:
    """One row per stage (or per kind/split of a stage) of a run_build summary."""
    table = Table(title=title, title_justify="left")
    for col in ("stage", "item", "done", "skipped", "failed", "total"):
        table.add_column(col, justify="left" if col in ("stage", "item") else "right")
    counters = ("done", "skipped", "failed")
    for stage, value in summary.items():
        if not isinstance(value, dict):
            continue
        if value and all(isinstance(v, dict) for v in value.values()):
            rows = list(value.items())
        elif any(k in value for k in counters) or not value:
            rows = [("", value)]
        else:  # {item: count}, e.g. the plan stage
            rows = [(item, {"total": n}) for item, n in value.items()]
        for item, row in rows:
            total = next((row[k] for k in ("total", "samples", "references", "files")
                          if k in row), "")
            table.add_row(stage, item, *(str(row.get(k, "")) for k in counters), str(total))
    return table


def _failure_note(out: str) -> None:
    from pipeline.store import Store

    store = Store(out)
    for stage in ("ingest", "synthesize", "judge", "labels"):
        n = len(store.failures(stage))
        if n:
            console.print(f"[yellow]{n} {stage} failure(s)[/]: see "
                          f"{store.failures_path(stage)}", highlight=False)


def _run_bare(manifest: Any, **kwargs: Any) -> dict[str, Any]:
    from pipeline.build import run_build
    from pipeline.progress import RichProgress

    with RichProgress(console) as progress:
        return run_build(manifest, progress=progress, **kwargs)


def _require_dask() -> None:
    """Refuse a missing dask extra at once, naming the install command."""
    from flows.runners import DaskNotInstalledError, dask_modules

    try:
        dask_modules()
    except DaskNotInstalledError as err:
        fail(str(err))


def _run_prefect(manifest: Any, **kwargs: Any) -> dict[str, Any]:
    # flows/build_flow.py: the `build_dataset` flow in Prefect's ephemeral mode (no server
    # to start) unless PREFECT_API_URL names one; same stages and bytes as run_build.
    try:
        from flows.build_flow import run_build_flow
    except ImportError as err:
        fail(f"the Prefect runner is not available ({err}); use --no-prefect")
    import os

    if not os.environ.get("PREFECT_API_URL"):  # the ~10 s of silence before the first bar
        console.print("[dim]prefect: starting a temporary local server (ephemeral mode; set "
                      "PREFECT_API_URL to use a running one, or --no-prefect)[/]",
                      highlight=False)
    return run_build_flow(manifest, **kwargs)


@app.command("build")
def build(
    manifest: Path = typer.Argument(None, help=_MANIFEST_HELP, show_default=False),
    kinds: list[str] = typer.Option(None, "--kinds", "-k",
                                    help="Sample kinds to build (repeat or comma-separate): "
                                         "refA_sd, refA_md, refAB_sd, refAB_md. Default: all "
                                         "in the manifest."),
    splits: list[str] = typer.Option(None, "--splits", "-s",
                                     help="Splits to build (repeat or comma-separate). "
                                          "Default: all in the manifest."),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="N: ingest and synthesis chunks run at a time. "
                                     "With --no-prefect: a pool of N processes (1: no "
                                     "pool, in this process). Under Prefect (default): N "
                                     "threads in this process with --runner threads "
                                     "(OpenCV/NumPy release the GIL), or a Dask "
                                     "LocalCluster of N single-threaded processes with "
                                     "--runner dask (unused with --dask-address: the "
                                     "cluster's workers run the chunks). Output is "
                                     "byte-identical for any N."),
    out: Path = typer.Option(None, "--out", "-o", help=_OUT_HELP, show_default=False),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect",
                                 help="Run the stages as Prefect flows (default; ephemeral "
                                      "mode unless PREFECT_API_URL is set), or as a bare "
                                      "run without Prefect."),
    runner: str = typer.Option("threads", "--runner",
                               help="Prefect task runner: threads (local) or dask "
                                    "(a LocalCluster of --workers processes, or "
                                    "--dask-address)."),
    dask_address: str = typer.Option(None, "--dask-address",
                                     help="Scheduler of an existing Dask cluster, e.g. "
                                          "tcp://10.0.0.5:8786 (implies --runner dask).",
                                     show_default=False),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Build a dataset: ingest, plan, synthesise, judge, respond, assemble, report, lock.

    MANIFEST defaults to the embedded demo. Human-labelled `sources` are read too. Resumes:
    a re-run (also after a crash or kill) does only the missing work and never pays an
    MLLM call twice; the output is byte-identical for any number of workers.
    """
    m = load_manifest_or_demo(manifest)
    kw = {"kinds": split_list(kinds), "splits": split_list(splits), "workers": workers,
          "out": out}
    from pipeline.judge import JudgeError
    from pipeline.manifest import ManifestError

    if dask_address:
        runner = "dask"
    if prefect and runner == "dask":
        _require_dask()  # before Prefect's temporary server starts (seconds)
    if prefect:
        kw.update(runner=runner, dask_address=dask_address)
    elif runner != "threads":
        fail("--runner and --dask-address need Prefect; drop --no-prefect")
    started = time.perf_counter()
    try:
        summary = (_run_prefect if prefect else _run_bare)(m, **kw)
    except (ValueError, FileNotFoundError, ManifestError, JudgeError) as err:
        fail(str(err))  # user errors (ManifestError is a ValueError): a message, exit 2
    emit(_summary_table(f"dqgen build {m.name}", summary), summary, as_json)
    _failure_note(summary["output"])
    console.print(f"[green]done[/] in {time.perf_counter() - started:.1f} s: "
                  f"{summary['output']}", highlight=False)


@app.command("regenerate")
def regenerate(
    manifest: Path = typer.Argument(..., help="Build manifest (YAML) of the dataset."),
    kind: str = typer.Option(..., "--kind", "-k", help="Sample kind: refA_sd, refA_md, "
                             "refAB_sd or refAB_md."),
    split: str = typer.Option(..., "--split", "-s", help="Split, e.g. train or test."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes."),
    out: Path = typer.Option(None, "--out", "-o", help=_OUT_HELP, show_default=False),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete and rebuild one kind/split (plan, images, samples), byte-identical to the first.

    References are ingested first if the dataset folder has none.
    """
    from pipeline.build import regenerate as regenerate_split
    from pipeline.judge import JudgeError
    from pipeline.progress import RichProgress

    m = load_manifest_or_demo(manifest)
    started = time.perf_counter()
    try:
        with RichProgress(console) as progress:
            summary = regenerate_split(m, kind, split, workers=workers, out=out,
                                       progress=progress)
    except (ValueError, FileNotFoundError, JudgeError) as err:
        fail(str(err))
    emit(_summary_table(f"dqgen regenerate {kind}/{split}",
                        {"synthesize": summary["synthesize"]}), summary, as_json)
    console.print(f"[green]done[/] in {time.perf_counter() - started:.1f} s: "
                  f"{summary['output']}", highlight=False)


@app.command("judge")
def judge(
    manifest: Path = typer.Argument(..., help="Build manifest (YAML) of the dataset."),
    kinds: list[str] = typer.Option(None, "--kinds", "-k",
                                    help="refAB kinds to re-judge (default: all)."),
    splits: list[str] = typer.Option(None, "--splits", "-s", help="Splits (default: all)."),
    out: Path = typer.Option(None, "--out", "-o", help=_OUT_HELP, show_default=False),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Re-judge the pairs of a built dataset with the manifest's judge (e.g. after changing it)."""
    from pipeline.build import judge_dataset
    from pipeline.judge import JudgeError
    from pipeline.progress import RichProgress

    m = load_manifest_or_demo(manifest)
    try:
        with RichProgress(console) as progress:
            summary = judge_dataset(m, kinds=split_list(kinds), splits=split_list(splits),
                                    out=out, progress=progress)
    except (ValueError, FileNotFoundError, JudgeError) as err:
        fail(str(err))
    table = Table(title=f"dqgen judge {m.name} ({m.judge.kind})", title_justify="left")
    for col in ("kind/split", "judged", "failed"):
        table.add_column(col)
    for key, row in summary.items():
        if key != "lock":
            table.add_row(key, str(row["judged"]), str(row["failed"]))
    emit(table, summary, as_json)
