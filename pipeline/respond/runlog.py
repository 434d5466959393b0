"""The run log: the respond runs of one responder key in `logs/respond/<key>.jsonl`.

A run writes a `started` line when it begins and its summary (status `finished`, or
`interrupted` when an error or Ctrl-C ends it) when it ends. A run killed outright
(kill -9, power loss) leaves only its `started` line; the next run of that key repairs
it from the response cache, where every paid reply is stored (with its run id and cost)
the moment it arrives: status `killed`, with the calls, tokens and cost it paid for (a
call in flight at the kill, paid but never answered, cannot be counted). History only:
logs/ is no part of the dataset's outputs."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.respond.locks import file_lock, repair
from pipeline.responders import Responder
from pipeline.store import Store, append_jsonl, read_jsonl

__all__ = ["RUN_LOG", "log_run", "log_start", "paid_in_cache", "read_run_log",
           "repair_run_log", "run_log_path", "safe_url"]


RUN_LOG = "respond"  # logs/respond/<key>.jsonl


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """The runs of one run log, oldest first, one entry per run (its `started` line merged
    with its summary line; a torn last line of a killed run is skipped)."""
    runs: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(read_jsonl(Path(path))):
        if isinstance(row, dict):
            key = str(row.get("run_id") or f"line-{i}")
            runs[key] = {**runs.get(key, {}), **row}
    return list(runs.values())


def _header(responder: Responder, config: ResponderConfig, origin: str,
            run_id: str) -> dict[str, Any]:
    return {"run_id": run_id,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "origin": origin, "key": responder.key, "responder": responder.name,
            "model": responder.model, "prompt_version": config.prompt_version,
            "base_url": safe_url(config.base_url)}


def _append(path: Path, row: dict[str, Any]) -> None:
    with file_lock(path):
        repair(path)
        append_jsonl(path, [row])


def paid_in_cache(cache_dir: Path, run_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Calls, tokens and cost that runs paid for, counted from their cache entries."""
    out = {rid: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
           for rid in run_ids}
    if not run_ids or not cache_dir.is_dir():
        return out
    for entry in cache_dir.glob("*/*.json"):
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        t = out.get(str(data.get("run_id")))
        if t is None:
            continue
        usage = data.get("usage") or {}
        t["calls"] += 1
        t["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        t["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        t["cost_usd"] = round(t["cost_usd"] + float(data.get("cost_usd") or 0.0), 6)
    return out


def repair_run_log(store: Store, key: str) -> int:
    """Close the runs of logs/respond/<key>.jsonl that were killed before they logged
    (a `started` line only): one `killed` line each, totals from the cache. Returns how
    many were repaired."""
    path = run_log_path(store, key)
    open_runs = {str(r["run_id"]) for r in read_run_log(path)
                 if r.get("status") == "started" and r.get("run_id")}
    if not open_runs:
        return 0
    paid = paid_in_cache(store.cache_dir, open_runs)
    for rid in sorted(open_runs):
        _append(path, {"run_id": rid, "status": "killed", "repaired_from": "cache",
                       "totals": paid[rid]})
    return len(open_runs)


def log_start(store: Store, responder: Responder, config: ResponderConfig, *,
              origin: str, run_id: str) -> None:
    """Repair the key's killed runs, then append this run's `started` line."""
    repair_run_log(store, responder.key)
    _append(run_log_path(store, responder.key),
            {**_header(responder, config, origin, run_id), "status": "started", "totals": {}})


def run_log_path(store: Store, key: str) -> Path:
    """logs/respond/<key>.jsonl: one JSON line per respond run of that responder key.

    Under logs/ (Store.logs_dir): a history, left out of the lock and of the
    byte-identity of builds, since a resumed build has more runs than an uninterrupted one.
    """
    return store.logs_dir / RUN_LOG / f"{key}.jsonl"


def safe_url(url: str | None) -> str | None:
    """A base_url without user:password@ (never written or logged)."""
    return re.sub(r"//[^/@]*@", "//", url) if url else url


def log_run(store: Store, responder: Responder, config: ResponderConfig,
            result: dict[str, Any], *, origin: str, run_id: str | None = None,
            status: str = "finished") -> None:
    """Append one run's summary to `run_log_path` (append-only; one flushed line under the
    file's lock, after dropping a torn line a killed run left), so rejections, calls,
    tokens and cost of every run survive later runs (pipeline.report totals them).

    Line: {"run_id", "time", "origin" ("build", "respond", "retry-failures", ...), "key",
    "responder", "model", "prompt_version", "base_url", "splits", "totals",
    "budget_reached", "status"}."""
    row = {**_header(responder, config, origin, run_id or uuid.uuid4().hex),
           "status": status, **result}
    _append(run_log_path(store, responder.key), row)

