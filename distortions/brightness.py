"""Brightness distortions: brighten and darken, by a shift or a gamma, in HSV (V) or RGB.

Category `brighten` holds the four `brightness_brighten_*` functions, `darken` the four
`brightness_darken_*`. The old spelling `..._shfit_...` is an alias in the registry.

RGB variants are pointwise on uint8 values, so they run as one 256-entry lookup table
(cv2.LUT). HSV variants change V only (hue and saturation kept) through OpenCV's float32
HSV (V = max(R, G, B) / 255 in [0, 1]); the result is clipped in RGB, as in the original:
a shifted V above 1 keeps brightening the other channels until they clip.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions._checks import to_float, to_uint8
from distortions.registry import params_for, register

__all__ = [
    "GammaParams",
    "ShiftParams",
    "brightness_brighten_gamma_HSV",
    "brightness_brighten_gamma_RGB",
    "brightness_brighten_shift_HSV",
    "brightness_brighten_shift_RGB",
    "brightness_darken_gamma_HSV",
    "brightness_darken_gamma_RGB",
    "brightness_darken_shift_HSV",
    "brightness_darken_shift_RGB",
]


class ShiftParams(NamedTuple):
    """Amount added to (brighten) or subtracted from (darken) V or R, G, B in [0, 1]."""

    shift: float


class GammaParams(NamedTuple):
    """Exponent of x := x ** gamma (< 1 brightens, > 1 darkens), x in [0, 1]."""

    gamma: float


# Parameters per severity 1..5, from the DQ-495K catalogue (spec table).
_BRIGHTEN_SHIFT_HSV: Final = tuple(ShiftParams(s) for s in (0.1, 0.2, 0.3, 0.4, 0.5))
_BRIGHTEN_SHIFT_RGB: Final = tuple(ShiftParams(s) for s in (0.10, 0.15, 0.20, 0.27, 0.35))
_BRIGHTEN_GAMMA_HSV: Final = tuple(GammaParams(g) for g in (0.70, 0.58, 0.47, 0.36, 0.25))
_BRIGHTEN_GAMMA_RGB: Final = tuple(GammaParams(g) for g in (0.80, 0.70, 0.60, 0.45, 0.30))
_DARKEN_SHIFT_HSV: Final = tuple(ShiftParams(s) for s in (0.1, 0.2, 0.3, 0.4, 0.5))
_DARKEN_SHIFT_RGB: Final = tuple(ShiftParams(s) for s in (0.10, 0.15, 0.20, 0.27, 0.35))
_DARKEN_GAMMA_HSV: Final = tuple(GammaParams(g) for g in (1.5, 1.8, 2.2, 2.7, 3.5))
_DARKEN_GAMMA_RGB: Final = tuple(GammaParams(g) for g in (1.4, 1.7, 2.1, 2.6, 3.2))

_LEVELS: Final = np.arange(256, dtype=np.float64) / 255.0


# ------------------------------------------------------------------------------------ kernels


def _apply_lut(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Map every uint8 value v of `image` to `values[v]` (values in [0, 1], rounded once)."""
    lut = to_uint8(values.astype(np.float32))
    return cv2.LUT(np.ascontiguousarray(image), lut)


def _shift_rgb(image: np.ndarray, *, shift: float) -> np.ndarray:
    """x := x + shift on R, G and B (shift < 0 darkens), clipped."""
    return _apply_lut(image, _LEVELS + shift)


def _gamma_rgb(image: np.ndarray, *, gamma: float) -> np.ndarray:
    """x := x ** gamma on R, G and B."""
    return _apply_lut(image, _LEVELS**gamma)


def _shift_v(image: np.ndarray, *, shift: float) -> np.ndarray:
    """V := V + shift in float HSV (shift < 0 darkens); clipped in RGB after the conversion.

    cv2 per-channel scalar arithmetic on the interleaved HSV image (numpy on a strided
    single-channel view costs about 20x more).
    """
    hsv = to_float(image)
    cv2.cvtColor(hsv, cv2.COLOR_RGB2HSV, dst=hsv)
    cv2.add(hsv, (0.0, 0.0, shift, 0.0), dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=hsv)
    return to_uint8(hsv, overwrite=True)


