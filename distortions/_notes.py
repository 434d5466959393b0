"""Notes a distortion leaves when it degrades gracefully (e.g. Otsu on a flat channel).

Distortions stay pure functions returning an image; a degraded case calls `note(...)`, and
`distortions.apply_with_notes` collects the notes of one call so the pipeline can write
them into the sample's metadata.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collect_notes", "note"]

_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("dqgen_notes", default=None)


def note(message: str) -> None:
    """Record that the current distortion degraded (no-op outside `collect_notes`)."""
    notes = _NOTES.get()
    if notes is not None and message not in notes:
        notes.append(message)


@contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Collect the notes of the distortions called inside the block."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)
