"""Tests of distortions/oversharpen.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from distortions import oversharpen
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, photo, psnr, run

NAME = "oversharpen"
PHOTO = photo("astronaut", (96, 96))
CAT = photo("chelsea", (120, 80))
SPEC_AMOUNTS = [2, 2.8, 4, 6, 8]  # ../shared/spec/distortions.md


def _run(img: np.ndarray, severity: int) -> np.ndarray:
    return run(NAME, img, severity)


def _high_freq_energy(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_table_equals_the_spec() -> None:
    helpers.assert_one_field_table(NAME, "oversharpen", "amount", SPEC_AMOUNTS)


@pytest.mark.parametrize("amount", SPEC_AMOUNTS)
def test_unsharp_mask_formula(amount: float) -> None:
    """(1 + a) * img - a * blur, blur = 5 x 5 Gaussian with sigma from the kernel size,
    computed on uint8; result rounded and clipped."""
    img = PHOTO.astype(np.float64)
    blurred = cv2.GaussianBlur(PHOTO, (5, 5), 0).astype(np.float64)  # uint8, as orig.
    want = np.clip(np.rint((1 + amount) * img - amount * blurred), 0, 255)
    out = oversharpen._unsharp(PHOTO, amount=amount)
    assert np.abs(out - want).max() <= 1  # float32 vs float64 at exact halves
    # sigma 0 with a 5-tap kernel: OpenCV's tabulated binomial [1, 4, 6, 4, 1] / 16
    g = np.array([1, 4, 6, 4, 1], np.float64) / 16
    exact = cv2.filter2D(img, -1, np.outer(g, g), borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(blurred - exact).max() <= 0.5  # rounded to uint8


@pytest.mark.parametrize("img", [PHOTO, CAT], ids=["astronaut", "chelsea"])
def test_high_frequency_energy_rises_and_psnr_falls_with_severity(img: np.ndarray) -> None:
    energy = [_high_freq_energy(img)] + [_high_freq_energy(_run(img, s)) for s in range(1, 6)]
    assert (np.diff(energy) > 0).all(), energy
    assert energy[1] > 2 * energy[0]
    values = [psnr(_run(img, s), img) for s in range(1, 6)]
    assert np.isfinite(values).all() and (np.diff(values) < 0).all(), values


def test_deterministic_and_rng_untouched() -> None:
    helpers.assert_deterministic_and_rng_untouched(NAME, PHOTO)


def test_edge_inputs() -> None:
    helpers.assert_flat_grey_and_tiny_inputs(NAME, PHOTO)  # flat: nothing to sharpen


@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(NAME, PHOTO, view)
