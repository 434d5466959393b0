"""Text on images: the font of the pictures the pipeline draws (the report's contact sheet,
the LLaVA panel legends, `dqgen distort-grid`). The training side (pipeline/train/, torch,
numpy and Pillow only) loads Pillow's default font itself."""

from __future__ import annotations

import functools
from typing import Any

from PIL import ImageFont


@functools.lru_cache(maxsize=64)
def font(size: int) -> Any:
    """Pillow's default font (Aileron, scalable) at `size` px; the fixed bitmap font of a
    Pillow built without FreeType, or older than 10.1."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # pragma: no cover - no FreeType / old Pillow
        return ImageFont.load_default()
