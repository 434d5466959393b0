"""Who owns a dataset folder: one process at a time writes it.

`own_folder(folder, command)` is a context manager that every command writing a dataset
folder holds for its whole run (`build`, `respond`, `retry-failures`, `assemble`,
`export`, `report`, `regenerate`, `judge`; the Prefect flows too: the flow's process holds
it). It creates `<folder>/.dqgen.lock` atomically (O_CREAT | O_EXCL) with the holder's
pid, host, command and start time, and removes it on exit.

* Another live process holds it: `FolderBusyError` at once, one line naming the holder.
* The holder is dead (its pid is gone on this host, or a zombie): the lock is stale (a
  kill -9); it is taken over with a warning, and the run resumes as usual.
* The same process already holds it (the CLI, then the flow it runs): re-entrant.

The lock file is hidden, so `manifest.lock.json` (which hashes outputs) never lists it.

`check_output_folder(manifest, folder)` refuses a dataset folder that is equal to,
inside, or contains the references root or a label source's root (a build would ingest
its own images as references), before any work.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_NAME",
    "FolderBusyError",
    "OutputFolderError",
    "check_output_folder",
    "own_folder",
    "read_owner",
]

log = logging.getLogger(__name__)

LOCK_NAME = ".dqgen.lock"

_held: dict[Path, int] = {}  # folder -> nesting depth, for this process
_held_guard = threading.Lock()


class FolderBusyError(ValueError):
    """Another live process owns the dataset folder (the message names it)."""


class OutputFolderError(ValueError):
    """The dataset folder overlaps an input folder (references or a label source)."""


def _host() -> str:
    return socket.gethostname()


def read_owner(folder: str | Path) -> dict[str, Any] | None:
    """The holder recorded in `<folder>/.dqgen.lock`, or None (no lock, or unreadable)."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, under another user
        return True
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _describe(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "another process (lock file unreadable)"
    started = owner.get("started")
    when = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
            if isinstance(started, (int, float)) else "?")
    return (f"`dqgen {owner.get('command', '?')}` (pid {owner.get('pid', '?')} on "
            f"{owner.get('host', '?')}, started {when})")


def _stale(owner: dict[str, Any] | None) -> bool:
    if owner is None:
        return False  # being written right now by its creator, or foreign: do not touch
    pid = owner.get("pid")
    return owner.get("host") == _host() and isinstance(pid, int) and (
        not _alive(pid) or (pid == os.getpid()))  # our own pid but not held: a reused pid


def _try_create(path: Path, record: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    return True


def _acquire(folder: Path, command: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    record = {"pid": os.getpid(), "host": _host(), "command": command,
              "started": round(time.time(), 3)}
    for _ in range(3):
        if _try_create(path, record):
            return
        owner = read_owner(folder)
        if owner is None:  # created but not yet written (a race of microseconds)
            time.sleep(0.05)
            owner = read_owner(folder)
        if not _stale(owner):
            msg = (f"{folder} is in use by {_describe(owner)}; wait for it to finish, or "
                   f"delete {path} if that process is gone")
            raise FolderBusyError(msg)
        log.warning("taking over %s from %s, which is no longer running (interrupted run; "
                    "resuming)", path, _describe(owner))
        # Rename before unlinking: of two processes taking over, only one renames it.
        grave = path.with_name(f"{LOCK_NAME}.{os.getpid()}.stale")
        try:
            os.rename(path, grave)
        except FileNotFoundError:
            continue
        grave.unlink(missing_ok=True)
    msg = f"{folder}: could not take {path} (it keeps changing hands)"
    raise FolderBusyError(msg)


def _release(folder: Path) -> None:
    owner = read_owner(folder)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == _host():
        (folder / LOCK_NAME).unlink(missing_ok=True)


@contextmanager
def own_folder(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold `<folder>/.dqgen.lock` for the block (creates the folder); re-entrant.

    Raises:
        FolderBusyError: another live process holds the folder.
    """
    path = Path(folder).expanduser().resolve()
    with _held_guard:
        depth = _held.get(path, 0)
        if depth == 0:
            _acquire(path, command)
        _held[path] = depth + 1
    try:
        yield path
    finally:
        with _held_guard:
            _held[path] -= 1
            if _held[path] == 0:
                del _held[path]
                _release(path)


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_output_folder(manifest: Any, folder: str | Path) -> None:
    """Refuse a dataset folder equal to, inside or containing an input root.

    Checked: the references root (when the manifest has counts to synthesise) and the
    root of every human-labelled source. Paths are compared resolved (symlinks followed).

    Raises:
        OutputFolderError: one line naming both folders.
    """
    out = Path(folder).expanduser().resolve()
    roots: list[tuple[str, Path]] = []
    if manifest.counts:
        roots.append(("references.root", manifest.references_root().resolve()))
    roots += [(f"sources[{src.dataset}].root", manifest.resolve(src.root).resolve())
              for src in manifest.sources]
    for field, root in roots:
        if _overlap(out, root):
            how = ("is" if out == root else "is inside" if out.is_relative_to(root)
                   else "contains")
            msg = (f"output folder {out} {how} {field} {root}: a build would read its own "
                   f"files as inputs; choose an output folder outside it")
            raise OutputFolderError(msg)
