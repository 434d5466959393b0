"""Oversharpening: unsharp masking with a large amount (halos and amplified fine detail)."""

from __future__ import annotations

from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions.registry import params_for, register

__all__ = ["OversharpenParams", "oversharpen"]


class OversharpenParams(NamedTuple):
    """Unsharp-mask amount a: output = (1 + a) * image - a * blurred."""

    amount: float


# Parameters per severity 1..5, from the DQ-495K catalogue (spec table).
_OVERSHARPEN: Final = tuple(OversharpenParams(a) for a in (2.0, 2.8, 4.0, 6.0, 8.0))

# The blur of the mask, as in the original: cv2.GaussianBlur 5 x 5 with sigma = 0, "from the
# kernel size"; for 5 taps OpenCV then uses its tabulated binomial kernel [1, 4, 6, 4, 1] / 16
# (sigma ~ 1; the formula 0.3 * ((5 - 1) / 2 - 1) + 0.8 = 1.1 applies to larger kernels only).
# Borders reflect-101.
_KSIZE: Final = (5, 5)
_SIGMA_FROM_KSIZE: Final = 0.0


def _unsharp(image: np.ndarray, *, amount: float) -> np.ndarray:
    """(1 + amount) * image - amount * GaussianBlur(image), on uint8 like the original.

    The blur is computed on the uint8 image (rounded to uint8, as in the original), and
    cv2.addWeighted rounds and saturates the weighted sum to [0, 255].
    """
    image = np.ascontiguousarray(image)
    blurred = cv2.GaussianBlur(image, _KSIZE, _SIGMA_FROM_KSIZE)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)


@register("oversharpen", category="oversharpen", table=_OVERSHARPEN)
def oversharpen(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Oversharpen by unsharp masking (edges get bright/dark halos, texture gets harsh).

    Severity: the amount grows from 2 to 8. `rng` is unused (deterministic).

    References: DQ-495K oversharpen; KADID-10k (high sharpen).
    """
    return _unsharp(image, amount=params_for(_OVERSHARPEN, severity).amount)
