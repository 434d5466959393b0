"""dqgen commands: respond (MLLM answers for the detail tasks) and retry-failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich import box
from rich.table import Table

from pipeline.cli._app import (JSON_HELP, app, console, dataset_dir, emit, fail,
                               load_manifest_or_demo, owned, split_list, with_overrides)

__all__ = ["respond_cmd", "retry_failures_cmd", "summary_line", "summary_table"]


def summary_table(title: str, result: dict[str, Any]) -> Table:
    """One row per kind/split of a respond summary (plus totals)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    cols = ("kind/split", "all", "new", "skip", "fail", "left", "calls", "cache",
            "tokens", "cost $")
    for c in cols:
        table.add_column(c, justify="left" if c == "kind/split" else "right", no_wrap=True)

    def row(name: str, s: dict[str, Any]) -> None:
        table.add_row(name, str(s.get("samples", 0)), str(s.get("accepted", 0)),
                      str(s.get("already_done", 0) + s.get("skipped_open_failures", 0)),
                      str(s.get("failed", 0)), str(s.get("remaining", 0)),
                      str(s.get("calls", 0)), str(s.get("cached", 0)),
                      str(s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)),
                      f"{s.get('cost_usd', 0.0):.3f}")

    for s in result["splits"]:
        row(f"{s['kind']}/{s['split']}", s)
    if len(result["splits"]) > 1:
        row("total", result["totals"])
    return table


def summary_line(result: dict[str, Any]) -> str:
    """Tokens, retries, rejections by reason and flags of a respond summary, in one line."""
    totals = result["totals"]
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(totals.get("rejected", {}).items()))
    flagged = ", ".join(f"{k} {v}" for k, v in sorted(totals.get("flagged", {}).items()))
    return (f"tokens in {totals.get('prompt_tokens', 0)}, out "
            f"{totals.get('completion_tokens', 0)}; retries {totals.get('retries', 0)}; "
            f"rejected answers by reason: {rejected or 'none'}"
            + (f"; kept but flagged: {flagged}" if flagged else ""))


