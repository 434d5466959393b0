"""Tests of distortions/quantization.py: exact multi-level Otsu, level rules, flat inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.filters import threshold_multiotsu

import distortions
from distortions import quantization as q
from tests.distortions.helpers import photo as demo_photo
from tests.distortions.helpers import psnr

NAMES = ("quantization_otsu", "quantization_median", "quantization_hist")


PHOTOS = {n: demo_photo(n, 96) for n in ("astronaut", "chelsea", "coffee")}  # read-only


# --------------------------------------------------------------------------- Otsu thresholds


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize("classes", [3, 4, 5, 6])
def test_thresholds_equal_skimage(photo: str, classes: int) -> None:
    # skimage's exhaustive search is fast enough up to ~6 classes on 30 bins.
    img = PHOTOS[photo]
    for c in range(3):
        ours = q.multiotsu_thresholds(img[:, :, c], classes)
        ref = threshold_multiotsu(img[:, :, c] / 255.0, classes=classes, nbins=30)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_thresholds_equal_skimage_on_original_float32_input() -> None:
    # The original build passed the channel as float32 in 0..255: same bins, scaled by 255.
    img = PHOTOS["chelsea"]
    for c in range(3):
        ours = q.multiotsu_thresholds(img[:, :, c], 5) * 255
        ref = threshold_multiotsu(img[:, :, c].astype(np.float32), classes=5, nbins=30)
        np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_thresholds_equal_skimage_when_bins_equal_classes() -> None:
    # As many non-empty bins as classes: skimage takes every non-empty bin as a class.
    # 90 and 91 share a bin: three non-empty bins.
    chan = np.repeat(np.array([12, 90, 91, 200], np.uint8), 25).reshape(10, 10)
    np.testing.assert_allclose(
        q.multiotsu_thresholds(chan, 3),
        threshold_multiotsu(chan / 255.0, classes=3, nbins=30),
        atol=1e-9,
    )
    # one class more than bins: skimage refuses, we degrade to the three classes there are
    with pytest.raises(ValueError, match="cannot be thresholded in 4 classes"):
        threshold_multiotsu(chan / 255.0, classes=4, nbins=30)
    np.testing.assert_array_equal(q.multiotsu_thresholds(chan, 4), q.multiotsu_thresholds(chan, 3))


def _brute_force_objective(prob: np.ndarray, classes: int) -> float:
    """Best between-class variance by exhaustive search (skimage's objective)."""
    weight = np.arange(prob.size, dtype=np.float64)
    weight[0] = 1.0  # skimage's first-moment table (see quantization._otsu_dp)

    def cost(i: int, j: int) -> float:
        if i == 0 and j == 0:
            return 0.0
        p = prob[i : j + 1].sum()
        s = (prob[i : j + 1] * weight[i : j + 1]).sum()
        return s * s / p if p > 0 else 0.0

    best = -1.0
    for cut in itertools.combinations(range(prob.size - 1), classes - 1):
        bounds = (-1, *cut, prob.size - 1)
        best = max(best, sum(cost(bounds[k] + 1, bounds[k + 1]) for k in range(classes)))
    return best


@pytest.mark.parametrize("seed", range(4))
def test_dp_reaches_the_exhaustive_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prob = rng.random(12) * (rng.random(12) > 0.2)
    prob /= prob.sum()
    for classes in (2, 3, 4):
        idx = q._otsu_dp(prob, classes)
        bounds = (-1, *idx, prob.size - 1)
        weight = np.arange(prob.size, dtype=np.float64)
        weight[0] = 1.0
        got = 0.0
        for k in range(classes):
            i, j = bounds[k] + 1, bounds[k + 1]
            p = prob[i : j + 1].sum()
            s = (prob[i : j + 1] * weight[i : j + 1]).sum()
            got += 0.0 if (i == 0 and j == 0) or p == 0 else s * s / p
        assert got == pytest.approx(_brute_force_objective(prob, classes), rel=1e-12)


def test_multiotsu_thresholds_refuses_a_flat_channel() -> None:
    with pytest.raises(ValueError, match="flat"):
        q.multiotsu_thresholds(np.full((8, 8), 7, np.uint8), 3)


# --------------------------------------------------------------------------- level rules


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_levels_and_damage_order(name: str, photo: str) -> None:
    img = PHOTOS[photo]
    rng = np.random.default_rng(0)
    outs = [distortions.apply(img, name, s, rng) for s in range(1, 6)]
    values = [psnr(o, img) for o in outs]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    if name != "quantization_median":
        # Class means keep each channel's brightness (the original darkened or brightened by
        # 25-33 levels); only rounding of the levels remains.
        for o in outs:
            assert abs(float(o.mean()) - float(img.mean())) < 1.0
    # fewer distinct values per channel at every severity, and at most the table's count
    levels = {"quantization_otsu": q._OTSU, "quantization_median": q._MEDIAN}
    if name in levels:
        for o, row in zip(outs, levels[name], strict=True):
            for c in range(3):
                assert len(np.unique(o[:, :, c])) <= row[0]


def test_otsu_levels_are_class_means() -> None:
    img = PHOTOS["astronaut"]
    out = q.quantization_otsu(img, 4, np.random.default_rng(0))
    for c in range(3):
        for level in np.unique(out[:, :, c]):
            members = img[:, :, c][out[:, :, c] == level]
            assert abs(float(members.mean()) - int(level)) <= 0.5 + 1e-9


def test_hist_bins_hold_about_equal_counts() -> None:
    img = PHOTOS["coffee"]
    out = q.quantization_hist(img, 5, np.random.default_rng(0))  # 4 bins
    _, counts = np.unique(out, return_counts=True)
    assert len(counts) <= 4
    assert counts.max() / counts.sum() < 0.4  # equal population: about 1/4 each


@pytest.mark.parametrize("seed", range(6))
def test_hist_levels_nest_over_bin_counts(seed: int) -> None:
    """Every partition refines all coarser ones, so fewer bins can only merge classes."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, 256).astype(np.float64)
    counts[rng.integers(0, 256, 3)] += rng.integers(2000, 20000, 3)  # a few dominant values
    parts = {b: q.hist_classes(counts, b) for b in range(2, 33)}
    for few, many in itertools.combinations(sorted(parts), 2):
        for cls in np.unique(parts[many]):  # one class of `many` bins lies in one of `few`
            assert len(np.unique(parts[few][parts[many] == cls])) == 1, (few, many, cls)
        assert len(np.unique(parts[many][counts > 0])) <= many


@pytest.mark.parametrize("name", ["retina", "camera", "astronaut", "coffee", "chelsea",
                                  "rocket", "hubble_deep_field", "coins"])
def test_hist_severity_orders_the_damage_on_every_demo_photo(name: str) -> None:
    """A dominant value (retina's black surround) once made 6 bins worse than 4."""
    img = demo_photo(name, 224)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3])
    values = [psnr(q.quantization_hist(img, s, np.random.default_rng(0)), img)
              for s in range(1, 6)]
    # class means are rounded to integers: allow that rounding, nothing more
    assert all(b <= a + 0.05 for a, b in itertools.pairwise(values)), values
    assert values[0] > values[-1] + 3


