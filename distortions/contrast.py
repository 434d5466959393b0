"""Contrast distortions: scale (blend with the mean grey) and sigmoid stretch, each both ways.

Category `contrast_strengthen` holds `contrast_strengthen_scale` and
`contrast_strengthen_stretch`, `contrast_weaken` the two `contrast_weaken_*` functions.
Both kinds are pointwise once an image statistic (a mean) is known, so they run as 256-entry
lookup tables (cv2.LUT): far cheaper than Pillow or a float power over the whole image.

Re-parametrised stretch (dqgen differs from DQ-495K here, on purpose). The original
sigmoid y = 1 / (1 + (m / x) ** k) moves the channel mean to 0.5 and pulls white down to
1 / (1 + m ** k), so its "strengthen" at k = 2 *lowered* luma std on astronaut, camera and
ihc, and its "weaken" at k = 1..0.8 *raised* it on hubble and retina while costing 9-19 dB
at severity 1 (a brightness change, not a contrast one). The stretch here keeps the
sigmoid's character (a curve through the channel mean m whose slope there is k, steep
towards a two-level image at high k, flat towards m at low k) but pivots on m and keeps
the extremes fixed: a two-sided power curve

    y = m * (x / m) ** k                    for x <= m
    y = 1 - (1 - m) * ((1 - x) / (1 - m)) ** k   for x > m

so every value moves away from m (k > 1) or towards it (k < 1), monotonically in k.
Tables: strengthen k [1.5, 2, 3, 4.5, 8] (was [2, 4, 6, 8, 10]), weaken k [0.75, 0.6,
0.45, 0.3, 0.2] (was [1.0, 0.9, 0.8, 0.6, 0.4]). Measured on the ten bundled photos at
224 px: luma std rises (strengthen) / falls (weaken) strictly with severity on all ten,
smallest step 4.1 / 2.7 levels; severity 1 costs 25-32 / 28-36 dB PSNR, in the range of
the scale variants' severity 1 (21-29 / 22-32 dB).
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
    """Slope k at the channel mean of the two-sided power curve: > 1 strengthens, < 1 weakens."""

    k: float


# Parameters per severity 1..5: scale from the DQ-495K catalogue (spec table); stretch
# re-parametrised for the pivoting curve (module docstring; DQ-495K k [2, 4, 6, 8, 10]
# and [1.0, 0.9, 0.8, 0.6, 0.4] did not order the damage).
_STRENGTHEN_SCALE: Final = tuple(ScaleParams(f) for f in (1.4, 1.7, 2.1, 2.6, 4.0))
_STRENGTHEN_STRETCH: Final = tuple(StretchParams(k) for k in (1.5, 2.0, 3.0, 4.5, 8.0))
_WEAKEN_SCALE: Final = tuple(ScaleParams(f) for f in (0.75, 0.60, 0.45, 0.30, 0.20))
_WEAKEN_STRETCH: Final = tuple(StretchParams(k) for k in (0.75, 0.6, 0.45, 0.3, 0.2))

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
    """256-entry table of the two-sided power curve through `mean` (floats in [0, 1]).

    y = m (x / m)^k below m, 1 - (1 - m) ((1 - x) / (1 - m))^k above: 0 -> 0, m -> m,
    1 -> 1, slope k at m. Edge cases, handled deliberately (the original's sigmoid turned an
    all-black channel white): m = 0 (all-black channel) or m = 1 (all-white) gives the
    identity, so such a channel is unchanged.
    """
    x = _LEVELS / 255.0
    if mean <= 0.0 or mean >= 1.0:
        return x.copy()
    y = np.empty(256, dtype=np.float64)
    low = x <= mean
    y[low] = mean * (x[low] / mean) ** k
    y[~low] = 1.0 - (1.0 - mean) * ((1.0 - x[~low]) / (1.0 - mean)) ** k
    return y


def _stretch(image: np.ndarray, *, k: float) -> np.ndarray:
    """Per-channel stretch around the channel mean m (values move away from m, or towards it).

    A flat channel (every value at its mean) is the curve's fixed point: it is unchanged
    at every k (the effect check of the pipeline then redraws such a sample).
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
    """Strengthen contrast with a steep curve through each channel's mean (extremes fixed).

    Severity: k grows from 1.5 to 8 (towards a two-level image; re-parametrised, see the
    module docstring). `rng` is unused.

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
    """Weaken contrast with a shallow curve through each channel's mean (extremes fixed).

    Severity: k falls from 0.75 to 0.2 (values pulled towards the mean; re-parametrised,
    see the module docstring). `rng` is unused.

    References: DQ-495K contrast_weaken_stretch.
    """
    return _stretch(image, k=params_for(_WEAKEN_STRETCH, severity).k)
