"""Prefect tasks: one thin wrapper per `pipeline` stage function, plus the graph helpers.

Each task calls one library function on a chunk (or a split) and returns its small
summary dict; images and records stay in the dataset folder, never in Prefect's result
storage (`persist_result=False`, no cache). Only idempotent stages are retried by Prefect
(ingest and synthesis chunks, plan, merge, assemble, report, lock), and only on I/O
errors: a deterministic error would fail again. The respond stage has its own retry layer
(tenacity, per request) and gets no Prefect retries.

`submit_ingest` and `submit_kinds` submit the tasks of a stage graph inside the running
flow (ingest: chunk tasks + merge; kinds: plan -> synthesise+judge chunks -> merge per
split) and collect their summaries in `pipeline.build.run_build`'s format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.manifest import Manifest
from pipeline.records import FailureRecord, SamplePlan
from pipeline.store import Store

__all__ = [
    "COUNTERS",
    "assemble_kind_task",
    "ingest_chunk_task",
    "list_sources_task",
    "merge_references_task",
    "merge_samples_task",
    "plan_task",
    "prepare_task",
    "rebuild_failure_logs_task",
    "stage_task",
    "submit_ingest",
    "submit_kinds",
    "synthesize_chunk_task",
    "tally",
]

COUNTERS: tuple[str, ...] = ("done", "skipped", "failed")


def _retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only infrastructure errors (disk, network share, connection); not bugs or bad input."""
    exc = getattr(state, "data", None)
    return isinstance(exc, (OSError, TimeoutError, ConnectionError))


_BASE: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE, "log_prints": False}
_IDEMPOTENT: dict[str, Any] = {**_BASE, "retries": 2, "retry_delay_seconds": 2,
                               "retry_condition_fn": _retry_on_io}


def tally(summary: Any) -> dict[str, float]:
    """done/skipped/failed/cost_usd summed over a stage summary (for logs and artifacts).

    A summary is either a counter dict (`{"done": n, ...}`) or `{item: counter dict}`;
    a respond summary's "totals" entry repeats its items and is left out. A bare count per
    item (the plan stage's `{"kind/split": n}`) counts as done.
    """
    out = {"done": 0, "skipped": 0, "failed": 0, "cost_usd": 0.0}
    if not isinstance(summary, dict):
        return out
    if any(k in summary for k in (*COUNTERS, "cost_usd")):
        rows: list[Any] = [summary]
    else:
        rows = [v for k, v in summary.items() if k != "totals"]
    for row in rows:
        if isinstance(row, int) and not isinstance(row, bool):
            out["done"] += row
        elif isinstance(row, dict):
            for k in out:
                v = row.get(k, 0)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] += v
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def _line(what: str, summary: dict[str, Any]) -> str:
    t = tally(summary)
    return (f"{what}: {t['done']:g} done, {t['skipped']:g} skipped (resumed), "
            f"{t['failed']:g} failed")


# --------------------------------------------------------------------------- tasks
@task(name="prepare", task_run_name="prepare {out}", **_BASE)
def prepare_task(out: str) -> int:
    """Create the dataset folder and delete temp files a killed run left behind."""
    from pipeline.build import remove_stale_temp_files

    store = Store(out)
    store.root.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temp_files(store)
    if removed:
        get_run_logger().info("removed %d temp files of an interrupted run", removed)
    return removed


@task(name="list-references", **_IDEMPOTENT)
def list_sources_task(manifest: Manifest) -> tuple[list[Any], list[FailureRecord]]:
    """The manifest's reference files (pipeline.ingest.list_sources)."""
    from pipeline.ingest import list_sources

    return list_sources(manifest)


@task(name="ingest-chunk", task_run_name="ingest chunk {chunk_index}", **_IDEMPOTENT)
def ingest_chunk_task(manifest: Manifest, out: str, chunk_index: int,
                      sources: list[Any]) -> dict[str, int]:
    """Validate, normalise and resize one chunk of references (pipeline.ingest.ingest_chunk)."""
    from pipeline.ingest import ingest_chunk

    summary = ingest_chunk(manifest, out, chunk_index, sources)
    get_run_logger().info("%s", _line(f"ingest chunk {chunk_index}", summary))
    return summary


