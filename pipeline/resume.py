"""Resume bookkeeping: a re-run does only what is missing or what an input changed.

Two small files under ``logs/resume/`` (bookkeeping, not outputs: the lock and every
reproducibility check leave logs/ out; deleting the folder costs one re-hash and one
rebuild of the stages below, with the same bytes)::

    logs/resume/hashes.json   {path: [size, mtime_ns, sha256]} of dataset files: a file
                              whose size and mtime are unchanged is not read again
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
from collections.abc import Iterable
from concurrent.futures import Executor
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.seeds import stable_hash
from pipeline.store import Store, atomic_write_bytes

__all__ = ["HashLedger", "Resume", "code_hash", "sha256_file"]

_HASH_BATCH = 64  # files per task when new files are hashed over the worker pool


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
    """sha256 of dataset files, re-read only when a file's size or mtime changed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.logs_dir / "resume" / "hashes.json"
        self._rows: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            self._rows = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._rows = {}

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.store.root).as_posix()

    def _stat(self, path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def sha(self, path: Path) -> str | None:
        """sha256 of `path` (None: missing)."""
        st = self._stat(path)
        if st is None:
            return None
        rel = self._rel(path)
        row = self._rows.get(rel)
        if row is not None and row[0] == st[0] and row[1] == st[1]:
            return str(row[2])
        sha = sha256_file(path)
        self._rows[rel] = [st[0], st[1], sha]
        self._dirty = True
        return sha

    def sha_many(self, paths: Iterable[Path], executor: Executor | None = None
                 ) -> dict[str, str]:
        """{relative path: sha256}; files not yet known are hashed over `executor`."""
        out: dict[str, str] = {}
        todo: list[tuple[Path, str, tuple[int, int]]] = []
        for path in paths:
            st = self._stat(path)
            if st is None:
                continue
            rel = self._rel(path)
            row = self._rows.get(rel)
            if row is not None and row[0] == st[0] and row[1] == st[1]:
                out[rel] = str(row[2])
            else:
                todo.append((path, rel, st))
        if todo:
            names = [str(p) for p, _, _ in todo]
            if executor is not None and len(todo) > _HASH_BATCH:
                batches = [names[i:i + _HASH_BATCH] for i in range(0, len(names), _HASH_BATCH)]
                shas = [s for batch in executor.map(_sha_batch, batches) for s in batch]
            else:
                shas = _sha_batch(names)
            for (_, rel, st), sha in zip(todo, shas):
                self._rows[rel] = [st[0], st[1], sha]
                out[rel] = sha
            self._dirty = True
        return out

    def forget_missing(self, present: set[str]) -> None:
        gone = [rel for rel in self._rows if rel not in present]
        for rel in gone:
            del self._rows[rel]
        self._dirty = self._dirty or bool(gone)

    def save(self) -> None:
        if self._dirty:
            data = json.dumps(dict(sorted(self._rows.items())), separators=(",", ":"))
            atomic_write_bytes(self.path, (data + "\n").encode())
            self._dirty = False


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


def files_under(root: Path, *folders: str) -> list[Path]:
    """Every non-hidden file under the given folders of `root` (sorted)."""
    out: list[Path] = []
    for folder in folders:
        base = root / folder
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(out)

