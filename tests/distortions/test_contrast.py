"""Tests of distortions/contrast.py: contrast_strengthen and contrast_weaken."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from distortions import contrast
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, grey_rgb, is_grey, photo, run

# The tables: the spec's (../shared/spec/distortions.md) for scale; the stretch is
# re-parametrised (DQ-495K k [2, 4, 6, 8, 10] and [1.0, 0.9, 0.8, 0.6, 0.4] did not order
# the damage; docs/differences-from-original.md).
SPEC_TABLES = {
    "contrast_strengthen_scale": ("contrast_strengthen", "factor", [1.4, 1.7, 2.1, 2.6, 4.0]),
    "contrast_strengthen_stretch": ("contrast_strengthen", "k", [1.5, 2, 3, 4.5, 8]),
    "contrast_weaken_scale": ("contrast_weaken", "factor", [0.75, 0.60, 0.45, 0.30, 0.20]),
    "contrast_weaken_stretch": ("contrast_weaken", "k", [0.75, 0.6, 0.45, 0.3, 0.2]),
}
NAMES = tuple(SPEC_TABLES)

PHOTO = photo("astronaut", (96, 96))
CAT = photo("chelsea", (120, 80))


# ------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("name", NAMES)
def test_table_equals_the_spec(name: str) -> None:
    helpers.assert_one_field_table(name, *SPEC_TABLES[name])


# ------------------------------------------------------------------------- scale (Pillow)


@pytest.mark.parametrize("img", [PHOTO, CAT], ids=["astronaut", "chelsea"])
def test_grey_mean_is_pillows(img: np.ndarray) -> None:
    pil_l = np.asarray(Image.fromarray(img).convert("L"), dtype=np.float64)
    assert contrast.grey_mean(img) == int(pil_l.mean() + 0.5)


@pytest.mark.parametrize("factor", [1.4, 1.7, 2.1, 2.6, 4.0, 0.75, 0.6, 0.45, 0.3, 0.2])
@pytest.mark.parametrize("img", [PHOTO, CAT], ids=["astronaut", "chelsea"])
def test_scale_equals_pillow_image_enhance_contrast(factor: float, img: np.ndarray) -> None:
    ours = contrast._scale(img, factor=factor, mean=contrast.grey_mean(img)).astype(int)
    pil = np.asarray(ImageEnhance.Contrast(Image.fromarray(img)).enhance(factor), dtype=int)
    diff = ours - pil
    assert np.abs(diff).max() <= 1  # Pillow truncates, we round
    assert diff.min() >= 0  # ... so we are never below it


def test_scale_blends_with_the_mean_grey() -> None:
    out = contrast._scale(CAT, factor=0.0, mean=100)
    assert (out == 100).all()
    np.testing.assert_array_equal(contrast._scale(CAT, factor=1.0, mean=100), CAT)


# ------------------------------------------------------------------------------- stretch


def _power_curve(x: np.ndarray, k: float, m: float) -> np.ndarray:
    return np.where(x <= m, m * (x / m) ** k, 1 - (1 - m) * ((1 - x) / (1 - m)) ** k)


def test_stretch_curve_follows_the_formula() -> None:
    for k, mean in ((2.0, 0.4), (0.6, 0.25), (10.0, 0.7)):
        lut = contrast._stretch_lut(k, mean)
        x = np.arange(256) / 255
        np.testing.assert_allclose(lut, _power_curve(x, k, mean), rtol=1e-12, atol=1e-15)
        assert lut[0] == 0.0 and lut[-1] == 1.0  # extremes fixed: black black, white white
        assert (np.diff(lut) >= 0).all()  # monotonic: no level order is swapped


def test_stretch_moves_values_away_from_or_towards_the_channel_mean() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = (40, 100, 200)
    img[:, 16:] = (120, 20, 100)  # channel means 80, 60, 150
    m = np.array([80, 60, 150]) / 255
    x = img[0, 0].astype(np.float64) / 255
    out = contrast._stretch(img, k=3.0)
    np.testing.assert_allclose(out[0, 0], np.rint(255 * _power_curve(x, 3.0, m)), atol=1)
    dist_in = np.abs(img.astype(float) - m * 255)
    assert (np.abs(out.astype(float) - m * 255) >= dist_in - 0.5).all()  # away (k > 1)
    weak = contrast._stretch(img, k=0.5)
    assert (np.abs(weak.astype(float) - m * 255) <= dist_in + 0.5).all()  # towards (k < 1)


def test_stretch_keeps_black_black_where_the_original_turned_it_white() -> None:
    """Defect of the original: x + 1e-12 in the denominator made a zero-mean channel 255."""
    img = PHOTO.copy()
    img[:, :, 2] = 0  # blue channel all zero: mean 0
    img[:8, :8] = 0  # and some pure black pixels in the others
    for k in (0.4, 1.0, 10.0):
        out = contrast._stretch(img, k=k)
        assert not out[:, :, 2].any()
        assert not out[:8, :8].any()
    assert not contrast._stretch(np.zeros((32, 32, 3), np.uint8), k=4.0).any()


def test_stretch_leaves_a_flat_channel_unchanged() -> None:
    """A flat channel sits at its own mean, the curve's fixed point (the original's sigmoid
    turned it mid-grey); the pipeline's effect check redraws such a sample."""
    flat = np.tile(np.array([180, 120, 60], np.uint8), (40, 48, 1))
    np.testing.assert_array_equal(contrast._stretch(flat, k=6.0), flat)


# ----------------------------------------------------------------- functions and severity


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("img", [PHOTO, CAT], ids=["astronaut", "chelsea"])
def test_spread_of_intensities_moves_monotonically(name: str, img: np.ndarray) -> None:
    spread = [float(run(name, img, s).std()) for s in range(1, 6)]
    steps = np.diff(spread)
    if "strengthen" in name:
        assert spread[0] > img.std()  # severity 1 already spreads more than the clean image
        assert (steps > 0.2).all() and spread[-1] > img.std() + 5, spread
    else:
        assert spread[0] < img.std()
        assert (steps < -0.2).all() and spread[-1] < img.std() - 5, spread


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_rng_untouched(name: str) -> None:
    helpers.assert_deterministic_and_rng_untouched(name, PHOTO)


# ---------------------------------------------------------------------------- edge inputs


@pytest.mark.parametrize("name", NAMES)
def test_edge_inputs(name: str) -> None:
    assert is_grey(run(name, grey_rgb(PHOTO), 4))
    flat_grey = np.full((40, 40, 3), 128, np.uint8)
    assert (run(name, flat_grey, 5) == 128).all()  # mean of itself: unchanged
    black = np.zeros((32, 32, 3), np.uint8)
    if "stretch" in name:
        assert not run(name, black, 5).any()
    white = np.full((32, 32, 3), 255, np.uint8)
    out_w = run(name, white, 5)
    assert (out_w == out_w[0, 0]).all() and out_w.any()  # flat stays flat, never black
    helpers.assert_tiny_keeps_its_shape(name, PHOTO)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(name: str, view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(name, PHOTO, view)
