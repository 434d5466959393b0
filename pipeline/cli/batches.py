"""dqgen batches: the state of a dataset's OpenAI Batch API batches (responder.mode batch)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from pipeline.cli._app import JSON_HELP, app, console, dataset_dir, emit

__all__ = ["batch_notes", "batches_cmd", "batches_table"]


def _age(created: str | None, now: dt.datetime) -> str:
    if not created:
        return "-"
    seconds = max(0, int((now - dt.datetime.fromisoformat(created)).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def batches_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One row per batch: id, status, requests, done, failed, age, cost (reserved while
    open: the worst case; the answers' cost once collected)."""
    from pipeline.respond.batch import TERMINAL  # lazy: every dqgen start imports this file

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    for c in ("batch", "model", "status", "requests", "done", "failed", "age", "cost $"):
        table.add_column(c, justify="left" if c in ("batch", "model", "status") else "right",
                         no_wrap=True)
    now = dt.datetime.now(dt.timezone.utc)
    for b in rows:
        counts = b.get("counts", {})
        collected = b.get("collected")
        done = b.get("done") if collected else counts.get("completed", 0)
        failed = b.get("failed") if collected else counts.get("failed", 0)
        cost = (f"{b.get('cost_usd', 0.0):.4f}" if collected
                else f"<={b.get('reserved_usd', 0.0):.4f}")
        status = b.get("status", "?") + ("" if collected or b.get("status") not in TERMINAL
                                         else " (not collected)")
        table.add_row(b.get("batch_id") or f"({b['local_id']}, not sent)", b.get("model", ""),
                      status, str(b.get("requests", 0)), str(done), str(failed),
                      _age(b.get("created"), now), cost)
    return table


def batch_notes(info: dict[str, Any], root: Path, manifest: Path | None = None) -> None:
    """After `dqgen respond --mode batch`: the batches sent and how to follow them."""
    if info.get("submitted"):
        console.print(f"submitted {len(info['submitted'])} batch(es): "
                      f"{', '.join(info['submitted'])}", highlight=False)
    if info.get("open"):
        again = f"dqgen respond {manifest} --mode batch" if manifest else "dqgen respond"
        console.print(f"{len(info['open'])} batch(es) open ({info['open_requests']} "
                      f"requests). Check with `dqgen batches {root}`; collect the answers "
                      f"with `{again}` (add --wait to poll until done). Submitted requests "
                      f"are never sent again.", highlight=False)
    if info.get("collected_answers"):
        console.print(f"collected {info['collected_answers']} answer(s) from batches, "
                      f"${info['batch_cost_usd']:.4f}", highlight=False)


@app.command("batches")
def batches_cmd(
    directory: Path = typer.Argument(..., help="Dataset folder (with logs/batches/)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the OpenAI Batch API batches of a dataset (`responder.mode: batch`): id, model,
    status, requests, done, failed, age and cost, from `logs/batches/<key>/state.json`.

    The state is as last seen by `dqgen respond`; run `dqgen respond MANIFEST --mode batch`
    to poll the open ones and collect their answers.
    """
    from pipeline.respond import read_batches
    from pipeline.store import Store

    rows = read_batches(Store(dataset_dir(directory)))
    if not rows and not as_json:
        console.print(f"no batches in {directory} (respond with --mode batch to send some)",
                      highlight=False)
        return
    public = [{k: v for k, v in b.items() if k not in ("hashes", "meta", "answered")}
              for b in rows]
    emit(batches_table(rows, f"dqgen batches {directory}"), public, as_json)
    open_ = [b for b in rows if not b.get("collected")]
    console.print(f"{len(rows)} batch(es), {len(open_)} open; "
                  f"{sum(b.get('done', 0) for b in rows if b.get('collected'))} answers "
                  f"collected, ${sum(b.get('cost_usd', 0.0) for b in rows):.4f}",
                  highlight=False)
