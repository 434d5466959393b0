"""Pixelation: box (area) downscale by a factor, then nearest-neighbour upscale back."""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions.registry import params_for, register

__all__ = ["PixelateParams", "pixelate"]


class PixelateParams(NamedTuple):
    """Downscale factor of both sides (0.25 -> blocks of about 4 x 4 pixels)."""

    factor: float


# Parameters per severity 1..5, from the DQ-495K catalogue (spec table).
_PIXELATE: Final = tuple(PixelateParams(f) for f in (0.5, 0.4, 0.3, 0.25, 0.2))


def _small_side(side: int, factor: float) -> int:
    """int(side * factor) as the original (Pillow resize to int(w * scale)), at least 1.

    The tiny epsilon keeps products such as 100 * 0.29 = 28.999999999999996 from losing a
    pixel to floating point.
    """
    return max(1, math.floor(side * factor + 1e-9))


def _pixelate(image: np.ndarray, *, factor: float) -> np.ndarray:
    """Area-average down to (int(h * factor), int(w * factor)), nearest back to h x w.

    INTER_AREA is the box (area-weighted mean) filter, as Pillow's BOX the original used;
    INTER_NEAREST_EXACT samples the source pixel under each output pixel's centre, as
    Pillow's NEAREST, so the blocks are centred and differ in size by at most one pixel.
    """
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (_small_side(w, factor), _small_side(h, factor)), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


@register("pixelate", category="pixelate", table=_PIXELATE)
def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pixelate: each block of about 1 / factor pixels becomes its mean colour.

    Severity: the factor falls from 0.5 to 0.2 (blocks from 2 to 5 pixels wide). `rng` is
    unused (deterministic).

    References: DQ-495K pixelate; KADID-10k (pixelate); imagecorruptions pixelate.
    """
    return _pixelate(image, factor=params_for(_PIXELATE, severity).factor)
