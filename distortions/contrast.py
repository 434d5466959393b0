"""Contrast distortions: scale (blend with the mean grey) and sigmoid stretch, each both ways.

Category `contrast_strengthen` holds `contrast_strengthen_scale` and
`contrast_strengthen_stretch`, `contrast_weaken` the two `contrast_weaken_*` functions.
Both kinds are pointwise once an image statistic (a mean) is known, so they run as 256-entry
lookup tables (cv2.LUT): far cheaper than Pillow or a float power over the whole image.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions._checks import to_uint8
from distortions.registry import params_for, register

__all__ = [
    "ScaleParams",
    "StretchParams",
    "contrast_strengthen_scale",
    "contrast_strengthen_stretch",
    "contrast_weaken_scale",
    "contrast_weaken_stretch",
    "grey_mean",
]


class ScaleParams(NamedTuple):
    """Pillow ImageEnhance.Contrast factor: > 1 strengthens, < 1 weakens, 0 is flat grey."""

    factor: float


class StretchParams(NamedTuple):
    """Exponent k of the sigmoid y = 1 / (1 + (m / x) ** k): > 1 strengthens, < 1 weakens."""

    k: float


# Parameters per severity 1..5, from the DQ-495K catalogue (spec table).
_STRENGTHEN_SCALE: Final = tuple(ScaleParams(f) for f in (1.4, 1.7, 2.1, 2.6, 4.0))
_STRENGTHEN_STRETCH: Final = tuple(StretchParams(k) for k in (2.0, 4.0, 6.0, 8.0, 10.0))
_WEAKEN_SCALE: Final = tuple(ScaleParams(f) for f in (0.75, 0.60, 0.45, 0.30, 0.20))
_WEAKEN_STRETCH: Final = tuple(StretchParams(k) for k in (1.0, 0.9, 0.8, 0.6, 0.4))

_LEVELS: Final = np.arange(256, dtype=np.float64)


def grey_mean(image: np.ndarray) -> int:
    """Mean of the image's grey (Pillow "L") version, rounded half up, as ImageEnhance uses.

    Pillow's L is (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601-2 luma, rounded);
    the same integer arithmetic is done here in numpy.
    """
    rgb = np.ascontiguousarray(image).reshape(-1, 3).astype(np.uint32)
    luma = (rgb @ np.array([19595, 38470, 7471], dtype=np.uint32) + 0x8000) >> 16
    return int(float(luma.mean()) + 0.5)


# ------------------------------------------------------------------------------------ kernels


def _scale(image: np.ndarray, *, factor: float, mean: int) -> np.ndarray:
    """y = mean + factor * (x - mean) on every channel (Pillow's Image.blend of the image
    with a flat grey at `mean`), clipped and rounded to nearest (Pillow truncates)."""
    values = (mean + factor * (_LEVELS - mean)) / 255.0
    return cv2.LUT(np.ascontiguousarray(image), to_uint8(values.astype(np.float32)))


def _stretch_lut(k: float, mean: float) -> np.ndarray:
    """256-entry table of y = 1 / (1 + (m / x) ** k) for x = v / 255 (floats in [0, 1]).

    Edge cases, handled deliberately (the original added 1e-12 to x, so a zero-mean channel
    gave 0 / 1e-12 = 0 and 1 / (1 + 0) = 1: black turned white):

    * x = 0 -> 0, the limit of the sigmoid as x -> 0+ (black stays black);
    * m = 0 happens only for an all-black channel, which therefore stays black.
    """
    x = _LEVELS / 255.0
    y = np.zeros(256, dtype=np.float64)
    if mean > 0:
        pos = x > 0
        y[pos] = 1.0 / (1.0 + (mean / x[pos]) ** k)
    return y


def _stretch(image: np.ndarray, *, k: float) -> np.ndarray:
    """Per-channel sigmoid stretch around the channel mean m (a value at m becomes 0.5).

    A flat channel (every value equal to its mean, not 0) becomes 0.5 (level 128): the
    formula's fixed point, so a flat colour turns mid-grey at every k.
    """
    image = np.ascontiguousarray(image)
    means = cv2.mean(image)[:3]  # float64 sums; numpy's strided axis-0 mean is ~10x slower
    lut = np.stack([_stretch_lut(k, m / 255.0) for m in means], axis=1)  # 256 x 3
    lut8 = to_uint8(lut.astype(np.float32)).reshape(1, 256, 3)
    return cv2.LUT(image, lut8)


# ---------------------------------------------------------------------------------- functions


@register("contrast_strengthen_scale", category="contrast_strengthen", table=_STRENGTHEN_SCALE)
def contrast_strengthen_scale(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Strengthen contrast by pushing values away from the mean grey level.

    Same result as Pillow's ``ImageEnhance.Contrast(img).enhance(factor)`` (within one level:
    we round, Pillow truncates).

    Severity: factor grows from 1.4 to 4.0. `rng` is unused (deterministic).

    References: PIL.ImageEnhance.Contrast; DQ-495K contrast_strengthen_scale.
    """
    p = params_for(_STRENGTHEN_SCALE, severity)
    return _scale(image, factor=p.factor, mean=grey_mean(image))


@register(
    "contrast_strengthen_stretch", category="contrast_strengthen", table=_STRENGTHEN_STRETCH
)
def contrast_strengthen_stretch(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Strengthen contrast with a steep sigmoid around each channel's mean.

    Severity: k grows from 2 to 10 (towards a binary image). `rng` is unused.

    References: DQ-495K contrast_strengthen_stretch.
    """
    return _stretch(image, k=params_for(_STRENGTHEN_STRETCH, severity).k)


@register("contrast_weaken_scale", category="contrast_weaken", table=_WEAKEN_SCALE)
def contrast_weaken_scale(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Weaken contrast by pulling values towards the mean grey level (Pillow semantics).

    Severity: factor falls from 0.75 to 0.20. `rng` is unused (deterministic).

    References: PIL.ImageEnhance.Contrast; DQ-495K contrast_weaken_scale.
    """
    p = params_for(_WEAKEN_SCALE, severity)
    return _scale(image, factor=p.factor, mean=grey_mean(image))


@register("contrast_weaken_stretch", category="contrast_weaken", table=_WEAKEN_STRETCH)
def contrast_weaken_stretch(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Weaken contrast with a shallow sigmoid around each channel's mean.

    Severity: k falls from 1.0 to 0.4 (flatter curve). `rng` is unused.

    References: DQ-495K contrast_weaken_stretch.
    """
    return _stretch(image, k=params_for(_WEAKEN_STRETCH, severity).k)
