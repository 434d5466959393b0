"""Tests of distortions/brightness.py: the brighten and darken categories."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import distortions
from distortions import brightness
from distortions.registry import REGISTRY
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, grey_rgb, is_grey, photo

# The spec's tables (../shared/spec/distortions.md), written out.
SPEC_TABLES = {
    "brightness_brighten_shift_HSV": ("brighten", [0.1, 0.2, 0.3, 0.4, 0.5]),
    "brightness_brighten_shift_RGB": ("brighten", [0.10, 0.15, 0.20, 0.27, 0.35]),
    "brightness_brighten_gamma_HSV": ("brighten", [0.70, 0.58, 0.47, 0.36, 0.25]),
    "brightness_brighten_gamma_RGB": ("brighten", [0.80, 0.70, 0.60, 0.45, 0.30]),
    "brightness_darken_shift_HSV": ("darken", [0.1, 0.2, 0.3, 0.4, 0.5]),
    "brightness_darken_shift_RGB": ("darken", [0.10, 0.15, 0.20, 0.27, 0.35]),
    "brightness_darken_gamma_HSV": ("darken", [1.5, 1.8, 2.2, 2.7, 3.5]),
    "brightness_darken_gamma_RGB": ("darken", [1.4, 1.7, 2.1, 2.6, 3.2]),
}
NAMES = tuple(SPEC_TABLES)

PHOTO = photo("astronaut", (96, 96))
LEVELS = np.arange(256, dtype=np.float64)
RAMP = np.tile(np.arange(256, dtype=np.uint8), (32, 1))[:, :, None].repeat(3, axis=2)  # 32 x 256


def _hsv(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)


# ------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("name", NAMES)
def test_table_equals_the_spec(name: str) -> None:
    category, values = SPEC_TABLES[name]
    helpers.assert_one_field_table(name, category, "shift" if "shift" in name else "gamma", values)


@pytest.mark.parametrize("name", [n for n in NAMES if "shift" in n])
def test_old_spelling_is_an_alias(name: str) -> None:
    old = name.replace("shift", "shfit")
    a = distortions.apply(PHOTO, old, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(a, distortions.apply(PHOTO, name, 2, np.random.default_rng(0)))
    assert distortions.category_of(old) == SPEC_TABLES[name][0]


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("shift", [0.1, 0.27, -0.2, -0.35])
def test_rgb_shift_adds_to_every_channel(shift: float) -> None:
    out = brightness._shift_rgb(RAMP, shift=shift)[0, :, 0].astype(np.float64)
    want = np.rint(np.clip(LEVELS + shift * 255, 0, 255))
    assert np.abs(out - want).max() <= 1
    assert (out[1:] >= out[:-1]).all()  # monotonic curve


@pytest.mark.parametrize("gamma", [0.3, 0.8, 1.4, 3.2])
def test_rgb_gamma_is_a_power_curve(gamma: float) -> None:
    out = brightness._gamma_rgb(RAMP, gamma=gamma)[0, :, 0].astype(np.float64)
    want = np.rint((LEVELS / 255) ** gamma * 255)
    assert np.abs(out - want).max() <= 1
    assert out[0] == 0 and out[255] == 255  # black and white are fixed points


@pytest.mark.parametrize("shift", [0.2, -0.2])
def test_hsv_shift_moves_v_and_keeps_hue_and_saturation(shift: float) -> None:
    out = brightness._shift_v(PHOTO, shift=shift)
    h0, h1 = _hsv(PHOTO), _hsv(out)
    v_new = h0[:, :, 2] + shift
    ok = (v_new > 0.15) & (v_new < 0.98) & (h0[:, :, 1] > 0.3)  # not clipped, clear hue
    assert ok.mean() > 0.2
    assert np.abs(h1[:, :, 2][ok] - v_new[ok]).max() <= 0.6 / 255 + 1e-6
    assert np.abs(h1[:, :, 1][ok] - h0[:, :, 1][ok]).max() < 0.03
    dh = np.abs(h1[:, :, 0][ok] - h0[:, :, 0][ok])
    assert np.minimum(dh, 360 - dh).max() < 4  # degrees


def test_hsv_shift_beyond_white_keeps_brightening_the_other_channels() -> None:
    """As the original: V + shift above 1 is not clipped in HSV, only the RGB result is."""
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :, 0] = 255
    img[:, :, 1] = 128
    out = brightness._shift_v(img, shift=0.3)
    assert (out[:, :, 0] == 255).all()
    assert (out[:, :, 1] == round(128 / 255 * 1.3 * 255)).all()  # scaled by V'/V = 1.3
    assert (out[:, :, 2] == 0).all()


@pytest.mark.parametrize("gamma", [0.25, 0.7, 1.5, 3.5])
def test_hsv_gamma_applies_the_curve_to_v_of_the_8bit_hsv(gamma: float) -> None:
    out = brightness._gamma_v(PHOTO, gamma=gamma)
    v8 = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2HSV)[:, :, 2].astype(np.float64)  # 8-bit V
    want = (v8 / 255) ** gamma * 255
    assert np.abs(out.max(axis=2) - want).max() <= 0.51
    # hue and saturation kept <=> every channel scaled by the same V' / V
    lit = v8 > 0
    scaled = PHOTO[lit].astype(np.float64) * (want[lit] / v8[lit])[:, None]
    assert np.abs(out[lit] - scaled).max() <= 0.51


def test_hsv_gamma_close_to_the_original_8bit_path() -> None:
    """Same semantics as the original (8-bit HSV); only its quantisation losses differ."""
    hsv = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2HSV) / 255.0
    hsv[:, :, 2] = hsv[:, :, 2] ** 0.47
    orig = cv2.cvtColor(np.uint8(np.clip(hsv, 0, 1) * 255.0), cv2.COLOR_HSV2RGB)
    ours = brightness._gamma_v(PHOTO, gamma=0.47)
    diff = np.abs(ours.astype(int) - orig)
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6


# ----------------------------------------------------------------- functions and severity


@pytest.mark.parametrize("name", NAMES)
def test_mean_brightness_moves_monotonically_with_severity(name: str) -> None:
    fn = REGISTRY[name].fn
    rng = np.random.default_rng(0)
    means = [float(PHOTO.mean())] + [float(fn(PHOTO, s, rng).mean()) for s in range(1, 6)]
    steps = np.diff(means)
    if SPEC_TABLES[name][0] == "brighten":
        assert (steps > 0.5).all(), means
    else:
        assert (steps < -0.5).all(), means


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_rng_untouched(name: str) -> None:
    helpers.assert_deterministic_and_rng_untouched(name, PHOTO, other_seed=99)


# ---------------------------------------------------------------------------- edge inputs


@pytest.mark.parametrize("name", NAMES)
def test_grey_stays_grey_and_black_white_behave(name: str) -> None:
    fn = REGISTRY[name].fn
    assert is_grey(fn(grey_rgb(PHOTO), 4, np.random.default_rng(0)))
    black = np.zeros((32, 32, 3), np.uint8)
    white = np.full((32, 32, 3), 255, np.uint8)
    if "darken" in name or "gamma" in name:
        assert not fn(black, 5, np.random.default_rng(0)).any()  # black stays black
    if "brighten" in name or "gamma" in name:
        assert (fn(white, 5, np.random.default_rng(0)) == 255).all()  # white stays white
    if name == "brightness_brighten_shift_HSV":  # black has V = 0, S = 0: it turns grey
        assert (fn(black, 1, np.random.default_rng(0)) == round(0.1 * 255)).all()


@pytest.mark.parametrize("name", NAMES)
def test_flat_and_tiny_inputs(name: str) -> None:
    fn = REGISTRY[name].fn
    flat = np.tile(np.array([180, 120, 60], np.uint8), (40, 48, 1))
    out = fn(flat, 3, np.random.default_rng(0))
    assert (out == out[0, 0]).all()  # flat stays flat
    if "HSV" in name and "darken" not in name:
        r, g, b = out[0, 0].astype(int)
        assert r > g > b  # hue kept: still orange
    helpers.assert_tiny_keeps_its_shape(name, PHOTO)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(name: str, view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(name, PHOTO, view)
