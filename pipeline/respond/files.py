"""Responses files: prompt versions set aside (superseded/), and the final rewrite in sample
order without duplicates."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.records import ResponseRecord
from pipeline.store import Store, append_jsonl, atomic_write_jsonl, read_jsonl

__all__ = ["finalize", "set_aside_other_versions", "superseded_path"]

log = logging.getLogger(__name__)


def superseded_path(store: Store, out_path: Path) -> Path:
    """Where answers of other prompt versions are set aside:
    responses/<key>/superseded/<kind>/<split>.jsonl (outside the <key>/<kind>/ folders that
    assemble and report read)."""
    rel = out_path.relative_to(store.root / "responses")  # <key>/<kind>/<split>.jsonl
    key, rest = rel.parts[0], rel.parts[1:]
    return store.root / "responses" / key / "superseded" / Path(*rest)


def set_aside_other_versions(store: Store, out_path: Path,
                              version: str) -> tuple[list[dict[str, Any]], int]:
    """Move the records of a prompt version other than `version` out of the responses file
    (appended to `superseded_path`, then the file rewritten atomically), so one responses
    file never mixes prompt versions and those samples count as not answered yet. Returns
    the rows kept (plain dicts) and how many were moved. Call under the file's lock."""
    rows = list(read_jsonl(out_path))  # plain dicts: cheap when nothing is to move
    kept = [r for r in rows if r.get("prompt_version") == version]
    if len(kept) == len(rows):
        return rows, 0
    other = [ResponseRecord.model_validate(r) for r in rows
             if r.get("prompt_version") != version]
    log.info("respond: %d answer(s) of another prompt version set aside from %s (now %s)",
             len(other), out_path, version)
    append_jsonl(superseded_path(store, out_path), other)
    atomic_write_jsonl(out_path, [ResponseRecord.model_validate(r) for r in kept])
    return kept, len(other)


def finalize(out_path: Path, order: list[str]) -> None:
    """Rewrite the responses file in sample order without duplicates (atomic)."""
    rows = list(read_jsonl(out_path, ResponseRecord))
    seen: dict[str, ResponseRecord] = {}
    for row in rows:
        seen.setdefault(row.sample_id, row)
    rank = {sid: i for i, sid in enumerate(order)}
    ordered = sorted(seen.values(), key=lambda r: rank.get(r.sample_id, len(rank)))
    if ordered != rows:
        atomic_write_jsonl(out_path, ordered)

