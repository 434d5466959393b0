"""The run log: one JSON line per respond run in `logs/respond/<key>.jsonl`."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.respond.locks import file_lock, repair
from pipeline.responders import Responder
from pipeline.store import Store, append_jsonl, read_jsonl

__all__ = ["RUN_LOG", "log_run", "read_run_log", "run_log_path", "safe_url"]


RUN_LOG = "respond"  # logs/respond/<key>.jsonl


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """The runs of one run log, oldest first (a torn last line of a killed run is skipped)."""
    return [row for row in read_jsonl(Path(path)) if isinstance(row, dict)]


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
            result: dict[str, Any], *, origin: str, run_id: str | None = None) -> None:
    """Append one run's summary to `run_log_path` (append-only; one flushed line under the
    file's lock, after dropping a torn line a killed run left), so rejections, calls,
    tokens and cost of every run survive later runs (pipeline.report totals them).

    Line: {"run_id", "time", "origin" ("build", "respond", "retry-failures", ...), "key",
    "responder", "model", "prompt_version", "base_url", "splits", "totals",
    "budget_reached"}."""
    row = {"run_id": run_id or uuid.uuid4().hex,
           "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
           "origin": origin, "key": responder.key, "responder": responder.name,
           "model": responder.model, "prompt_version": config.prompt_version,
           "base_url": safe_url(config.base_url), **result}
    path = run_log_path(store, responder.key)
    with file_lock(path):
        repair(path)
        append_jsonl(path, [row])