@task(name="merge-references", **_IDEMPOTENT)
def merge_references_task(manifest: Manifest, out: str, sources: list[Any],
                          listing_failures: list[FailureRecord]) -> dict[str, int]:
    """Write references.jsonl and failures/ingest.jsonl (pipeline.ingest.merge_references)."""
    from pipeline.ingest import merge_references

    return merge_references(manifest, out, sources, listing_failures)


@task(name="plan", task_run_name="plan {kind}/{split}", **_IDEMPOTENT)
def plan_task(manifest: Manifest, out: str, kind: str, split: str) -> list[SamplePlan]:
    """Write plans/<kind>/<split>.jsonl (pipeline.plan.plan_split); returns the plans."""
    from pipeline.plan import plan_split

    plans = plan_split(manifest, Store(out), kind, split)
    get_run_logger().info("plan %s/%s: %d samples", kind, split, len(plans))
    return plans


@task(name="synthesize-chunk", task_run_name="synthesize {kind}/{split} chunk {chunk_index}",
      **_IDEMPOTENT)
def synthesize_chunk_task(manifest: Manifest, out: str, kind: str, split: str,
                          chunk_index: int, plans: list[SamplePlan]) -> dict[str, int]:
    """Render, judge and record one chunk of plans (pipeline.synthesize.synthesize_chunk)."""
    import cv2

    from pipeline.synthesize import synthesize_chunk

    # The task runner is the parallelism: one OpenCV thread per chunk, as in the bare run.
    cv2.setNumThreads(1)
    summary = synthesize_chunk(manifest, out, kind, split, chunk_index, plans)
    get_run_logger().info("%s", _line(f"synthesize {kind}/{split} chunk {chunk_index}", summary))
    return summary


@task(name="merge-samples", task_run_name="merge {kind}/{split}", **_IDEMPOTENT)
def merge_samples_task(out: str, kind: str, split: str) -> dict[str, int]:
    """Write samples/<kind>/<split>.jsonl from its chunks (pipeline.synthesize.merge_samples)."""
    from pipeline.synthesize import merge_samples

    return merge_samples(out, kind, split)


@task(name="rebuild-failure-logs", **_IDEMPOTENT)
def rebuild_failure_logs_task(out: str) -> dict[str, int]:
    """Rewrite failures/synthesize.jsonl and failures/judge.jsonl from every chunk file.

    Kind sub-flows merge concurrently, and each merge rewrites these logs from the chunk
    files it sees; one rewrite after all of them makes the logs complete and deterministic.
    """
    from pipeline.synthesize import rebuild_failure_logs

    return rebuild_failure_logs(out)


@task(name="assemble", task_run_name="assemble {kind}", **_IDEMPOTENT)
def assemble_kind_task(manifest: Manifest, out: str, kind: str,
                       splits: list[str]) -> dict[str, Any]:
    """Write the task files fed by one kind (pipeline.assemble.assemble_tasks).

    Shared files (refAB_brief and AB_brief take refAB_sd and refAB_md) are written from all
    kinds present in the folder, so assembling one kind never drops another's records.
    """
    from pipeline.assemble import TASKS, assemble_tasks

    names = [t.name for t in TASKS if kind in t.kinds]
    summary = assemble_tasks(manifest, Store(out), kinds=manifest.kinds(), splits=splits,
                             tasks=names)
    out_rows: dict[str, Any] = {f"{t}/{s}": {"done": n} for t, v in summary["tasks"].items()
                                for s, n in v.items()}
    for reason, n in {**summary["skipped"], **summary["dropped"]}.items():
        out_rows[reason] = {"skipped": n}
    get_run_logger().info("%s", _line(f"assemble {kind}", out_rows))
    return out_rows


