"""Tests of distortions/noise.py: kernels with explicit parameters, statistics of the noise,
severity order, seeding, parameter tables and edge inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import stats

import distortions
from distortions import noise
from distortions.registry import REGISTRY
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, grey_rgb, photo, psnr

NAMES = (
    "noise_gaussian_RGB",
    "noise_gaussian_YCrCb",
    "noise_speckle",
    "noise_spatially_correlated",
    "noise_poisson",
    "noise_impulse",
)
# The spec's table (../shared/spec/distortions.md), written out.
SPEC_TABLES = {
    "noise_gaussian_RGB": [(0.05,), (0.10,), (0.15,), (0.20,), (0.25,)],
    "noise_gaussian_YCrCb": [(0.05, 1.0), (0.06, 1.45), (0.07, 1.9), (0.08, 2.35), (0.09, 2.8)],
    "noise_speckle": [(0.14,), (0.21,), (0.28,), (0.35,), (0.42,)],
    "noise_spatially_correlated": [(0.08,), (0.11,), (0.14,), (0.18,), (0.22,)],
    "noise_poisson": [(80,), (60,), (40,), (25,), (15,)],
    "noise_impulse": [(0.01,), (0.03,), (0.05,), (0.07,), (0.10,)],
}

PHOTO = photo("astronaut", (96, 96))
GREY = np.full((128, 128, 3), 128, np.uint8)  # mid-grey: no clipping at small sigma


def _normals(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


# ------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("name", NAMES)
def test_table_equals_the_spec(name: str) -> None:
    spec = REGISTRY[name]
    assert spec.category == "noise"
    assert spec.random is True
    assert [tuple(row) for row in spec.table] == SPEC_TABLES[name]
    assert spec.fn.__module__ == "distortions.noise"


def test_table_fields_are_named() -> None:
    assert REGISTRY["noise_gaussian_YCrCb"].params(3).chroma_factor == 1.9
    assert REGISTRY["noise_poisson"].params(5).lam == 15
    assert REGISTRY["noise_impulse"].params(2).amount == 0.03


# ----------------------------------------------------------------------------- kernels


def test_additive_noise_has_the_requested_sigma_and_keeps_the_mean() -> None:
    for sigma in (0.02, 0.05, 0.1):
        out = noise._additive(GREY, _normals(GREY.shape), sigma=sigma)
        diff = (out.astype(np.float64) - 128) / 255
        assert diff.std() == pytest.approx(sigma, rel=0.03)
        # rounded, not truncated: no -0.5 level shift of the mean
        assert abs(out.mean() - 128) < 0.3


def test_additive_noise_is_independent_per_channel() -> None:
    out = noise._additive(GREY, _normals(GREY.shape), sigma=0.05).astype(np.float64)
    r, g, b = (out[:, :, i].ravel() for i in range(3))
    assert abs(np.corrcoef(r, g)[0, 1]) < 0.03
    assert abs(np.corrcoef(g, b)[0, 1]) < 0.03


def test_ycrcb_noise_is_stronger_in_chroma() -> None:
    sigma_y, sigma_c = 0.02, 0.05
    out = noise._additive_ycrcb(GREY, _normals(GREY.shape), sigma_y=sigma_y, sigma_c=sigma_c)
    ycc = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2YCrCb)
    assert ycc[:, :, 0].std() == pytest.approx(sigma_y, rel=0.08)
    assert ycc[:, :, 1].std() == pytest.approx(sigma_c, rel=0.08)
    assert ycc[:, :, 2].std() == pytest.approx(sigma_c, rel=0.08)


def test_speckle_is_proportional_to_the_signal() -> None:
    img = np.zeros((128, 128, 3), np.uint8)
    img[:, :64] = 64
    img[:, 64:] = 0
    out = noise._speckle(img, _normals(img.shape), scale=0.2).astype(np.float64)
    assert (out[:, 64:] == 0).all()  # black stays black
    assert out[:, :64].std() == pytest.approx(64 * 0.2, rel=0.05)
    half = noise._speckle(GREY, _normals(GREY.shape), scale=0.1).astype(np.float64)
    assert half.std() == pytest.approx(128 * 0.1, rel=0.05)


def test_spatially_correlated_noise_is_smoothed_by_a_3x3_box() -> None:
    sigma = 0.1
    out = noise._correlated(GREY, _normals(GREY.shape), sigma=sigma).astype(np.float64) / 255
    inner = out[2:-2, 2:-2, 0]
    assert inner.std() == pytest.approx(sigma / 3, rel=0.08)
    # neighbours share 6 of the 9 box samples: correlation 2/3
    lag1 = np.corrcoef(inner[:, :-1].ravel(), inner[:, 1:].ravel())[0, 1]
    assert lag1 == pytest.approx(2 / 3, abs=0.05)


@pytest.mark.parametrize("lam", [80, 15])
@pytest.mark.parametrize("value", [0, 1, 37, 128, 255])
def test_poisson_counts_follow_the_poisson_law(lam: float, value: int) -> None:
    img = np.full((200, 200), value, np.uint8)
    u = np.random.default_rng(value).random(img.shape)
    counts = noise._poisson_counts(img, u, lam=lam)
    mu = value * lam / 255
    assert counts.dtype.kind == "i"
    if value == 0:
        assert (counts == 0).all()
        return
    assert counts.mean() == pytest.approx(mu, rel=0.03, abs=0.01)
    assert counts.var() == pytest.approx(mu, rel=0.06, abs=0.01)
    # the whole law, not only two moments: frequencies vs the Poisson pmf
    k = np.arange(counts.max() + 1)
    freq = np.bincount(counts.ravel(), minlength=k.size) / counts.size
    assert np.abs(freq - stats.poisson.pmf(k, mu)).max() < 0.006


def test_poisson_inverse_cdf_matches_scipy_quantiles() -> None:
    """Inversion is exact: each uniform maps to the Poisson quantile at that probability."""
    lam = 40.0
    values = np.repeat(np.arange(256, dtype=np.uint8), 64).reshape(128, 128)
    u = np.random.default_rng(1).random(values.shape)
    counts = noise._poisson_counts(values, u.copy(), lam=lam)
    want = stats.poisson.ppf(u, values * lam / 255)
    want[values == 0] = 0
    np.testing.assert_array_equal(counts, want.astype(int))


def test_poisson_noise_variance_is_x_over_lam() -> None:
    lam = 25
    out = noise._poisson_scale(
        noise._poisson_counts(GREY, np.random.default_rng(0).random(GREY.shape), lam=lam),
        lam=lam,
    )
    x = out.astype(np.float64) / 255
    assert x.var() == pytest.approx((128 / 255) / lam, rel=0.05)
    assert x.mean() == pytest.approx(128 / 255, abs=0.005)


def test_impulse_replaces_the_requested_fraction_half_salt_half_pepper() -> None:
    img = np.full((200, 200, 3), 100, np.uint8)
    u = np.random.default_rng(3).random(img.shape, dtype=np.float32)
    out = noise._impulse(img, u, amount=0.1)
    hit = out != 100
    assert hit.mean() == pytest.approx(0.1, rel=0.05)
    assert (out == 255).mean() == pytest.approx(0.05, rel=0.07)
    assert (out == 0).mean() == pytest.approx(0.05, rel=0.07)
    assert set(np.unique(out)) == {0, 100, 255}
    # per channel, as skimage's s&p: all three channels of a pixel hit ~ amount ** 3
    assert hit.all(axis=2).mean() < 0.003


def test_impulse_kernel_is_deterministic_in_its_draws() -> None:
    u = np.linspace(0, 1, PHOTO.size, endpoint=False, dtype=np.float32).reshape(PHOTO.shape)
    out = noise._impulse(PHOTO, u, amount=0.05)
    flat_u, flat_out, flat_in = u.ravel(), out.ravel(), PHOTO.ravel()
    assert (flat_out[flat_u < 0.025] == 255).all()
    assert (flat_out[(flat_u >= 0.025) & (flat_u < 0.05)] == 0).all()
    np.testing.assert_array_equal(flat_out[flat_u >= 0.05], flat_in[flat_u >= 0.05])


# ----------------------------------------------------------------- functions, severity, seeds


@pytest.mark.parametrize("name", NAMES)
def test_psnr_falls_with_severity(name: str) -> None:
    fn = REGISTRY[name].fn
    values = [psnr(fn(PHOTO, s, np.random.default_rng(0)), PHOTO) for s in range(1, 6)]
    assert np.isfinite(values).all(), values
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 25


@pytest.mark.parametrize("name", NAMES)
def test_seeded_reproducible_and_seed_dependent(name: str) -> None:
    fn = REGISTRY[name].fn
    state = np.random.get_state()[1].copy()
    a = fn(PHOTO, 3, np.random.default_rng(11))
    b = fn(PHOTO, 3, np.random.default_rng(11))
    c = fn(PHOTO, 3, np.random.default_rng(12))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched


def test_impulse_reproducible_through_the_public_api() -> None:
    """The original's s&p drew from a fresh generator: here the sample seed decides."""
    a = distortions.apply(PHOTO, "noise_impulse", 5, np.random.default_rng(5))
    b = distortions.apply(PHOTO, "noise_impulse", 5, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- edge inputs


def _edge_images() -> dict[str, np.ndarray]:
    return {
        "flat_colour": np.tile(np.array([180, 120, 60], np.uint8), (40, 48, 1)),
        "tiny_32": np.ascontiguousarray(PHOTO[:32, :32]),
        "grey_rgb": grey_rgb(PHOTO),
        "black": np.zeros((32, 40, 3), np.uint8),
        "white": np.full((32, 40, 3), 255, np.uint8),
    }


@pytest.mark.parametrize("name", NAMES)
def test_edge_inputs(name: str) -> None:
    fn = REGISTRY[name].fn
    for kind, img in _edge_images().items():
        before = img.copy()
        out = fn(img, 5, np.random.default_rng(0))
        np.testing.assert_array_equal(img, before)
        assert out.shape == img.shape and out.dtype == np.uint8, kind
        # noise keeps the level on average (clipping aside): a flat colour stays near itself
        if kind == "flat_colour":
            assert np.abs(out.mean(axis=(0, 1)) - [180, 120, 60]).max() < 40, name
    black = fn(_edge_images()["black"], 3, np.random.default_rng(0))
    if name in ("noise_speckle", "noise_poisson"):
        assert not black.any()  # signal-dependent noise: no signal, no noise


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(name: str, view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(name, PHOTO, view, seed=9)
