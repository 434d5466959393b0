"""Tests of distortions/blur.py: the kernels with explicit parameters, the swap scheme,
seeding, the spec's parameter tables, and edge inputs (flat, 32 x 32, grey, views)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.ndimage import zoom as scipy_zoom
from skimage.filters import gaussian as sk_gaussian

import distortions
from distortions import REGISTRY, blur
from tests.distortions import helpers
from tests.distortions.helpers import photo, psnr

BLUR_NAMES = ("blur_gaussian", "blur_motion", "blur_glass", "blur_lens", "blur_zoom", "blur_jitter")
RANDOM = {"blur_motion", "blur_glass", "blur_jitter"}

PHOTO = photo("chelsea", 64)  # real photo, 64 x 96, read-only


def _sorted_pixels(img: np.ndarray) -> np.ndarray:
    flat = img.reshape(-1, img.shape[-1])
    return flat[np.lexsort(flat.T[::-1])]


# ------------------------------------------------------------------------------ tables


def test_tables_equal_the_spec() -> None:
    assert [tuple(p) for p in blur._GAUSSIAN] == [(1,), (2,), (3,), (4,), (5,)]
    # re-parametrised (DQ-495K: [(5, 3), (10, 5), (15, 7), (15, 9), (20, 12)], where 3 and 4
    # overlapped): every step its own line length, sigma ratio >= 1.5
    assert [tuple(p) for p in blur._MOTION] == [(3, 2), (6, 3.5), (10, 6), (16, 9.5), (24, 15)]
    assert [tuple(p) for p in blur._GLASS] == [
        (0.7, 1, 1), (0.9, 2, 1), (1.2, 2, 2), (1.4, 3, 2), (1.6, 4, 2)
    ]
    assert [tuple(p) for p in blur._LENS] == [(2,), (3,), (4,), (6,), (8,)]
    assert [tuple(p) for p in blur._ZOOM] == [(1.02,), (1.04,), (1.08,), (1.14,), (1.20,)]
    assert [tuple(p) for p in blur._JITTER] == [(1,), (2,), (3,), (4,), (5,)]
    # named fields, and the registry serves exactly these tables
    assert blur._GLASS[4].shift == 4 and blur._MOTION[4].sigma == 15
    for name, table in [("blur_gaussian", blur._GAUSSIAN), ("blur_motion", blur._MOTION),
                        ("blur_glass", blur._GLASS), ("blur_lens", blur._LENS),
                        ("blur_zoom", blur._ZOOM), ("blur_jitter", blur._JITTER)]:
        spec = REGISTRY[name]
        assert spec.table == table and spec.category == "blur"
        assert spec.random == (name in RANDOM), name


# ------------------------------------------------------------------------------ gaussian


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_matches_skimage(severity: int) -> None:
    """Same result as the original's skimage.filters.gaussian (to rounding)."""
    sigma = blur._GAUSSIAN[severity - 1].sigma
    ref = np.clip(sk_gaussian(PHOTO / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255
    out = distortions.apply(PHOTO, "blur_gaussian", severity, np.random.default_rng(0))
    assert np.abs(out.astype(np.float64) - ref).max() <= 1.0


# ------------------------------------------------------------------------------ motion


@pytest.mark.parametrize("angle", [0.0, 30.0, -45.0, 75.0, 90.0, -90.0])
def test_motion_kernel_is_a_normalised_line(angle: float) -> None:
    kernel, (ax, ay) = blur.motion_kernel(radius=10, sigma=5.0, angle=angle)
    assert kernel.dtype == np.float32
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    # step 0 (the anchor) carries the largest Gaussian weight exp(0), normalised; near-axis
    # steps that round to one offset add up (as in ImageMagick), so the anchor need not be max
    steps = np.arange(21)
    weights = np.exp(-(steps**2) / 50.0)
    assert kernel[ay, ax] >= weights[0] / weights.sum() - 1e-6
    ys, xs = np.nonzero(kernel)
    dx, dy = xs - ax, ys - ay
    a = math.radians(angle)
    # every tap within rounding of the ray from the anchor along (cos a, sin a)
    assert np.all(np.abs(dx * math.sin(a) - dy * math.cos(a)) <= 0.75)
    assert np.all(dx * math.cos(a) + dy * math.sin(a) >= -0.5)
    assert np.hypot(dx, dy).max() == pytest.approx(20, abs=0.75)  # 2 * radius steps


@pytest.mark.parametrize("angle", [0.0, 35.0, -60.0, 90.0])
def test_motion_blur_spreads_a_dot_along_the_angle(angle: float) -> None:
    img = np.zeros((81, 81, 3), np.uint8)
    img[40, 40] = 255
    out = blur._motion_blur(img, radius=10, sigma=8.0, angle=angle)[:, :, 0].astype(np.float64)
    ys, xs = np.nonzero(out)
    assert out[40, 40] > 0
    # principal direction of the streak (weighted), compared modulo 180 degrees
    w = out[ys, xs]
    x0, y0 = np.average(xs, weights=w), np.average(ys, weights=w)
    cov = np.cov(np.vstack([xs - x0, ys - y0]), aweights=w)
    evals, evecs = np.linalg.eigh(cov)
    direction = math.degrees(math.atan2(evecs[1, -1], evecs[0, -1]))
    diff = (direction - angle + 90) % 180 - 90
    assert abs(diff) < 3, (direction, angle)
    assert evals[0] < 0.05 * evals[-1]  # a line, not a blob
    # out(y, x) gathers img(y + dy, x + dx): the streak trails opposite (cos a, sin a)
    a = math.radians(angle)
    assert (x0 - 40) * math.cos(a) + (y0 - 40) * math.sin(a) < -2


def test_motion_blur_matches_imagemagick() -> None:
    """The same semantics as Wand's motion_blur (ImageMagick), the tool ImageNet-C used."""
    try:
        from wand.image import Image as WandImage
    except ImportError:  # pragma: no cover - Wand is a dependency; libMagickWand may be absent
        pytest.skip("Wand / ImageMagick not available")
    for radius, sigma, angle in [(5, 3.0, 0.0), (10, 5.0, 37.0), (15, 9.0, -63.0)]:
        with WandImage.from_array(np.ascontiguousarray(PHOTO)) as wimg:
            wimg.motion_blur(radius=radius, sigma=sigma, angle=angle)
            ref = np.array(wimg)[:, :, :3]
        out = blur._motion_blur(PHOTO, radius=radius, sigma=sigma, angle=angle)
        assert np.abs(out.astype(int) - ref).max() <= 1, (radius, sigma, angle)


def test_motion_blur_draws_its_angle_from_rng() -> None:
    a = distortions.apply(PHOTO, "blur_motion", 3, np.random.default_rng(11))
    b = distortions.apply(PHOTO, "blur_motion", 3, np.random.default_rng(11))
    c = distortions.apply(PHOTO, "blur_motion", 3, np.random.default_rng(12))
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    angle = float(np.random.default_rng(11).uniform(-90, 90))
    ref = blur._motion_blur(PHOTO, radius=10, sigma=6.0, angle=angle)
    np.testing.assert_array_equal(a, ref)


def test_motion_blur_small_image_keeps_brightness() -> None:
    """Shifts longer than the image take the replicated edge (no weight is dropped)."""
    img = np.full((32, 32, 3), 200, np.uint8)
    out = blur._motion_blur(img, radius=20, sigma=12.0, angle=45.0)
    np.testing.assert_array_equal(out, img)


# ------------------------------------------------------------------------------ lens


@pytest.mark.parametrize("radius", [2, 3, 4, 6, 8, 10])
def test_lens_kernel_is_a_normalised_disk(radius: int) -> None:
    kernel = blur.lens_kernel(radius)
    side = max(17, 2 * radius + 1)
    assert kernel.shape == (side, side)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    c = np.arange(side) - side // 2
    inside = c[:, None] ** 2 + c[None, :] ** 2 <= radius**2
    np.testing.assert_array_equal(kernel > 0, inside)
    assert np.ptp(kernel[inside]) == 0  # uniform weight over the disk


def test_lens_blur_is_the_disk_convolution() -> None:
    ref = cv2.filter2D(PHOTO.astype(np.float64) / 255, -1, blur.lens_kernel(4).astype(np.float64))
    out = blur._lens_blur(PHOTO, radius=4)
    assert np.abs(out - ref * 255).max() <= 1.0


# ------------------------------------------------------------------------------ zoom


def test_zoom_factors() -> None:
    np.testing.assert_allclose(blur._zoom_factors(1.02), [1.0, 1.02])
    np.testing.assert_allclose(blur._zoom_factors(1.08), [1.0, 1.02, 1.04, 1.06, 1.08])
    assert len(blur._zoom_factors(1.14)) == 8
    np.testing.assert_allclose(blur._zoom_factors(1.20)[-1], 1.20)
    assert len(blur._zoom_factors(1.20)) == 11
    np.testing.assert_allclose(blur._zoom_factors(1.0), [1.0])


def test_zoom_at_max_one_is_identity() -> None:
    np.testing.assert_array_equal(blur._zoom_blur(PHOTO, max_zoom=1.0), PHOTO)


def _original_zoom_blur(img: np.ndarray, max_zoom: float) -> np.ndarray:
    """The original's algorithm: scipy crop-and-zoom per factor, mean with the image."""
    f = img.astype(np.float64) / 255
    h, w = f.shape[:2]
    acc = f.copy()
    factors = blur._zoom_factors(max_zoom)
    for z in factors:
        ch, cw = math.ceil(h / z), math.ceil(w / z)
        top, left = (h - ch) // 2, (w - cw) // 2
        acc += scipy_zoom(f[top : top + ch, left : left + cw], (z, z, 1), order=1)[:h, :w]
    return np.clip(acc / (len(factors) + 1), 0, 1) * 255


@pytest.mark.parametrize("max_zoom", [1.04, 1.20])
def test_zoom_blur_keeps_the_original_semantics(max_zoom: float) -> None:
    # at the dataset's 224 px: the original's crop is centred to the integer pixel (and its
    # scipy zoom aligns corners), ours exactly; 1-2.5 levels apart on average. (On tiny
    # images the original's off-centre crop adds a shift, so the gap grows there.)
    img = photo("astronaut", 224)
    out = blur._zoom_blur(img, max_zoom=max_zoom)
    ref = _original_zoom_blur(img, max_zoom)
    assert np.abs(out - ref).mean() < 3.0
    assert abs(psnr(out, img) - psnr(np.rint(ref).astype(np.uint8), img)) < 0.5


def test_zoom_blur_leaves_the_centre_and_blurs_the_corners() -> None:
    img = photo("astronaut", 65)  # odd side: the centre is a pixel
    out = blur._zoom_blur(img, max_zoom=1.2)
    assert np.abs(out[32, 32].astype(int) - img[32, 32]).max() <= 1
    corner = np.abs(out[:8, :8].astype(int) - img[:8, :8]).mean()
    centre = np.abs(out[28:37, 28:37].astype(int) - img[28:37, 28:37]).mean()
    assert corner > 2 * centre


# ------------------------------------------------------------------------------ pixel swaps


def test_offsets_are_uniform_on_the_closed_interval() -> None:
    for shift in (1, 3, 5):
        off = blur._draw_offsets(np.random.default_rng(0), (120, 130), shift=shift, iterations=2)
        assert off.shape == (2, 2, 120 - 2 * shift, 130 - 2 * shift)
        values, counts = np.unique(off, return_counts=True)
        np.testing.assert_array_equal(values, np.arange(-shift, shift + 1))  # both ends drawn
        assert abs(float(off.mean())) < 0.05  # the original's [-shift, shift) had mean -0.5
        assert counts.min() > 0.8 * counts.mean()
    again = blur._draw_offsets(np.random.default_rng(0), (120, 130), shift=5, iterations=2)
    np.testing.assert_array_equal(off, again)


def test_swaps_with_zero_offsets_are_identity() -> None:
    off = np.zeros((1, 2, 64 - 6, 96 - 6), np.int16)
    np.testing.assert_array_equal(blur._local_swaps(PHOTO, shift=3, offsets=off), PHOTO)


@pytest.mark.parametrize(("dy", "dx"), [(3, -3), (-3, 3), (0, 1), (-2, 0)])
def test_one_swap_exchanges_exactly_two_pixels(dy: int, dx: int) -> None:
    shift = 3
    off = np.zeros((1, 2, 64 - 2 * shift, 96 - 2 * shift), np.int16)
    y, x = 20, 30
    off[0, :, y - shift, x - shift] = (dy, dx)
    out = blur._local_swaps(PHOTO, shift=shift, offsets=off)
    expected = PHOTO.copy()
    expected[y, x], expected[y + dy, x + dx] = PHOTO[y + dy, x + dx], PHOTO[y, x]
    np.testing.assert_array_equal(out, expected)


def _sequential_scan(shape: tuple[int, int], shift: int, offsets: np.ndarray) -> np.ndarray:
    """One-by-one reference of the documented visiting order (slow, small images only)."""
    h, w = shape
    perm = list(range(h * w))
    step = 2 * shift + 1
    for dyx in offsets:
        for a in range(step - 1, -1, -1):
            for b in range(step - 1, -1, -1):
                for y in range(shift + a, h - shift, step):
                    for x in range(shift + b, w - shift, step):
                        dy, dx = (int(v) for v in dyx[:, y - shift, x - shift])
                        p, q = y * w + x, (y + dy) * w + x + dx
                        perm[p], perm[q] = perm[q], perm[p]
    return np.array(perm)


@pytest.mark.parametrize(("shift", "iterations"), [(1, 1), (2, 2), (4, 1)])
def test_vectorised_rounds_equal_the_one_by_one_scan(shift: int, iterations: int) -> None:
    shape = (33, 37)
    rng = np.random.default_rng(shift)
    off = blur._draw_offsets(rng, shape, shift=shift, iterations=iterations)
    got = blur._swap_permutation(shape, shift=shift, offsets=off)
    np.testing.assert_array_equal(got, _sequential_scan(shape, shift, off))


@pytest.mark.parametrize("shift", [1, 3, 5])
def test_swaps_keep_the_pixels_and_stay_local(shift: int) -> None:
    h, w = 64, 96
    off = blur._draw_offsets(np.random.default_rng(4), (h, w), shift=shift, iterations=1)
    # every output pixel is an input pixel, each used once: the multiset is kept
    out = blur._local_swaps(PHOTO, shift=shift, offsets=off)
    np.testing.assert_array_equal(_sorted_pixels(out), _sorted_pixels(PHOTO))
    distinct = len(np.unique(PHOTO.reshape(-1, 3), axis=0))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) == distinct  # no value duplicated
    # displacements, from an image of pixel indices
    idx = np.arange(h * w).reshape(h, w, 1)
    src = blur._local_swaps(idx, shift=shift, offsets=off)[:, :, 0]
    sy, sx = np.divmod(src, w)
    yy, xx = np.mgrid[:h, :w]
    disp = np.maximum(np.abs(sy - yy), np.abs(sx - xx))
    # A single swap spans at most `shift`; as in any sequential scan, chained swaps carry
    # some values further. The original's raster-order scan (with a real swap) on this
    # image: 80-87% moved, 80-84% within shift, 94-97% within 2 shift, max 7 shift.
    assert (disp > 0).mean() > 0.75
    assert np.median(disp[disp > 0]) <= shift
    assert (disp <= shift).mean() > 0.65
    assert (disp <= 2 * shift).mean() > 0.9
    assert disp.max() <= 6 * shift


def test_swaps_reject_bad_offsets() -> None:
    with pytest.raises(ValueError, match="shape"):
        blur._local_swaps(PHOTO, shift=2, offsets=np.zeros((1, 2, 10, 10), np.int16))
    off = np.zeros((1, 2, 60, 92), np.int16)
    off[0, 0, 5, 5] = 3
    with pytest.raises(ValueError, match=r"\[-2, 2\]"):
        blur._local_swaps(PHOTO, shift=2, offsets=off)


@pytest.mark.parametrize("severity", [1, 5])
def test_jitter_keeps_the_pixel_multiset(severity: int) -> None:
    out = distortions.apply(PHOTO, "blur_jitter", severity, np.random.default_rng(1))
    np.testing.assert_array_equal(_sorted_pixels(out), _sorted_pixels(PHOTO))
    assert (out != PHOTO).any(axis=2).mean() > 0.5


def test_glass_blur_is_blur_swap_blur() -> None:
    p = blur._GLASS[2]
    rng = np.random.default_rng(9)
    off = blur._draw_offsets(rng, PHOTO.shape[:2], shift=p.shift, iterations=p.iterations)
    out = distortions.apply(PHOTO, "blur_glass", 3, np.random.default_rng(9))
    ref = blur._glass_blur(PHOTO, sigma=p.sigma, shift=p.shift, offsets=off)
    np.testing.assert_array_equal(out, ref)
    # the swap pass adds damage beyond the two Gaussian blurs alone
    no_swap = blur._glass_blur(PHOTO, sigma=p.sigma, shift=p.shift, offsets=np.zeros_like(off))
    assert psnr(out, PHOTO) < psnr(no_swap, PHOTO) - 1.0


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_blurs_are_reproducible(name: str) -> None:
    a = distortions.apply(PHOTO, name, 4, np.random.default_rng(123))
    b = distortions.apply(PHOTO, name, 4, np.random.default_rng(123))
    c = distortions.apply(PHOTO, name, 4, np.random.default_rng(124))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


# ------------------------------------------------------------------------------ severity


@pytest.mark.parametrize("name", BLUR_NAMES)
def test_severity_lowers_psnr(name: str) -> None:
    values = [psnr(distortions.apply(PHOTO, name, s, np.random.default_rng(2)), PHOTO)
              for s in range(1, 6)]
    assert all(b < a for a, b in zip(values, values[1:])), values
    assert values[-1] < 30


# ------------------------------------------------------------------------------ edge inputs


@pytest.mark.parametrize("name", BLUR_NAMES)
def test_flat_image_stays_flat(name: str) -> None:
    flat = np.tile(np.array([200, 30, 90], np.uint8), (40, 48, 1))
    for severity in range(1, 6):
        out = distortions.apply(flat, name, severity, np.random.default_rng(0))
        np.testing.assert_array_equal(out, flat)


@pytest.mark.parametrize("name", BLUR_NAMES)
def test_grey_stays_grey_and_tiny_images_work(name: str) -> None:
    for severity in (1, 5):
        _, _, tiny, small = helpers.grey_and_tiny_results(name, PHOTO, severity)
        assert 0.5 * tiny.mean() < small.mean() < 1.5 * tiny.mean()


@pytest.mark.parametrize("name", BLUR_NAMES)
def test_functions_take_views_without_writing(name: str) -> None:
    for view in helpers.VIEWS:
        helpers.assert_view_gives_the_contiguous_result(
            name, PHOTO, view, severity=3, seed=6, read_only=True
        )
