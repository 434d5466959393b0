"""Saturation distortions: scale S in HSV, or Cr and Cb around neutral in YCrCb; both ways.

Category `saturate_strengthen` holds `saturate_strengthen_HSV` and
`saturate_strengthen_YCrCb`, `saturate_weaken` the two `saturate_weaken_*` functions.

The original scaled the channels of OpenCV's 8-bit HSV / YCrCb and clipped them to the
8-bit range. The same scale-and-clip is done here on OpenCV's float32 HSV / YCrCb, where
that range is [0, 1] (S in [0, 1]; Cr and Cb centred on 0.5), so the image is rounded once,
at the end: the 8-bit HSV round trip alone quantises hue to 2-degree steps and moves values
by up to 4 levels before any saturation change.

Re-parametrised strengthening (dqgen differs from DQ-495K here, on purpose). The original
multiplied S (or the chroma) by [3, 6, 12, 20, 64] (YCrCb [2, 3, 5, 8, 16]) and clipped:
on an already colourful photo (retina, mean S 0.76) severity 1 clipped nearly every pixel,
so severities 1-5 gave the same image (YCrCb from severity 2). Here the gain acts on the
distance to full saturation instead of on S itself:

    S' = 1 - (1 - S) ** g        (HSV S; in YCrCb on |C - 0.5| / 0.5, sign kept)

For a weakly coloured pixel this is S' ~ g S, the original's scaling; it approaches full
saturation smoothly and never clips below it, and grey stays grey. Gains: HSV
[2, 3, 5, 9, 20] (was a scale [3, 6, 12, 20, 64]), YCrCb [2, 3, 5, 8, 16] (the
original's numbers, now gains of the new law). Measured on the eight colour photos of the
bundle at 224 px: mean HSV saturation rises strictly with severity on all eight (retina,
the most colourful, by 40 / 12 / 4.7 / 0.4 / 0.01 levels HSV). The weakening functions
keep the DQ-495K scale-and-clip (their damage was already ordered).
"""

from __future__ import annotations

from typing import Final, NamedTuple

import cv2
import numpy as np

from distortions._checks import to_float, to_uint8
from distortions.registry import params_for, register

__all__ = [
    "SaturationParams",
    "saturate_strengthen_HSV",
    "saturate_strengthen_YCrCb",
    "saturate_weaken_HSV",
    "saturate_weaken_YCrCb",
]


class SaturationParams(NamedTuple):
    """Weakening: factor applied to S (HSV) or to Cr - neutral and Cb - neutral (YCrCb); 0
    gives grey. Strengthening: gain g of the headroom law S' = 1 - (1 - S) ** g."""

    scale: float


# Parameters per severity 1..5. Weakening: from the DQ-495K catalogue (spec table).
# Strengthening: gains of the headroom law (module docstring), re-parametrised.
_STRENGTHEN_HSV: Final = tuple(SaturationParams(s) for s in (2.0, 3.0, 5.0, 9.0, 20.0))
_STRENGTHEN_YCRCB: Final = tuple(SaturationParams(s) for s in (2.0, 3.0, 5.0, 8.0, 16.0))
_WEAKEN_HSV: Final = tuple(SaturationParams(s) for s in (0.7, 0.55, 0.4, 0.2, 0.0))
_WEAKEN_YCRCB: Final = tuple(SaturationParams(s) for s in (0.6, 0.4, 0.2, 0.1, 0.0))

# Neutral chroma of OpenCV's float YCrCb (the "128" of the 8-bit space).
_NEUTRAL_CHROMA: Final = 0.5
# Upper bounds of OpenCV's float HSV channels (H in degrees), for a per-channel cv2.min.
_HSV_MAX: Final = (360.0, 1.0, 1.0, 0.0)


# ------------------------------------------------------------------------------------ kernels


def _scale_s(image: np.ndarray, *, scale: float) -> np.ndarray:
    """S := min(S * scale, 1) in HSV; hue and value kept.

    Per-channel cv2 scalar arithmetic, in place, on the interleaved HSV image: numpy ops on
    a strided single-channel view cost about 20x more, and fresh image-sized temporaries
    cost page faults.
    """
    hsv = to_float(image)
    cv2.cvtColor(hsv, cv2.COLOR_RGB2HSV, dst=hsv)
    cv2.multiply(hsv, (1.0, scale, 1.0, 1.0), dst=hsv)
    cv2.min(hsv, _HSV_MAX, dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=hsv)
    return to_uint8(hsv, overwrite=True)


