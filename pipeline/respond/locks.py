"""File locks and torn-line repair for the append-only files of the stage (responses files,
run logs), so several threads or processes never lose each other's lines."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.store import atomic_writer

__all__ = ["file_lock", "repair"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on a responses file (a `.lock` file beside it), so chunks of one split
    run by several threads or processes (e.g. Prefect tasks) never lose each other's lines.
    Without fcntl (Windows) it is a no-op: run one split per process there."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def repair(path: Path) -> None:
    """Drop the torn last line a killed run may have left, so appends start on a new line
    (responses files and run logs alike; read_jsonl already skips a torn last line). The
    complete lines are kept byte for byte (copied, not re-serialised)."""
    if not path.exists() or not path.stat().st_size:
        return
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        cut, pos = 0, end
        while pos > 0:  # the last newline, read backwards a block at a time
            start = max(0, pos - (1 << 16))
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        f.seek(0)
        with atomic_writer(path) as out:
            left = cut
            while left:
                block = f.read(min(left, 1 << 20))
                out.write(block)
                left -= len(block)

