"""The dataset folder: its layout, atomic writes, and JSON Lines logs.

Layout (all paths relative to the dataset root)::

    manifest.lock.json                 resolved manifest, package versions, sha256 of outputs
    references.jsonl                   ReferenceRecord per ingested reference
    references/<ref_id>.png            resized references
    references.chunks/<chunk>.json     per-chunk ingest results (merged into references.jsonl)
    plans/<kind>/<split>.jsonl         SamplePlan per sample (written before any pixel work)
    images/<kind>/<split>/<shard>/<sample_id>_{A,B}.png   shard: 2 hex of sha256(sample id)
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
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydantic import BaseModel

from pipeline.records import FailureRecord

__all__ = ["ENVIRONMENT_ERRNOS", "FILE_MODE", "LOGS_DIR", "JsonListWriter", "LayoutError", "Store",
           "append_jsonl", "atomic_json_list", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_jsonl", "atomic_writer", "dump_json_list", "image_shard",
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


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


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

    The file gets `FILE_MODE` (0o666 & ~umask), not mkstemp's private 0600. A file that
    already holds exactly these bytes is left alone (not rewritten: its mtime stays, so a
    no-op re-run writes nothing).
    """
    if _same_bytes(path, data):
        return
    with atomic_writer(path, keep_unchanged=False) as f:
        f.write(data)


@contextmanager
def atomic_writer(path: Path, *, keep_unchanged: bool = True) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces `path` atomically when the block ends
    without an error (streamed to a temp file in the same folder: nothing is held in
    memory). With `keep_unchanged`, a file that already holds the same bytes is kept as it
    is (its mtime stays). The file gets `FILE_MODE`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)
            else:  # pragma: no cover - Windows: only the read-only bit exists
                os.chmod(tmp, FILE_MODE)
            yield f
        if keep_unchanged and _same_file(Path(tmp), path):
            Path(tmp).unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JsonListWriter:
    """Writes a JSON list one element at a time, in the task files' layout: ``[``, one
    element per line joined by ``,``, ``]`` (``[]`` when empty), then a newline. The bytes
    equal those of the whole list dumped at once (`dump_json_list`)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.count = 0

    def add(self, obj: Any) -> None:
        line = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._f.write((b"[\n" if self.count == 0 else b",\n") + line)
        self.count += 1

    def close(self) -> None:
        self._f.write(b"\n]\n" if self.count else b"[]\n")


@contextmanager
def atomic_json_list(path: Path) -> Iterator[JsonListWriter]:
    """`JsonListWriter` over `atomic_writer(path)`: the list is streamed to disk."""
    with atomic_writer(path) as f:
        w = JsonListWriter(f)
        yield w
        w.close()


def dump_json_list(records: Iterable[Any]) -> bytes:
    """The bytes `JsonListWriter` writes for `records`."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    return ("[\n" + body + "\n]\n" if body else "[]\n").encode("utf-8")


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
    """Write all rows as one JSON Lines file atomically, streamed (rows may be a
    generator: nothing is held); return the row count. Same bytes: the file is kept."""
    n = 0
    with atomic_writer(path) as f:
        for r in rows:
            f.write((_dump(r) + "\n").encode())
            n += 1
    return n


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
    """Rows of a JSON Lines file (missing file: nothing), read line by line. A torn last
    line (a killed run's final write) is skipped; a bad line before another raises."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        bad: json.JSONDecodeError | None = None
        bad_line = 0
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if bad is not None:
                # the file and its line, not only the column inside the line
                raise json.JSONDecodeError(f"{path}: line {bad_line}: {bad.msg}", bad.doc,
                                           bad.pos) from None
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                bad, bad_line = err, i
                continue
            yield model.model_validate(obj) if model is not None else obj


def image_shard(sample_id: str) -> str:
    """The shard folder of a sample's images: the first two hex digits of sha256(id)."""
    return hashlib.sha256(sample_id.encode()).hexdigest()[:2]


class LayoutError(ValueError):
    """A dataset folder written in a layout this version does not continue."""


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

    def image_path(self, kind: str, split: str, sample_id: str, side: str) -> Path:
        """Where image `side` ("A", "B") of a sample is written: in one of 256 shard folders
        of its kind and split, named by the first two hex digits of sha256(sample id), so
        no folder holds more than ~1/256 of a split and a sample's folder never changes."""
        return self.image_dir(kind, split) / image_shard(sample_id) / f"{sample_id}_{side}.png"

    def check_image_layout(self, kind: str, split: str) -> None:
        """Refuse a split whose images are in the flat layout of older versions
        (images/<kind>/<split>/<id>_A.png): a build over it would leave them orphaned.

        Raises:
            LayoutError: naming the folder and what to do.
        """
        folder = self.image_dir(kind, split)
        if not folder.is_dir():
            return
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.name.endswith(".png"):
                    msg = (f"{folder}: images in the old flat layout (<id>_A.png directly in "
                           f"the split's folder); this dqgen writes them in shard folders "
                           f"(docs/scale.md). Build into a new folder, or rebuild this split "
                           f"with `dqgen regenerate MANIFEST --kind {kind} --split {split}`")
                    raise LayoutError(msg)

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