def _stage_task_options(name: str) -> dict[str, Any]:
    # respond: tenacity retries each request; a Prefect retry would redo the whole stage.
    # labels reads external datasets once: no retries either.
    return _IDEMPOTENT if name in ("assemble", "report", "lock") else _BASE


@task(name="stage", task_run_name="{name}", **_BASE)
def stage_task(name: str, manifest: Manifest, out: str, kinds: list[str], splits: list[str],
               summaries: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one stage of `pipeline.build.STAGES` (respond, labels, assemble, report, lock, ...)."""
    from pipeline.build import STAGES, BuildContext

    fns = dict(STAGES)
    if name not in fns:
        msg = f"unknown stage {name!r}; known: {', '.join(fns)}"
        raise ValueError(msg)
    ctx = BuildContext(manifest=manifest, store=Store(out), kinds=list(kinds),
                       splits=list(splits), summaries=dict(summaries or {}))
    summary = fns[name](ctx)
    t = tally(summary)
    extra = f", cost ${t['cost_usd']:.4f}" if name == "respond" else ""
    get_run_logger().info("%s%s", _line(name, summary), extra)
    return summary


def stage(name: str) -> Any:
    """`stage_task` named and retried as stage `name` in the UI."""
    return stage_task.with_options(name=name,
                                   **{k: v for k, v in _stage_task_options(name).items()
                                      if k not in ("persist_result", "cache_policy",
                                                   "log_prints")})


# --------------------------------------------------------------------------- graphs
def submit_ingest(manifest: Manifest, out: str) -> dict[str, Any]:
    """Ingest as chunk tasks + one merge (inside a flow); `ingest_references`'s summary."""
    from pipeline.ingest import INGEST_CHUNK_SIZE, chunk_items

    sources, listing_failures = list_sources_task(manifest)
    futures = [ingest_chunk_task.submit(manifest, out, index, chunk)
               for index, chunk in chunk_items(sources, INGEST_CHUNK_SIZE)]
    total = {"done": 0, "skipped": 0, "failed": len(listing_failures)}
    for fut in futures:
        for k, v in fut.result().items():
            total[k] += v
    merged = merge_references_task(manifest, out, sources, listing_failures)
    total["references"] = merged["references"]
    return total


def submit_kinds(manifest: Manifest, out: str, per_kind: dict[str, list[str]]
                 ) -> tuple[dict[str, int], dict[str, Any]]:
    """Plan, synthesise (+ judge) and merge the given splits of several kinds (in a flow).

    All plans are submitted first, then every chunk of every kind, so the kinds share the
    task runner's workers; each split is merged when its chunks are done.

    Args:
        per_kind: {kind: [split, ...]}.

    Returns:
        (plan summary {"kind/split": n}, synthesis summary {"kind/split": {"done",
        "skipped", "failed", "judged", "samples"}}) as `run_build` reports them.
    """
    from pipeline.synthesize import chunk_plans

    keys = [(kind, split) for kind, splits in per_kind.items() for split in splits]
    plan_futures = {key: plan_task.submit(manifest, out, *key) for key in keys}
    counts: dict[str, int] = {}
    chunk_futures: dict[tuple[str, str], list[Any]] = {}
    for key, fut in plan_futures.items():
        plans = fut.result()
        counts["/".join(key)] = len(plans)
        chunk_futures[key] = [synthesize_chunk_task.submit(manifest, out, *key, index, chunk)
                              for index, chunk in chunk_plans(plans, manifest.chunk_size)]
    synth: dict[str, Any] = {}
    merges = {}
    for key, futures in chunk_futures.items():
        row = {"done": 0, "skipped": 0, "failed": 0, "judged": 0}
        for fut in futures:
            for k, v in fut.result().items():
                row[k] = row.get(k, 0) + v
        synth["/".join(key)] = row
        merges[key] = merge_samples_task.submit(out, *key)
    for key, fut in merges.items():
        synth["/".join(key)]["samples"] = fut.result()["samples"]
    return counts, synth
