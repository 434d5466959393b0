"""Shared bits of the respond stage: the stage name, the progress callback type, and the
scrubbing of API keys out of messages written to failure records."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

__all__ = ["STAGE", "ProgressFn"]

STAGE = "respond"
ProgressFn = Callable[[str, str, int, int], None]  # (kind, split, done, total)
_SK = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")


def _scrub(text: str) -> str:
    """Remove the API key (and anything key-shaped) from a message we are about to write."""
    key = os.environ.get("OPENAI_API_KEY", "")
    if key:
        text = text.replace(key, "***")
    return _SK.sub("sk-***", text)

