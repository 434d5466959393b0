"""Responses files: prompt versions set aside (superseded/), and the final rewrite in sample
order without duplicates."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.records import ResponseRecord
from pipeline.store import Store, append_jsonl, atomic_writer

__all__ = ["finalize", "set_aside_other_versions", "superseded_path"]

log = logging.getLogger(__name__)


def superseded_path(store: Store, out_path: Path) -> Path:
    """Where answers of other prompt versions are set aside:
    responses/<key>/superseded/<kind>/<split>.jsonl (outside the <key>/<kind>/ folders that
    assemble and report read)."""
    rel = out_path.relative_to(store.root / "responses")  # <key>/<kind>/<split>.jsonl
    key, rest = rel.parts[0], rel.parts[1:]
    return store.root / "responses" / key / "superseded" / Path(*rest)


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line as stored) of every line of a file (none when it is missing)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        offset = 0
        for raw in f:
            yield offset, raw
            offset += len(raw)


def _lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a JSON Lines file, each ending with a newline."""
    for _, raw in _raw_lines(path):
        if raw.strip():
            yield raw if raw.endswith(b"\n") else raw + b"\n"


def set_aside_other_versions(store: Store, out_path: Path,
                              version: str) -> tuple[set[str], int]:
    """Move the records of a prompt version other than `version` out of the responses file
    (appended to `superseded_path`, then the file rewritten atomically), so one responses
    file never mixes prompt versions and those samples count as not answered yet. Returns
    the ids of the records kept and how many were moved. Streamed: a line at a time is
    parsed, only ids are held. Call under the file's lock."""
    kept: set[str] = set()
    moved = 0
    for line in _lines(out_path):
        row = json.loads(line)
        if row.get("prompt_version") == version:
            kept.add(row["sample_id"])
        else:
            moved += 1
    if not moved:
        return kept, 0
    log.info("respond: %d answer(s) of another prompt version set aside from %s (now %s)",
             moved, out_path, version)
    append_jsonl(superseded_path(store, out_path),
                 (ResponseRecord.model_validate_json(line) for line in _lines(out_path)
                  if json.loads(line).get("prompt_version") != version))
    with atomic_writer(out_path) as f:
        for line in _lines(out_path):
            if json.loads(line).get("prompt_version") == version:
                f.write(line)
    return kept, moved


def finalize(out_path: Path, order: Iterable[str]) -> None:
    """Rewrite the responses file in sample order (`order`: the split's sample ids)
    without duplicates (the first record of an id is kept), atomically; a file already in
    order is not touched. Streamed: the ranks and byte offsets of the lines are held, not
    the records; the lines are copied as they are (they were written by `append_jsonl`)."""
    rank = {sid: i for i, sid in enumerate(order)}
    first: dict[str, tuple[int, int, int]] = {}  # id -> (rank, offset, length)
    in_order, last = True, -1
    for offset, raw in _raw_lines(out_path):
        if not raw.strip():
            in_order = False
            continue
        sid = json.loads(raw)["sample_id"]
        r = rank.get(sid, len(rank))
        if sid in first or r < last or not raw.endswith(b"\n"):
            in_order = False
        if sid not in first:
            first[sid] = (r, offset, len(raw))
        last = max(last, r)
    if in_order:
        return
    with open(out_path, "rb") as src, atomic_writer(out_path) as dst:
        for _, off, length in sorted(first.values()):
            src.seek(off)
            line = src.read(length)
            dst.write(line if line.endswith(b"\n") else line + b"\n")
