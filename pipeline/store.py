"""The dataset folder: its layout, atomic writes, and JSON Lines logs.

Layout (all paths relative to the dataset root)::

    manifest.lock.json                 resolved manifest, package versions, sha256 of outputs
    references.jsonl                   ReferenceRecord per ingested reference
    references/<ref_id>.png            resized references
    references.chunks/<chunk>.json     per-chunk ingest results (merged into references.jsonl)
    plans/<kind>/<split>.jsonl         SamplePlan per sample (written before any pixel work)
    images/<kind>/<split>/<sample_id>_{A,B}.png
    samples/<kind>/<split>.jsonl       SampleRecord per sample (plan order)
    samples/<kind>/<split>.chunks/     per-chunk synthesis results (merged into the above)
    responses/<responder>/<kind>/<split>.jsonl   accepted answers (ResponseRecord)
    cache/responses/<hh>/<hash>.json   request-hash cache of paid calls
    tasks/<task>/<split>.json          DepictQA task files
    exports/<format>/...               other export formats
    failures/<stage>.jsonl             FailureRecord per failed item
    report/                            dataset card and figures

Writes of whole files are atomic (temp file in the same folder + os.replace); logs are
append-only JSON Lines flushed line by line, and readers skip a torn last line.

File modes: an atomically written file gets the mode an ordinary ``open(path, "w")`` would
give it, ``0o666 & ~umask`` (``tempfile.mkstemp`` alone would leave every output 0600).
The umask is read once, at import: from ``/proc/self/status`` where the OS has it (no side
effect), else by the ``os.umask`` set-and-restore pair, which is only safe while the process
has one thread, as it does when this module is first imported. A umask changed later in the
process is not seen by these helpers.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from pipeline.records import FailureRecord

__all__ = ["ENVIRONMENT_ERRNOS", "FILE_MODE", "LOGS_DIR", "Store", "append_jsonl",
           "atomic_write_bytes", "atomic_write_json", "atomic_write_jsonl",
           "is_environment_error", "read_jsonl"]

M = TypeVar("M", bound=BaseModel)


LOGS_DIR = "logs"  # run history, not an output (see Store.logs_dir)


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # fallback: only safe single-threaded (module import time)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
"""Mode of every file written by the atomic helpers (what a plain open() would create)."""


# A full disk, a quota, a folder without write permission, a read-only file system: the
# environment's fault, never a sample's. Stages let these end the run (the CLI prints one
# line; atomic writes keep every finished file) instead of recording item failures that a
# resume would then skip.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                errno.EROFS})


def is_environment_error(err: BaseException) -> bool:
    """True for an OSError of `ENVIRONMENT_ERRNOS` (disk full, permission denied, ...)."""
    return isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (never a half-written file at `path`).

    The file gets `FILE_MODE` (0o666 & ~umask), not mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)
            else:  # pragma: no cover - Windows: only the read-only bit exists
                os.chmod(tmp, FILE_MODE)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json()
    return json.dumps(obj, ensure_ascii=False, sort_keys=False)


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    atomic_write_bytes(path, (text + "\n").encode())


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    """Write all rows as one JSON Lines file atomically; return the row count."""
    lines = [_dump(r) for r in rows]
    atomic_write_bytes(path, ("".join(line + "\n" for line in lines)).encode())
    return len(lines)


def append_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Append rows to a JSON Lines log (one flushed write per call)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(_dump(r) + "\n" for r in rows)
    if not data:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path, model: type[M] | None = None) -> Iterator[Any]:
    """Rows of a JSON Lines file (missing file: nothing). A torn last line is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:  # torn final write of a killed run
                continue
            # the file and its line, not only the column inside the line
            raise json.JSONDecodeError(f"{path}: line {i + 1}: {err.msg}", err.doc,
                                       err.pos) from None
        yield model.model_validate(obj) if model is not None else obj


class Store:
    """Paths and I/O of one dataset folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # layout -------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.root / "manifest.lock.json"

    @property
    def references_index(self) -> Path:
        return self.root / "references.jsonl"

    def reference_image(self, ref_id: str) -> Path:
        return self.root / "references" / f"{ref_id}.png"

    def plan_path(self, kind: str, split: str) -> Path:
        return self.root / "plans" / kind / f"{split}.jsonl"

    def image_dir(self, kind: str, split: str) -> Path:
        return self.root / "images" / kind / split

    def samples_path(self, kind: str, split: str) -> Path:
        return self.root / "samples" / kind / f"{split}.jsonl"

    def responses_path(self, responder: str, kind: str, split: str) -> Path:
        return self.root / "responses" / responder / kind / f"{split}.jsonl"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache" / "responses"

    def task_path(self, task: str, split: str) -> Path:
        return self.root / "tasks" / task / f"{split}.json"

    def failures_path(self, stage: str) -> Path:
        return self.root / "failures" / f"{stage}.jsonl"

    @property
    def logs_dir(self) -> Path:
        """logs/: the history of runs (append-only). Not a dataset output: it differs between
        a build and the same build resumed, so the lock and reproducibility leave it out."""
        return self.root / LOGS_DIR

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def rel(self, path: Path) -> str:
        """POSIX path relative to the dataset root (what records store)."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def abs(self, rel_path: str) -> Path:
        return self.root / rel_path

    # failures -----------------------------------------------------------------------
    def record_failure(self, failure: FailureRecord) -> None:
        if failure.time is None:
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            failure = failure.model_copy(update={"time": now})
        append_jsonl(self.failures_path(failure.stage), [failure])

    def failures(self, stage: str) -> list[FailureRecord]:
        return list(read_jsonl(self.failures_path(stage), FailureRecord))