def test_median_matches_pillow_per_channel() -> None:
    img = PHOTOS["chelsea"]
    out = q.quantization_median(img, 2, np.random.default_rng(0))
    for c in range(3):
        ref = Image.fromarray(np.ascontiguousarray(img[:, :, c])).quantize(
            colors=15, method=Image.Quantize.MEDIANCUT
        )
        np.testing.assert_array_equal(out[:, :, c], np.asarray(ref.convert("L")))


def _pillow_median_cut(channel: np.ndarray, colors: int) -> np.ndarray:
    img = Image.fromarray(np.ascontiguousarray(channel))
    return np.asarray(img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).convert("L"))


@pytest.mark.parametrize("seed", range(12))
def test_median_cut_port_equals_pillow_on_random_histograms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    vals = rng.choice(256, size=n, replace=False)
    p = rng.dirichlet(np.full(n, [0.2, 1.0, 5.0][seed % 3]))
    chan = rng.choice(vals, size=(33, 47), p=p).astype(np.uint8)
    for colors in (1, 2, 3, 6, 10, 15, 20, 64):
        lut = q._median_cut_lut(np.bincount(chan.ravel(), minlength=256), colors)
        np.testing.assert_array_equal(
            lut[chan], _pillow_median_cut(chan, colors), err_msg=f"{colors=}"
        )


