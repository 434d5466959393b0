"""Running the stage: respond_split, respond (several kinds and splits, one budget), the
build's stage_respond, and the plumbing they share (config resolution, asyncio from sync
code, combined summaries, one run-log line per run)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

from pipeline.manifest import Manifest, ResponderConfig
from pipeline.respond.batch import BatchQueue
from pipeline.respond.cost import Budget
from pipeline.respond.common import ProgressFn, _scrub
from pipeline.respond.online import _Run, _SplitResult
from pipeline.respond.runlog import log_run, log_start, paid_in_cache
from pipeline.responders.openai import API_KEY_ENV
from pipeline.responders import Responder, make_responder
from pipeline.store import Store

__all__ = ["ResponderAuthError", "respond", "respond_split", "stage_respond"]


class ResponderAuthError(ValueError):
    """The server refused the credentials (HTTP 401/403): the run stopped, nothing more
    was sent; the samples left are answered by the next run."""

T = TypeVar("T")
log = logging.getLogger(__name__)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (then on a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    t = threading.Thread(target=target, name="dqgen-respond")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _arun(store: Store, responder: Responder, config: ResponderConfig,
                targets: Iterable[tuple[str, str, set[str] | None]], *, retry_failed: bool,
                progress: ProgressFn | None, budget: Budget | None, origin: str,
                run_id: str | None = None, wait: bool = True, source: Any = None,
                extra: dict[str, Any] | None = None, pool: Executor | None = None,
                subsets: dict[tuple[str, str], set[str] | None] | None = None
                ) -> list[_SplitResult]:
    """One run: a pass over the targets (online: every request called). Batch mode
    (`config.mode`, paid responders): collect finished batches, pass (answers from the
    cache, the rest handed to the queue), submit; with `wait`, poll and pass again until no
    batch is open and nothing is left to send. `extra` receives the batch summary.
    `pool`: local responders answer over it (pipeline/respond/local.py); `subsets`: the
    detail subsets per (kind, split) (pipeline/detail.py; None: every sample).

    History is written as it goes (pipeline.respond.runlog): a `started` line first, the
    summary at the end (`interrupted` after an error or Ctrl-C, with what the run paid,
    from the cache). A refused key (401/403) stops the run: ResponderAuthError."""
    targets = list(targets)
    run_id = run_id or uuid.uuid4().hex
    if targets:  # a kill leaves this line; the next run closes it from the cache
        log_start(store, responder, config, origin=origin, run_id=run_id)
    run = _Run(store, responder, config, progress, budget, source=source, run_id=run_id)
    run.pool, run.subsets = pool, dict(subsets or {})
    batch = None
    if config.mode == "batch" and responder.paid:
        batch = BatchQueue(store, responder, config, run.budget, run.batch_price, run.cache)
        run.batch = batch
    results: list[_SplitResult] = []
    try:
        while True:
            if batch is not None:
                await batch.collect()
            passed = []
            for kind, split, only_ids in targets:
                # after a budget stop the remaining splits still report what is left to do
                passed.append(await run.split(kind, split, only_ids=only_ids,
                                              retry_failed=retry_failed))
            results = passed if not results else [_merge(a, b) for a, b in zip(results, passed)]
            if batch is None or run.auth_error is not None:
                break
            await batch.submit()
            if not wait or not batch.open_batches():
                break
            await batch.wait(None if progress is None else
                             (lambda done, total: progress("batch", "requests", done, total)))
    except BaseException:  # an error or Ctrl-C: what this run paid, from the cache
        totals = paid_in_cache(store.cache_dir, {run_id})[run_id]
        log_run(store, responder, config, {"splits": [r.summary for r in results],
                                           "totals": totals},
                origin=origin, run_id=run_id, status="interrupted")
        raise
    finally:
        await responder.aclose()
        if batch is not None:
            batch.close()
    if batch is not None:
        if run.budget.reached:  # the round's submission stopped at the cap
            for r in results:
                r.summary["budget_reached"] = True
        info = batch.summary()
        if extra is not None:
            extra["batch"] = info
    if targets:
        combined = _combine([r.summary for r in results])
        if batch is not None:
            combined["batch"] = {k: v for k, v in info.items() if k != "state"}
        log_run(store, responder, config, combined, origin=origin, run_id=run_id)
    if run.auth_error is not None:
        left = sum(r.summary["remaining"] for r in results)
        msg = (f"{_scrub(str(run.auth_error))}: the server refused the credentials "
               f"(check {API_KEY_ENV} and the base_url); the run stopped after the first "
               f"refusal, {left} sample(s) left to do, not sent; fix it and re-run")
        raise ResponderAuthError(msg)
    return results


_FIRST = ("samples", "superseded", "already_done", "skipped_open_failures", "todo")
_LAST = ("remaining", "batch_pending", "budget_reached")


def _merge(first: _SplitResult, later: _SplitResult) -> _SplitResult:
    """The summary of two passes over one split (batch mode): counts added, what was there
    before from the first pass, what is left from the last."""
    out = dict(first.summary)
    for k, v in later.summary.items():
        if k in _FIRST:
            continue
        if k in _LAST or isinstance(v, (str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = round(out.get(k, 0) + v, 6)
        elif isinstance(v, dict):
            bucket = dict(out.get(k, {}))
            for kk, vv in v.items():
                bucket[kk] = bucket.get(kk, 0) + vv
            out[k] = bucket
    return _SplitResult(summary=out, finished=first.finished | later.finished)


def _resolve(manifest: Manifest | None, config: ResponderConfig | None,
             responder: Responder | None) -> tuple[ResponderConfig, Responder]:
    if config is None:
        if manifest is None:
            msg = "respond needs a manifest or a ResponderConfig"
            raise ValueError(msg)
        config = manifest.responder
    if config.kind == "replay" and config.replay_file and manifest is not None:
        replay = str(manifest.resolve(config.replay_file))
        config = config.model_copy(update={"replay_file": replay})
    if responder is None:
        responder = make_responder(config, manifest=manifest)
    return config, responder


def respond_split(manifest: Manifest | None, store: Store, kind: str, split: str, *,
                  responder: Responder | None = None, config: ResponderConfig | None = None,
                  only_ids: Iterable[str] | None = None, retry_failed: bool = False,
                  progress: ProgressFn | None = None, budget: Budget | None = None,
                  origin: str = "respond_split", wait: bool = True) -> dict[str, Any]:
    """Answer every sample of one kind and split that has no accepted response yet.

    Idempotent and resumable: a re-run skips answered samples, and paid answers come from
    the cache. Samples with an open failure record are skipped unless `retry_failed`
    (or named in `only_ids`); see `retry_failures`.

    Args:
        manifest: the build manifest (its `responder` section is the default config).
        store: the dataset folder.
        kind: sample kind (refA_sd, refA_md, refAB_sd, refAB_md).
        split: split name (train, test, ...).
        responder: a ready responder (default: built from the config).
        config: responder settings (default: `manifest.responder`).
        only_ids: restrict to these sample ids.
        retry_failed: also redo samples with open failure records.
        progress: called as progress(kind, split, done, total).
        budget: a Budget shared by several calls (default: a new one with max_cost_usd).
        origin: what ran it, written to the run log (logs/respond/<key>.jsonl).
        wait: batch mode (`responder.mode: batch`): poll until every batch is done and
            every re-ask answered (default); False: submit what is new and return.

    Returns:
        A small JSON-able summary: samples, already_done, todo, accepted, failed, remaining,
        calls, cached, retries, rejected (by reason), flagged, errors (by kind),
        prompt_tokens, completion_tokens, cost_usd, budget_reached, responses_path, ...
    """
    config, responder = _resolve(manifest, config, responder)
    ids = set(only_ids) if only_ids is not None else None
    extra: dict[str, Any] = {}
    results = _run_sync(_arun(store, responder, config, [(kind, split, ids)],
                              retry_failed=retry_failed, progress=progress, budget=budget,
                              origin=origin, wait=wait, extra=extra))
    return {**results[0].summary, **extra}


def respond(manifest: Manifest, store: Store, *, kinds: Iterable[str] | None = None,
            splits: Iterable[str] | None = None, responder: Responder | None = None,
            config: ResponderConfig | None = None, retry_failed: bool = False,
            progress: ProgressFn | None = None, origin: str = "respond",
            wait: bool = True, pool: Executor | None = None,
            announce: Callable[[str], None] | None = None,
            resume: Any = None) -> dict[str, Any]:
    """Run the stage over several kinds and splits with one responder and one budget; the
    combined summary is appended to the run log (logs/respond/<key>.jsonl, `origin`).

    `resume` (the build's pipeline.resume.Resume): a split whose samples, failures,
    responder settings, detail count and code are those of a finished earlier pass
    (nothing left to do) and whose responses file is intact is not read again; its
    summary is that of a pass that found everything done.

    `wait`: see `respond_split` (batch mode only). Only the samples of the manifest's
    `detail_counts` are asked (pipeline/detail.py). A local responder (template, replay)
    runs over `pool` when one is given; a paid one first announces the calls, tokens and
    USD expected (`announce`, default: the log).

    Returns:
        {"splits": [summary per split], "totals": summed counts, "budget_reached": bool},
        plus "batch" in batch mode (batch ids submitted, open, answers collected, cost).
    """
    from pipeline.respond.estimate import announce_estimate, selection

    config, responder = _resolve(manifest, config, responder)
    kinds = list(kinds) if kinds is not None else manifest.kinds()
    splits = list(splits) if splits is not None else manifest.splits()
    targets = [(k, s, None) for k in kinds for s in splits
               if store.samples_path(k, s).exists()]
    stamped: dict[tuple[str, str], dict[str, Any]] = {}
    keys: dict[tuple[str, str], str] = {}
    if resume is not None:
        for k, s, _ in targets:
            keys[(k, s)] = _stamp_key(resume, manifest, store, responder, config, k, s)
            done = resume.current(_stamp_name(responder, k, s), keys[(k, s)])
            if done is not None:
                stamped[(k, s)] = _as_found_done(done)
        targets = [t for t in targets if (t[0], t[1]) not in stamped]
    subsets = selection(manifest, store, [(k, s) for k, s, _ in targets])
    if responder.paid:
        announce_estimate(store, responder, config, subsets, targets,
                          announce=announce or log.warning)
    extra: dict[str, Any] = {}
    results = _run_sync(_arun(store, responder, config, targets, retry_failed=retry_failed,
                              progress=progress, budget=None, origin=origin, wait=wait,
                              extra=extra, pool=None if responder.paid else pool,
                              subsets=subsets))
    by_pair = {(r.summary["kind"], r.summary["split"]): r.summary for r in results}
    if resume is not None:
        for (k, s), summary in by_pair.items():
            if (summary["remaining"] == 0 and not summary.get("budget_reached")
                    and not summary.get("batch_pending")):
                resume.record(_stamp_name(responder, k, s), keys[(k, s)],
                              [store.root / summary["responses_path"]], summary)
    ordered = [stamped.get((k, s)) or by_pair[(k, s)] for k in kinds for s in splits
               if (k, s) in stamped or (k, s) in by_pair]
    return {**_combine(ordered), **extra}


def _stamp_name(responder: Responder, kind: str, split: str) -> str:
    return f"respond:{responder.key}:{kind}/{split}"


def _stamp_key(resume: Any, manifest: Manifest, store: Store, responder: Responder,
               config: ResponderConfig, kind: str, split: str) -> str:
    from pipeline.detail import detail_limit
    from pipeline.respond.common import STAGE

    return resume.key(
        files=[store.samples_path(kind, split), store.failures_path(STAGE)],
        settings={"responder": responder.key, "config": config.model_dump(mode="json"),
                  "detail": detail_limit(manifest, kind, split), "seed": manifest.seed})


_KEEP = ("kind", "split", "responder", "model", "key", "prompt_version", "samples",
         "responses_path")


def _as_found_done(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary a pass over a finished split reports: every sample answered before
    (or left with its open failure), nothing asked, nothing paid."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if k in _KEEP:
            out[k] = v
        elif isinstance(v, bool):
            out[k] = False
        elif isinstance(v, (int, float)):
            out[k] = 0
        elif isinstance(v, dict):
            out[k] = {}
        else:
            out[k] = v
    out["already_done"] = summary.get("already_done", 0) + summary.get("accepted", 0)
    out["skipped_open_failures"] = (summary.get("skipped_open_failures", 0)
                                    + summary.get("failed", 0))
    return out


def _combine(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for s in summaries:
        for k, v in s.items():
            if isinstance(v, bool) or k in ("elapsed_s",):
                continue
            if isinstance(v, (int, float)):
                totals[k] = round(totals.get(k, 0) + v, 6)
            elif isinstance(v, dict):
                bucket = totals.setdefault(k, {})
                for kk, vv in v.items():
                    bucket[kk] = bucket.get(kk, 0) + vv
    return {"splits": summaries, "totals": totals,
            "budget_reached": any(s.get("budget_reached") for s in summaries)}


def stage_respond(ctx: Any) -> dict[str, Any]:
    """The build's respond stage (pipeline.build.STAGES): the manifest's responder over the
    build's kinds and splits, with progress per kind/split.

    Returns:
        {"<kind>/<split>": {"done", "skipped", "failed", "samples", "calls", "cached",
        "cost_usd"}, ..., "totals": the summed counts incl. "rejected" by reason and cost,
        "budget_reached": bool}
    """
    progress = ctx.progress
    started: set[str] = set()

    def report(kind: str, split: str, done: int, total: int) -> None:
        key = f"respond {kind}/{split}"
        if key not in started:
            started.add(key)
            progress.start(key, total, f"respond {kind}/{split}")
        elif done:
            progress.advance(key, 1)

    result = respond(ctx.manifest, ctx.store, kinds=ctx.kinds, splits=ctx.splits,
                     progress=report, origin="build", pool=getattr(ctx, "executor", None),
                     resume=getattr(ctx, "resume", None),
                     announce=lambda text: (progress.message(text), log.info(text)))
    out: dict[str, Any] = {}
    for s in result["splits"]:
        out[f"{s['kind']}/{s['split']}"] = {
            "done": s["accepted"], "skipped": s["already_done"] + s["skipped_open_failures"],
            "failed": s["failed"], "samples": s["samples"], "calls": s["calls"],
            "cached": s["cached"], "cost_usd": s["cost_usd"]}
    out["totals"] = {**result["totals"], "done": result["totals"].get("accepted", 0),
                     "skipped": result["totals"].get("already_done", 0)
                     + result["totals"].get("skipped_open_failures", 0)}
    if result["budget_reached"]:
        out["totals"]["budget_reached"] = True
        progress.message("respond: the budget (max_cost_usd) was reached; re-run to continue")
    return out
