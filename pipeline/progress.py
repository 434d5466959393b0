"""Progress reporting for long stages: a tiny interface, a silent default and a rich one.

Stages report through `BuildProgress`: `start(key, total, description)` opens a bar (one per
kind/split, counted in chunks), `advance(key, n)` moves it, `message(text)` prints a line.
Library code gets `NullProgress` unless the caller (the CLI) passes `RichProgress`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["BuildProgress", "NullProgress", "RichProgress"]


class BuildProgress(Protocol):
    """What stages call to report progress."""

    def start(self, key: str, total: int, description: str) -> None: ...

    def advance(self, key: str, n: int = 1) -> None: ...

    def message(self, text: str) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, key: str, total: int, description: str) -> None:
        return None

    def advance(self, key: str, n: int = 1) -> None:
        return None

    def message(self, text: str) -> None:
        return None


class RichProgress:
    """Rich progress bars on a console (stderr by default); use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def start(self, key: str, total: int, description: str) -> None:
        if key in self._tasks:
            self._progress.reset(self._tasks[key], total=total, description=description)
        else:
            self._tasks[key] = self._progress.add_task(description, total=total)

    def advance(self, key: str, n: int = 1) -> None:
        if key in self._tasks:
            self._progress.advance(self._tasks[key], n)

    def message(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)
