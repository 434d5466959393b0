"""Tests of distortions/saturation.py: saturate_strengthen and saturate_weaken."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from distortions import saturation
from distortions.registry import REGISTRY
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, colourfulness, grey_rgb, is_grey, photo, run

# The tables: the spec's (../shared/spec/distortions.md) for weakening; strengthening is
# re-parametrised as gains of the headroom law S' = 1 - (1 - S) ** g (DQ-495K's clipped
# scales [3, 6, 12, 20, 64] gave one image for severities 1-5 on a colourful photo).
SPEC_TABLES = {
    "saturate_strengthen_HSV": ("saturate_strengthen", [2, 3, 5, 9, 20]),
    "saturate_strengthen_YCrCb": ("saturate_strengthen", [2, 3, 5, 8, 16]),
    "saturate_weaken_HSV": ("saturate_weaken", [0.7, 0.55, 0.4, 0.2, 0.0]),
    "saturate_weaken_YCrCb": ("saturate_weaken", [0.6, 0.4, 0.2, 0.1, 0.0]),
}
NAMES = tuple(SPEC_TABLES)

PHOTO = photo("astronaut", (96, 96))
CAT = photo("chelsea", (120, 80))


# ------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("name", NAMES)
def test_table_equals_the_spec(name: str) -> None:
    category, values = SPEC_TABLES[name]
    helpers.assert_one_field_table(name, category, "scale", values)


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("scale", [0.4, 3.0])
def test_hsv_scale_changes_s_only(scale: float) -> None:
    out = saturation._scale_s(PHOTO, scale=scale)
    h0 = cv2.cvtColor(PHOTO.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    h1 = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    want_s = np.minimum(h0[:, :, 1] * scale, 1)
    ok = (h0[:, :, 2] > 0.3) & (want_s > 0.2)
    assert np.abs(h1[:, :, 2] - h0[:, :, 2]).max() <= 0.51 / 255 + 1e-6  # V = max kept
    assert np.abs(h1[:, :, 1][ok] - want_s[ok]).max() < 0.02
    dh = np.abs(h1[:, :, 0][ok] - h0[:, :, 0][ok])
    assert np.minimum(dh, 360 - dh).max() < 3


@pytest.mark.parametrize("scale", [0.2, 2.0])
def test_ycrcb_scale_changes_chroma_only(scale: float) -> None:
    out = saturation._scale_chroma(PHOTO, scale=scale)
    y0 = cv2.cvtColor(PHOTO.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
    y1 = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
    want_c = np.clip(0.5 + (y0[:, :, 1:] - 0.5) * scale, 0, 1)
    inside = (out > 0).all(axis=2) & (out < 255).all(axis=2)  # no RGB clipping
    assert inside.mean() > 0.5
    assert np.abs(y1[:, :, 0][inside] - y0[:, :, 0][inside]).max() < 1.5 / 255  # luma kept
    assert np.abs(y1[:, :, 1:][inside] - want_c[inside]).max() < 2.5 / 255


def test_scale_zero_gives_grey() -> None:
    hsv = saturation._scale_s(PHOTO, scale=0.0)
    assert is_grey(hsv)
    np.testing.assert_array_equal(hsv[:, :, 0], PHOTO.max(axis=2))  # grey = V
    ycc = saturation._scale_chroma(PHOTO, scale=0.0)
    assert is_grey(ycc)
    luma = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(ycc[:, :, 0].astype(int) - luma).max() <= 1  # grey = Y


def _orig_8bit(img: np.ndarray, scale: float, space: str) -> np.ndarray:
    """The original's 8-bit path (scale and clip in uint8 HSV / YCrCb), for comparison."""
    if space == "HSV":
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 1] *= scale
        return cv2.cvtColor(np.uint8(np.clip(hsv, 0, 255)), cv2.COLOR_HSV2RGB)
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[:, :, 1:] = 128 + (ycc[:, :, 1:] - 128) * scale
    return cv2.cvtColor(np.uint8(np.clip(ycc, 0, 255)), cv2.COLOR_YCrCb2RGB)