def _scale_chroma(image: np.ndarray, *, scale: float) -> np.ndarray:
    """Cr, Cb := 0.5 + scale * (C - 0.5), clipped to [0, 1]; luma Y kept.

    One affine colour transform (cv2.transform) does the scaling of both chroma channels.
    """
    ycc = to_float(image)
    cv2.cvtColor(ycc, cv2.COLOR_RGB2YCrCb, dst=ycc)
    offset = _NEUTRAL_CHROMA * (1.0 - scale)
    affine = np.array(
        [[1.0, 0.0, 0.0, 0.0], [0.0, scale, 0.0, offset], [0.0, 0.0, scale, offset]],
        dtype=np.float32,
    )
    cv2.transform(ycc, affine, dst=ycc)
    np.clip(ycc, 0.0, 1.0, out=ycc)  # Y is in [0, 1] already; Cr, Cb clip to the 8-bit range
    cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB, dst=ycc)
    return to_uint8(ycc, overwrite=True)


def _boost_s(image: np.ndarray, *, gain: float) -> np.ndarray:
    """S := 1 - (1 - S) ** gain in HSV; hue and value kept (no clipping needed)."""
    hsv = to_float(image)
    cv2.cvtColor(hsv, cv2.COLOR_RGB2HSV, dst=hsv)
    sat = np.clip(hsv[..., 1], 0.0, 1.0)
    hsv[..., 1] = 1.0 - (1.0 - sat) ** gain
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=hsv)
    return to_uint8(hsv, overwrite=True)


def _boost_chroma(image: np.ndarray, *, gain: float) -> np.ndarray:
    """Cr, Cb := 0.5 + 0.5 sign(c) (1 - (1 - |c|) ** gain), c = (C - 0.5) / 0.5; Y kept."""
    ycc = to_float(image)
    cv2.cvtColor(ycc, cv2.COLOR_RGB2YCrCb, dst=ycc)
    c = np.clip((ycc[..., 1:] - _NEUTRAL_CHROMA) / _NEUTRAL_CHROMA, -1.0, 1.0)
    ycc[..., 1:] = _NEUTRAL_CHROMA * (1.0 + np.sign(c) * (1.0 - (1.0 - np.abs(c)) ** gain))
    cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB, dst=ycc)
    return to_uint8(ycc, overwrite=True)


# ---------------------------------------------------------------------------------- functions


@register("saturate_strengthen_HSV", category="saturate_strengthen", table=_STRENGTHEN_HSV)
def saturate_strengthen_HSV(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Oversaturate in HSV: S := 1 - (1 - S) ** g (full saturation approached, never clipped).

    Severity: the gain grows from 2 to 20 (re-parametrised, see the module docstring).
    `rng` is unused (deterministic).

    References: DQ-495K saturate_strengthen_HSV; KADID-10k (colour saturation).
    """
    return _boost_s(image, gain=params_for(_STRENGTHEN_HSV, severity).scale)


@register("saturate_strengthen_YCrCb", category="saturate_strengthen", table=_STRENGTHEN_YCRCB)
def saturate_strengthen_YCrCb(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Oversaturate in YCrCb: each chroma's distance from neutral gets the headroom law.

    Severity: the gain grows from 2 to 16 (re-parametrised, see the module docstring).
    `rng` is unused (deterministic).

    References: DQ-495K saturate_strengthen_YCrCb.
    """
    return _boost_chroma(image, gain=params_for(_STRENGTHEN_YCRCB, severity).scale)


@register("saturate_weaken_HSV", category="saturate_weaken", table=_WEAKEN_HSV)
def saturate_weaken_HSV(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Desaturate by scaling S in HSV (0 gives grey = max(R, G, B) everywhere).

    Severity: the scale falls from 0.7 to 0. `rng` is unused (deterministic).

    References: DQ-495K saturate_weaken_HSV; KADID-10k (colour saturation).
    """
    return _scale_s(image, scale=params_for(_WEAKEN_HSV, severity).scale)


@register("saturate_weaken_YCrCb", category="saturate_weaken", table=_WEAKEN_YCRCB)
def saturate_weaken_YCrCb(
    image: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
    """Desaturate by scaling Cr and Cb towards neutral in YCrCb (0 gives the luma image).

    Severity: the scale falls from 0.6 to 0. `rng` is unused (deterministic).

    References: DQ-495K saturate_weaken_YCrCb.
    """
    return _scale_chroma(image, scale=params_for(_WEAKEN_YCRCB, severity).scale)