def _gamma_v(image: np.ndarray, *, gamma: float) -> np.ndarray:
    """V := V ** gamma with V = max(R, G, B) / 255 (the 8-bit HSV value / 255).

    The original went through OpenCV's 8-bit HSV, which quantises hue to 2-degree steps and
    truncated S and H on the way back (errors of up to 4 levels at gamma 1); float32 HSV
    applies the same curve to the same V without those losses.
    """
    hsv = to_float(image)
    cv2.cvtColor(hsv, cv2.COLOR_RGB2HSV, dst=hsv)
    h, s, v = cv2.split(hsv)
    np.clip(v, 0.0, 1.0, out=v)  # float rounding may leave V a hair above 1
    cv2.pow(v, gamma, dst=v)
    cv2.merge((h, s, v), dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=hsv)
    return to_uint8(hsv, overwrite=True)


# ------------------------------------------------------------------------------------ brighten


@register("brightness_brighten_shift_HSV", category="brighten", table=_BRIGHTEN_SHIFT_HSV)
def brightness_brighten_shift_HSV(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Brighten by adding to V in HSV (float), keeping hue and saturation.

    Severity: the shift grows from 0.1 to 0.5. `rng` is unused (deterministic).

    References: DQ-495K brightness_brighten_shfit_HSV (old spelling, an alias).
    """
    return _shift_v(image, shift=params_for(_BRIGHTEN_SHIFT_HSV, severity).shift)


@register("brightness_brighten_shift_RGB", category="brighten", table=_BRIGHTEN_SHIFT_RGB)
def brightness_brighten_shift_RGB(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Brighten by adding the same amount to R, G and B.

    Severity: the shift grows from 0.10 to 0.35. `rng` is unused (deterministic).

    References: DQ-495K brightness_brighten_shfit_RGB (old spelling, an alias).
    """
    return _shift_rgb(image, shift=params_for(_BRIGHTEN_SHIFT_RGB, severity).shift)


@register("brightness_brighten_gamma_HSV", category="brighten", table=_BRIGHTEN_GAMMA_HSV)
def brightness_brighten_gamma_HSV(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Brighten with a gamma curve on V (hue and saturation kept).

    Severity: gamma falls from 0.70 to 0.25. `rng` is unused (deterministic).

    References: DQ-495K brightness_brighten_gamma_HSV; KADID-10k (brighten).
    """
    return _gamma_v(image, gamma=params_for(_BRIGHTEN_GAMMA_HSV, severity).gamma)


@register("brightness_brighten_gamma_RGB", category="brighten", table=_BRIGHTEN_GAMMA_RGB)
def brightness_brighten_gamma_RGB(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Brighten with a gamma curve on R, G and B.

    Severity: gamma falls from 0.80 to 0.30. `rng` is unused (deterministic).

    References: DQ-495K brightness_brighten_gamma_RGB.
    """
    return _gamma_rgb(image, gamma=params_for(_BRIGHTEN_GAMMA_RGB, severity).gamma)


# -------------------------------------------------------------------------------------- darken


@register("brightness_darken_shift_HSV", category="darken", table=_DARKEN_SHIFT_HSV)
def brightness_darken_shift_HSV(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Darken by subtracting from V in HSV (float); values below 0 clip to black.

    Severity: the shift grows from 0.1 to 0.5. `rng` is unused (deterministic).

    References: DQ-495K brightness_darken_shfit_HSV (old spelling, an alias).
    """
    return _shift_v(image, shift=-params_for(_DARKEN_SHIFT_HSV, severity).shift)


@register("brightness_darken_shift_RGB", category="darken", table=_DARKEN_SHIFT_RGB)
def brightness_darken_shift_RGB(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Darken by subtracting the same amount from R, G and B.

    Severity: the shift grows from 0.10 to 0.35. `rng` is unused (deterministic).

    References: DQ-495K brightness_darken_shfit_RGB (old spelling, an alias).
    """
    return _shift_rgb(image, shift=-params_for(_DARKEN_SHIFT_RGB, severity).shift)


@register("brightness_darken_gamma_HSV", category="darken", table=_DARKEN_GAMMA_HSV)
def brightness_darken_gamma_HSV(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Darken with a gamma curve on V (hue and saturation kept).

    Severity: gamma grows from 1.5 to 3.5. `rng` is unused (deterministic).

    References: DQ-495K brightness_darken_gamma_HSV; KADID-10k (darken).
    """
    return _gamma_v(image, gamma=params_for(_DARKEN_GAMMA_HSV, severity).gamma)


@register("brightness_darken_gamma_RGB", category="darken", table=_DARKEN_GAMMA_RGB)
def brightness_darken_gamma_RGB(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Darken with a gamma curve on R, G and B.

    Severity: gamma grows from 1.4 to 3.2. `rng` is unused (deterministic).

    References: DQ-495K brightness_darken_gamma_RGB.
    """
    return _gamma_rgb(image, gamma=params_for(_DARKEN_GAMMA_RGB, severity).gamma)