@pytest.mark.parametrize("name", [n for n in NAMES if "weaken" in n])
def test_same_semantics_as_the_original_8bit_path(name: str) -> None:
    space = name.rsplit("_", 1)[1]
    for severity in range(1, 6):
        scale = REGISTRY[name].params(severity).scale
        ours = run(name, PHOTO, severity).astype(int)
        diff = np.abs(ours - _orig_8bit(PHOTO, scale, space))
        assert diff.mean() < 2.5, (severity, diff.mean())


def test_headroom_law_of_strengthening() -> None:
    """S' = 1 - (1 - S) ** g: grey stays grey, nothing clips, weak colour scales ~ g."""
    hsv_in = cv2.cvtColor(PHOTO.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    gain = REGISTRY["saturate_strengthen_HSV"].params(2).scale
    out = cv2.cvtColor(run("saturate_strengthen_HSV", PHOTO, 2).astype(np.float32) / 255,
                       cv2.COLOR_RGB2HSV)
    want = 1 - (1 - hsv_in[:, :, 1]) ** gain
    bright = hsv_in[:, :, 2] > 0.3  # hue and S are ill-defined near black after rounding
    assert np.abs(out[:, :, 1] - want)[bright].mean() < 0.02
    # a colourful pixel stays below full saturation at severity 1 (the original clipped)
    px = np.tile(np.array([200, 60, 40], np.uint8), (32, 32, 1))  # S = 0.8
    assert run("saturate_strengthen_HSV", px, 1)[0, 0].min() > 0  # S' = 0.96 < 1
    for name in ("saturate_strengthen_HSV", "saturate_strengthen_YCrCb"):
        # the original clipped this pixel at severity 1: one image for every severity;
        # here 8-bit rounding reaches full saturation only from severity 4
        outs = {run(name, px, s).tobytes() for s in (1, 2, 3)}
        assert len(outs) == 3, name


# ----------------------------------------------------------------- functions and severity


@pytest.mark.parametrize("name", NAMES)
def test_colourfulness_moves_monotonically(name: str) -> None:
    m = [colourfulness(PHOTO)] + [colourfulness(run(name, PHOTO, s)) for s in range(1, 6)]
    steps = np.diff(m)
    if "strengthen" in name:
        assert (steps > 0.2).all(), m
    else:
        assert (steps < -0.2).all(), m
        assert m[-1] < 0.5  # scale 0: no colour left


@pytest.mark.parametrize("name", NAMES)
def test_mean_saturation_moves_monotonically_on_a_low_chroma_photo(name: str) -> None:
    """On the brownish cat, strong YCrCb gains push most pixels to the gamut edge, where
    RGB clipping collapses the spread of hues: Hasler's colourfulness then falls from
    x5 to x16 (the original's 8-bit path does the same). The mean HSV saturation, the
    quantity these distortions scale, still orders the severities."""
    sat = [float(cv2.cvtColor(CAT, cv2.COLOR_RGB2HSV)[:, :, 1].mean())]
    sat += [float(cv2.cvtColor(run(name, CAT, s), cv2.COLOR_RGB2HSV)[:, :, 1].mean())
            for s in range(1, 6)]
    steps = np.diff(sat)
    if "strengthen" in name:  # rises until (nearly) every pixel is fully saturated
        assert (steps >= 0).all() and (steps[:3] > 0.5).all() and sat[-1] > 240, sat
    else:
        assert (steps < -0.5).all(), sat


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_rng_untouched(name: str) -> None:
    helpers.assert_deterministic_and_rng_untouched(name, PHOTO)


# ---------------------------------------------------------------------------- edge inputs


@pytest.mark.parametrize("name", NAMES)
def test_edge_inputs(name: str) -> None:
    grey = grey_rgb(PHOTO)
    out = run(name, grey, 5)
    assert is_grey(out)
    assert np.abs(out.astype(int) - grey).max() <= 1  # nothing to (de)saturate
    for value in (0, 255):
        flat = np.full((32, 40, 3), value, np.uint8)
        np.testing.assert_array_equal(run(name, flat, 5), flat)
    orange = np.tile(np.array([180, 120, 60], np.uint8), (40, 48, 1))
    out = run(name, orange, 3)
    assert (out == out[0, 0]).all()  # flat stays flat
    r, g, b = out[0, 0].astype(int)
    assert r >= g >= b  # still an orange/yellow hue (or grey)
    helpers.assert_tiny_keeps_its_shape(name, PHOTO)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(name: str, view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(name, PHOTO, view)