class _Bars:
    """A rich bar per kind/split, fed by the stage's progress callback."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("samples"),
                                 TimeElapsedColumn(), console=console)
        self.tasks: dict[str, Any] = {}

    def __call__(self, kind: str, split: str, done: int, total: int) -> None:
        key = f"{kind}/{split}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"respond {key}", total=total)
        self.progress.update(self.tasks[key], completed=done)


def _notes(result: dict[str, Any], root: Path) -> None:
    totals = result["totals"]
    if result.get("budget_reached"):
        console.print(f"[yellow]budget reached[/] (max_cost_usd): {totals.get('remaining', 0)} "
                      f"sample(s) left; run the same command again (with a larger budget) to "
                      f"continue", highlight=False)
    open_failed = totals.get("failed", 0) + totals.get("skipped_open_failures", 0)
    if open_failed:
        console.print(f"[yellow]{open_failed} sample(s) with open failures[/]: see "
                      f"{root / 'failures' / 'respond.jsonl'}; re-run them with "
                      f"`dqgen retry-failures {root}`", highlight=False)


@app.command("respond")
def respond_cmd(
    manifest: Path = typer.Argument(
        ..., help="Build manifest (YAML), e.g. data_manifest/demo.yaml."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Dataset folder (default: the manifest's output)."),
    kinds: Optional[list[str]] = typer.Option(
        None, "--kinds", "-k",
        help="Sample kinds to answer (repeat or comma-separate; default: all in the manifest)."),
    splits: Optional[list[str]] = typer.Option(
        None, "--splits", "-s", help="Splits to answer (repeat or comma-separate; default: all)."),
    responder: Optional[str] = typer.Option(
        None, "--responder",
        help="template | openai | replay (default: the manifest's responder.kind)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Model for the openai responder (overrides responder.model)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url",
        help="OpenAI-compatible server URL, e.g. http://localhost:8000/v1 (overrides "
        "responder.base_url and OPENAI_BASE_URL)."),
    max_cost: Optional[float] = typer.Option(
        None, "--max-cost",
        help="Budget of this run in USD: stops cleanly (resumable) before it is exceeded."),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", help="Requests in flight (overrides responder.concurrency)."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Also redo samples with open failure records."),
    mode: Optional[str] = typer.Option(
        None, "--mode",
        help="online (one call per request) | batch (the OpenAI Batch API: half price, "
        "answers within 24 h; submits and returns unless --wait). Default: responder.mode."),
    wait: bool = typer.Option(
        False, "--wait", help="Batch mode: poll until every batch is done (progress bar)."),
    replay_file: Optional[Path] = typer.Option(
        None, "--replay-file",
        help="Answers to replay: a responses JSONL of another build, or a JSON/YAML map "
        "{sample_id: text} (sets responder.replay_file; implies --responder replay)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Ask the responder for the detail answers of every refA/refAB sample not answered yet.

    Paid answers are cached by request hash (a re-run makes no call), validated (bad
    answers are asked again a bounded number of times), and failures are logged in
    failures/respond.jsonl. Each run is logged in `logs/respond/<key>.jsonl` as it goes
    (history, totalled in logs/respond_summary.json). A refused key (HTTP 401/403) stops
    the run after the first refusal. The API key is read only from the OPENAI_API_KEY
    variable.
    """
    from pipeline.respond import respond
    from pipeline.store import Store

    m = load_manifest_or_demo(manifest)
    updates = {"kind": responder, "model": model, "base_url": base_url,
               "max_cost_usd": max_cost, "concurrency": concurrency, "mode": mode}
    if mode is not None and mode not in ("online", "batch"):
        fail(f"--mode must be online or batch, got {mode!r}")
    if responder is not None and responder not in ("template", "openai", "replay"):
        fail(f"--responder must be template, openai or replay, got {responder!r}")
    if replay_file is not None:
        if responder not in (None, "replay"):
            fail(f"--replay-file goes with --responder replay, not {responder!r}")
        if not replay_file.is_file():
            fail(f"{replay_file}: replay file not found")
        updates.update(kind="replay", replay_file=str(replay_file.expanduser().resolve()))
    config = with_overrides(m.responder, "responder option", **updates)
    store = Store(out.expanduser().resolve() if out is not None else m.output_dir())
    kind_list, split_names = split_list(kinds), split_list(splits)
    from pipeline.records import KINDS

    for k in kind_list or []:
        if k not in KINDS:
            fail(f"unknown sample kind {k!r}; known: {', '.join(KINDS)}")
    targets = [(k, s) for k in (kind_list or m.kinds()) for s in (split_names or m.splits())]
    if not any(store.samples_path(k, s).exists() for k, s in targets):
        fail(f"no sample records under {store.root / 'samples'} for "
             f"{', '.join(f'{k}/{s}' for k, s in targets) or 'the manifest'}: "
             f"run `dqgen build {manifest}` first")
    bars = _Bars()
    try:
        with owned(store.root, "respond"), bars.progress:
            result = respond(m, store, kinds=kind_list, splits=split_names, config=config,
                             retry_failed=retry_failed, progress=bars, origin="dqgen respond",
                             wait=wait)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    emit(summary_table(f"dqgen respond {m.name} ({config.kind})", result), result, as_json)
    console.print(summary_line(result), highlight=False)
    _notes(result, store.root)
    if "batch" in result:
        from pipeline.cli.batches import batch_notes

        batch_notes(result["batch"], store.root, manifest)


@app.command("retry-failures")
def retry_failures_cmd(
    directory: Path = typer.Argument(..., help="Dataset folder with failures/respond.jsonl."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Re-run exactly the samples listed in failures/respond.jsonl, with the responder
    settings they were first run with (`responses/<key>/responder.json`).

    Retried records move to failures/respond.retried.jsonl; samples that fail again are
    listed anew in failures/respond.jsonl. Cached answers that fail validation are asked
    anew (accepted ones are never paid twice); the run is logged in `logs/respond/<key>.jsonl`.
    """
    from pipeline.respond import retry_failures
    from pipeline.store import Store

    store = Store(dataset_dir(directory))
    if not store.failures_path("respond").exists() or not store.failures("respond"):
        console.print(f"no open respond failures in {directory}", highlight=False)
        return
    bars = _Bars()
    try:
        with owned(store.root, "retry-failures"), bars.progress:
            result = retry_failures(directory, progress=bars, origin="dqgen retry-failures")
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    emit(summary_table(f"dqgen retry-failures {directory}", result), result, as_json)
    console.print(summary_line(result), highlight=False)
    console.print(f"retried {result['retried']} sample(s); {result['still_failing']} still "
                  f"failing", highlight=False)
    _notes(result, store.root)
