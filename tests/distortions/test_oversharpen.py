"""Tests of distortions/oversharpen.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from distortions import oversharpen
from distortions.registry import REGISTRY

PHOTO = cv2.resize(data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA)
CAT = cv2.resize(data.chelsea(), (120, 80), interpolation=cv2.INTER_AREA)
SPEC_AMOUNTS = [2, 2.8, 4, 6, 8]  # ../shared/spec/distortions.md


def _run(img: np.ndarray, severity: int) -> np.ndarray:
    return REGISTRY["oversharpen"].fn(img, severity, np.random.default_rng(0))


def _high_freq_energy(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def test_table_equals_the_spec() -> None:
    spec = REGISTRY["oversharpen"]
    assert spec.category == "oversharpen"
    assert spec.random is False
    assert [row.amount for row in spec.table] == SPEC_AMOUNTS
    assert [tuple(row) for row in spec.table] == [(a,) for a in SPEC_AMOUNTS]


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
    psnr = [_psnr(_run(img, s), img) for s in range(1, 6)]
    assert (np.diff(psnr) < 0).all(), psnr


def test_deterministic_and_rng_untouched() -> None:
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    a = REGISTRY["oversharpen"].fn(PHOTO, 3, rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(a, _run(PHOTO, 3))


def test_edge_inputs() -> None:
    for value in ((180, 120, 60), (0, 0, 0), (255, 255, 255)):
        flat = np.tile(np.array(value, np.uint8), (33, 47, 1))
        np.testing.assert_array_equal(_run(flat, 5), flat)  # nothing to sharpen
    grey = np.repeat(cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    out = _run(grey, 5)
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    tiny = np.ascontiguousarray(PHOTO[:32, :32])
    assert _run(tiny, 5).shape == (32, 32, 3)


@pytest.mark.parametrize("view", ["step2", "flipped"])
def test_non_contiguous_views(view: str) -> None:
    base = PHOTO.copy()
    v = base[::2, ::2] if view == "step2" else base[:, ::-1]
    np.testing.assert_array_equal(_run(v, 4), _run(np.ascontiguousarray(v), 4))
    np.testing.assert_array_equal(base, PHOTO)
