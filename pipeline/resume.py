"""Resume bookkeeping: a re-run does only what is missing or what an input changed.

Two files under ``logs/resume/`` (bookkeeping, not outputs: the lock and every
reproducibility check leave logs/ out; deleting the folder costs one re-hash and one
rebuild of the stages below, with the same bytes)::

    logs/resume/hashes.sqlite path -> size, mtime_ns, sha256 of dataset files (SQLite, one
                              row per file, none held in memory): a file whose size and
                              mtime are unchanged is not read again
    logs/resume/stamps.json   {stage output: {"key", "outputs", "summary"}}: the hash of the
                              inputs an output was built from, the sha256 of the files it
                              wrote, and the stage's summary of that run

A stage step (the plan of one split, the synthesis of one split, the task files, the
report) is skipped when its inputs' key equals the recorded one and every file it wrote
still has the recorded sha256 (checked by size and mtime, see `HashLedger`). The key
covers the inputs' bytes (sha256 through the ledger), the manifest settings the step
reads, and `code_hash()` (the pipeline's own sources and prompts), so editing the code or
the manifest redoes the step. Files are compared by content when written
(`pipeline.store.atomic_writer`): an unchanged file keeps its mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.seeds import stable_hash
from pipeline.store import Store, atomic_write_bytes

__all__ = ["HashLedger", "Resume", "code_hash", "sha256_file"]

_HASH_BATCH = 64  # files per task when new files are hashed over the worker pool
_WALK_BATCH = 4096  # files stat-ed, looked up and hashed at a time by HashLedger.walk
_FILES_TABLE = ("CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY, size INTEGER, "
                "mtime INTEGER, sha TEXT) WITHOUT ROWID")


def _current(row: tuple[int, int, str] | None, st: tuple[int, int]) -> str | None:
    """The recorded sha256 when the file's (size, mtime) still match its ledger row."""
    return str(row[2]) if row is not None and (row[0], row[1]) == st else None


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha_batch(paths: list[str]) -> list[str]:
    return [sha256_file(p) for p in paths]


@lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 over the sources of the packages whose code shapes the outputs (pipeline,
    distortions, prompts, data_manifest): any edit invalidates the stamps."""
    import distortions
    import pipeline
    import prompts

    h = hashlib.sha256()
    for pkg in (pipeline, distortions, prompts):
        root = Path(pkg.__file__).resolve().parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".yaml", ".yml", ".json", ".txt") and path.is_file() \
                    and "__pycache__" not in path.parts:
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
    return h.hexdigest()


class HashLedger:
    """sha256 of dataset files, re-read only when a file's size or mtime changed.

    The rows live in SQLite (`logs/resume/hashes.sqlite`, one row per file), not in
    memory: a build of half a million files holds none of them. Writes are committed by
    `save()` (a killed run loses only the rows since the last save: a re-hash).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.logs_dir / "resume" / "hashes.sqlite"
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            try:
                db.execute(_FILES_TABLE)
            except sqlite3.DatabaseError:  # not a database (a torn or foreign file): anew
                db.close()
                self.path.unlink(missing_ok=True)
                db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                db.execute(_FILES_TABLE)
            self._db = db
            self._import_json()
        return self._db

    def _import_json(self) -> None:
        # the ledger of dqgen <= 0.1 (logs/resume/hashes.json): read once, then removed
        old = self.path.with_name("hashes.json")
        if not old.is_file():
            return
        try:
            rows = json.loads(old.read_text(encoding="utf-8"))
            self._put_many((rel, int(r[0]), int(r[1]), str(r[2])) for rel, r in rows.items())
        except (OSError, ValueError, TypeError, IndexError):
            pass
        self.save()
        old.unlink(missing_ok=True)

    def _put_many(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        with self._lock:
            self._conn().executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)

    def _rows_of(self, rels: list[str]) -> dict[str, tuple[int, int, str]]:
        out: dict[str, tuple[int, int, str]] = {}
        with self._lock:
            db = self._conn()
            for i in range(0, len(rels), 500):
                part = rels[i:i + 500]
                marks = ",".join("?" * len(part))
                for rel, size, mtime, sha in db.execute(
                        f"SELECT rel, size, mtime, sha FROM files WHERE rel IN ({marks})", part):
                    out[rel] = (size, mtime, sha)
        return out

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.store.root).as_posix()

    @staticmethod
    def _stat(path: Path | str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def sha(self, path: Path) -> str | None:
        """sha256 of `path` (None: missing)."""
        st = self._stat(path)
        if st is None:
            return None
        rel = self._rel(path)
        known = _current(self._rows_of([rel]).get(rel), st)
        if known is not None:
            return known
        sha = sha256_file(path)
        self._put_many([(rel, st[0], st[1], sha)])
        return sha

    def walk(self, rels: Iterable[str], executor: Executor | None = None
             ) -> Iterator[tuple[str, str]]:
        """(relative path, sha256) for each of `rels` that exists, in their order; files
        not yet known are hashed over `executor`. Streams: a batch of paths at a time is
        held, and the rows of files not in `rels` are deleted at the end (`rels` must be
        every file of the dataset the ledger should keep)."""
        db = self._conn()
        with self._lock:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (rel TEXT PRIMARY KEY) "
                       "WITHOUT ROWID")
            db.execute("DELETE FROM seen")
        batch: list[str] = []

        def flush() -> Iterator[tuple[str, str]]:
            stats = [(rel, self._stat(self.store.root / rel)) for rel in batch]
            present = [(rel, st) for rel, st in stats if st is not None]
            with self._lock:
                db.executemany("INSERT OR IGNORE INTO seen VALUES (?)",
                               ((rel,) for rel, _ in present))
            rows = self._rows_of([rel for rel, _ in present])
            shas = {rel: _current(rows.get(rel), st) for rel, st in present}
            todo = [(rel, st) for rel, st in present if shas[rel] is None]
            names = [str(self.store.root / rel) for rel, _ in todo]
            if executor is not None and len(names) > _HASH_BATCH:
                parts = [names[i:i + _HASH_BATCH] for i in range(0, len(names), _HASH_BATCH)]
                new = [s for part in executor.map(_sha_batch, parts) for s in part]
            else:
                new = _sha_batch(names)
            self._put_many((rel, st[0], st[1], sha) for (rel, st), sha in zip(todo, new))
            for (rel, _), sha in zip(todo, new):
                shas[rel] = sha
            batch.clear()
            return ((rel, str(shas[rel])) for rel, _ in present)

        for rel in rels:
            batch.append(rel)
            if len(batch) >= _WALK_BATCH:
                yield from flush()
        if batch:
            yield from flush()
        with self._lock:
            db.execute("DELETE FROM files WHERE rel NOT IN (SELECT rel FROM seen)")
            db.execute("DELETE FROM seen")

    def save(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self.save()
            self._db.close()
            self._db = None


class Resume:
    """The ledger and the stamps of one dataset folder (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ledger = HashLedger(store)
        self.path = store.logs_dir / "resume" / "stamps.json"
        try:
            self._stamps: dict[str, dict[str, Any]] = json.loads(
                self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._stamps = {}
        self._dirty = False

    def key(self, *, files: Iterable[Path] = (), settings: Any = None) -> str:
        """Hash of the inputs: the files' sha256 (missing: "-"), the settings (JSON), and
        the code."""
        parts: list[str] = [code_hash(), json.dumps(settings, sort_keys=True, default=str)]
        for path in files:
            rel = path.relative_to(self.store.root).as_posix()
            parts.append(f"{rel}={self.ledger.sha(path) or '-'}")
        return stable_hash(*parts)

    def current(self, name: str, key: str) -> dict[str, Any] | None:
        """The recorded summary of `name` when its key is `key` and its outputs are intact;
        else None (the step must run)."""
        stamp = self._stamps.get(name)
        if not stamp or stamp.get("key") != key:
            return None
        for rel, sha in stamp.get("outputs", {}).items():
            if self.ledger.sha(self.store.root / rel) != sha:
                return None
        return stamp.get("summary", {})

    def record(self, name: str, key: str, outputs: Iterable[Path], summary: Any) -> None:
        rows = {}
        for path in outputs:
            if path.is_file():
                sha = self.ledger.sha(path)
                if sha is not None:
                    rows[path.relative_to(self.store.root).as_posix()] = sha
        stamp = json.loads(json.dumps(
            {"key": key, "outputs": dict(sorted(rows.items())), "summary": summary}, default=str))
        if self._stamps.get(name) != stamp:
            self._stamps[name] = stamp
            self._dirty = True
        # the stamps at once (small); the hash ledger (a row per output file) is written by
        # save() at the end of the run: rows lost in a crash only cost a re-hash
        self._save_stamps()

    def drop(self, name: str) -> None:
        if self._stamps.pop(name, None) is not None:
            self._dirty = True

    def _save_stamps(self) -> None:
        if self._dirty:
            data = json.dumps(dict(sorted(self._stamps.items())), indent=1)
            atomic_write_bytes(self.path, (data + "\n").encode())
            self._dirty = False

    def save(self) -> None:
        self._save_stamps()
        self.ledger.save()

    def close(self) -> None:
        self._save_stamps()
        self.ledger.close()


def files_under(root: Path, *folders: str) -> list[Path]:
    """Every non-hidden file under the given folders of `root` (sorted)."""
    out: list[Path] = []
    for folder in folders:
        base = root / folder
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(out)