@pytest.mark.parametrize("photo", ["camera", "moon", "coins", "text"])
def test_median_cut_port_equals_pillow_on_grey_photos(photo: str) -> None:
    chan = getattr(data, photo)()
    for colors in (20, 15, 10, 6, 3):
        lut = q._median_cut_lut(np.bincount(chan.ravel(), minlength=256), colors)
        np.testing.assert_array_equal(lut[chan], _pillow_median_cut(chan, colors))


# --------------------------------------------------------------------------- flat / few-level


def _few_level_images() -> dict[str, np.ndarray]:
    yy, xx = np.indices((40, 48))
    two = np.where((yy // 4 + xx // 4) % 2 == 0, 30, 220).astype(np.uint8)
    return {
        "grey": np.full((40, 48, 3), 128, np.uint8),
        "black": np.zeros((40, 48, 3), np.uint8),
        "white": np.full((40, 48, 3), 255, np.uint8),
        "red": np.tile(np.array([255, 0, 0], np.uint8), (40, 48, 1)),
        "two_level": np.stack([two, two, 255 - two], axis=2),
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", sorted(_few_level_images()))
@pytest.mark.parametrize("severity", [1, 5])
def test_flat_and_few_level_inputs_are_kept(name: str, kind: str, severity: int) -> None:
    img = _few_level_images()[kind]
    out, notes = distortions.apply_with_notes(img, name, severity, np.random.default_rng(0))
    # at most as many levels as the input: nothing to merge, so the image is unchanged
    np.testing.assert_array_equal(out, img)
    if name == "quantization_otsu":
        assert notes and all(n.startswith("quantization_otsu: channel") for n in notes)
    if name == "quantization_hist" and len(np.unique(img)) < q._HIST[severity - 1].bins:
        assert any("distinct values" in n for n in notes)


def test_otsu_uses_fewer_classes_on_a_few_level_channel() -> None:
    # Four values in one channel, 5 classes asked at severity 4: four classes, noted.
    vals = np.array([10, 80, 150, 240], np.uint8)
    chan = np.repeat(np.repeat(vals, 10)[None, :], 40, axis=0)
    img = np.stack([chan, chan, np.full_like(chan, 99)], axis=2)
    out, notes = distortions.apply_with_notes(img, "quantization_otsu", 4, np.random.default_rng(0))
    np.testing.assert_array_equal(out, img)
    assert any("only 4 non-empty histogram bins" in n and "instead of 5" in n for n in notes)
    assert any("channel B is flat" in n for n in notes)
    out3, _ = distortions.apply_with_notes(img, "quantization_otsu", 5, np.random.default_rng(0))
    assert len(np.unique(out3[:, :, 0])) == 3  # 3 classes asked and possible: merged


@pytest.mark.parametrize("name", NAMES)
def test_read_only_and_non_contiguous_input(name: str) -> None:
    img = np.array(PHOTOS["astronaut"])  # writeable, against the read-only copy
    ro = img.copy()
    ro.setflags(write=False)
    ref = distortions.apply(img, name, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(distortions.apply(ro, name, 3, np.random.default_rng(0)), ref)
    view = img[::-1, ::2]
    fn = distortions.REGISTRY[name].fn
    direct = fn(view, 3, np.random.default_rng(0))  # kernels called directly accept views too
    np.testing.assert_array_equal(
        direct, distortions.apply(view.copy(), name, 3, np.random.default_rng(0))
    )
