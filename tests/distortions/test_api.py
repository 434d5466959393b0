"""Tests of the public API: `apply` validation, aliases, `sample_single` and `sample_pair`."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import distortions
from distortions import CATEGORIES, CATEGORY_ORDER, PAIR_TABLE, REGISTRY

# Validation does not depend on the distortion; a deterministic one keeps comparisons simple.
NAME = "quantization_otsu"


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)


def _rng() -> np.random.Generator:
    return np.random.default_rng(1)


# --------------------------------------------------------------------------------- apply checks


def test_apply_returns_new_uint8_rgb(image: np.ndarray) -> None:
    out = distortions.apply(image, NAME, 3, _rng())
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.shares_memory(out, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int64])
def test_apply_refuses_non_uint8(image: np.ndarray, dtype: type) -> None:
    with pytest.raises(TypeError, match=r"image must be uint8, got dtype"):
        distortions.apply(image.astype(dtype), NAME, 1, _rng())


def test_apply_refuses_non_arrays() -> None:
    with pytest.raises(TypeError, match="image must be a numpy.ndarray, got list"):
        distortions.apply([[1, 2], [3, 4]], NAME, 1, _rng())  # type: ignore[arg-type]


def test_grey_2d_is_converted_to_rgb(image: np.ndarray) -> None:
    grey = image[:, :, 0].copy()
    out = distortions.apply(grey, NAME, 2, _rng())
    assert out.shape == grey.shape + (3,)
    ref = distortions.apply(np.repeat(grey[:, :, None], 3, axis=2), NAME, 2, _rng())
    np.testing.assert_array_equal(out, ref)


def test_rgba_is_composited_over_white_as_ingest_does(image: np.ndarray) -> None:
    from PIL import Image

    from distortions._checks import flatten_alpha
    from pipeline.ingest import _to_rgb

    rng = np.random.default_rng(5)
    alpha = rng.integers(0, 256, size=image.shape[:2], dtype=np.uint8)
    alpha[:5] = 255  # opaque rows keep their colours exactly
    alpha[5:10] = 0  # transparent rows become white whatever colour they hold
    rgba = np.dstack([image, alpha])
    flat = flatten_alpha(rgba)
    np.testing.assert_array_equal(flat[:5], image[:5])
    assert (flat[5:10] == 255).all()
    via_pillow = np.asarray(_to_rgb(Image.fromarray(rgba, "RGBA")))
    assert np.abs(flat.astype(int) - via_pillow).max() <= 1  # the ingest rule, rounding aside
    out = distortions.apply(rgba, NAME, 2, _rng())
    np.testing.assert_array_equal(out, distortions.apply(flat, NAME, 2, _rng()))


def test_type_errors_are_value_errors_too(image: np.ndarray) -> None:
    """`except ValueError` catches every bad input; `except TypeError` still works."""
    for bad in (lambda: distortions.apply(image.astype(np.float32), NAME, 1, _rng()),
                lambda: distortions.apply(image, NAME, 2.0, _rng()),  # type: ignore[arg-type]
                lambda: distortions.apply(image, NAME, 1, np.random.RandomState(0))):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            bad()
        with pytest.raises(TypeError):
            bad()


@pytest.mark.parametrize("shape", [(40, 48, 2), (40, 48, 5), (40,), (2, 40, 48, 3)])
def test_apply_refuses_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"image must be H x W \(grey\), H x W x 3 or H x W x 4"):
        distortions.apply(np.zeros(shape, np.uint8), NAME, 1, _rng())


@pytest.mark.parametrize("shape", [(31, 64, 3), (64, 31, 3), (8, 8), (31, 31, 4)])
def test_apply_refuses_small_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"image sides must be >= 32 px, got"):
        distortions.apply(np.zeros(shape, np.uint8), NAME, 1, _rng())


def test_32_px_is_accepted() -> None:
    out = distortions.apply(np.full((32, 32, 3), 9, np.uint8), NAME, 1, _rng())
    assert out.shape == (32, 32, 3)


@pytest.mark.parametrize("severity", [0, 6, -1, 100])
def test_apply_refuses_out_of_range_severity(image: np.ndarray, severity: int) -> None:
    with pytest.raises(ValueError, match=rf"severity must be in 1..5, got {severity}"):
        distortions.apply(image, NAME, severity, _rng())


@pytest.mark.parametrize("severity", [3.0, True, False, "3", None, np.float64(2.0)])
def test_apply_refuses_non_int_severity(image: np.ndarray, severity: object) -> None:
    with pytest.raises(TypeError, match=r"severity must be an int in 1..5, got"):
        distortions.apply(image, NAME, severity, _rng())  # type: ignore[arg-type]


def test_numpy_int_severity_is_accepted(image: np.ndarray) -> None:
    out = distortions.apply(image, NAME, np.int64(2), _rng())
    np.testing.assert_array_equal(out, distortions.apply(image, NAME, 2, _rng()))


def test_unknown_name_lists_known_names(image: np.ndarray) -> None:
    with pytest.raises(KeyError, match=r"unknown distortion 'blur_gausian'; known: ") as err:
        distortions.apply(image, "blur_gausian", 1, _rng())
    assert isinstance(err.value, distortions.UnknownDistortionError)
    for name in REGISTRY:
        assert name in str(err.value)


def test_non_str_name_is_a_type_error(image: np.ndarray) -> None:
    with pytest.raises(TypeError, match="distortion name must be a str, got int"):
        distortions.apply(image, 3, 1, _rng())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new"),
    sorted(distortions.ALIASES.items()),
)
def test_shfit_aliases(image: np.ndarray, old: str, new: str) -> None:
    assert "_shfit_" in old and new == old.replace("_shfit_", "_shift_")
    assert distortions.canonical_name(old) == new
    np.testing.assert_array_equal(
        distortions.apply(image, old, 2, _rng()), distortions.apply(image, new, 2, _rng())
    )
    assert distortions.category_of(old) == REGISTRY[new].category
    assert old not in REGISTRY  # the corrected spelling is the one registered (and written)


def test_four_shfit_aliases_exist() -> None:
    assert len(distortions.ALIASES) == 4
    assert all(v in REGISTRY for v in distortions.ALIASES.values())


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0), "seed"])
def test_rng_must_be_a_generator(image: np.ndarray, rng: object) -> None:
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator, got"):
        distortions.apply(image, NAME, 1, rng)  # type: ignore[arg-type]


def test_apply_with_notes_returns_notes() -> None:
    flat = np.full((40, 40, 3), 77, np.uint8)
    out, notes = distortions.apply_with_notes(flat, NAME, 1, _rng())
    np.testing.assert_array_equal(out, flat)
    assert notes and all("flat" in n for n in notes)
    # notes do not leak into the next call
    _, notes2 = distortions.apply_with_notes(
        np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3), NAME, 1, _rng()
    )
    assert notes2 == []


# -------------------------------------------------------------------------------------- sampling


def _chi2(observed: list[int], expected: list[float]) -> float:
    return float(sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True)))


def test_sample_single_category_uniform_then_name_uniform() -> None:
    rng = np.random.default_rng(2024)
    n = 24000
    draws = [distortions.sample_single(rng) for _ in range(n)]
    names = Counter(name for name, _ in draws)
    cats = Counter(REGISTRY[name].category for name, _ in draws)
    sevs = Counter(s for _, s in draws)
    # categories uniform: 11 degrees of freedom; 99.9% quantile of chi2(11) is 31.3
    assert _chi2([cats[c] for c in CATEGORY_ORDER], [n / 12] * 12) < 31.3
    # names uniform inside their category: expected n / 12 / len(members) each;
    # 23 degrees of freedom (35 - 12), 99.9% quantile 49.7
    expected = [n / 12 / len(CATEGORIES[REGISTRY[x].category]) for x in sorted(REGISTRY)]
    assert _chi2([names[x] for x in sorted(REGISTRY)], expected) < 49.7
    assert set(names) == set(REGISTRY)
    # a name in a one-member category (pixelate) is ~6x as frequent as a blur name
    assert names["pixelate"] > 4 * names["blur_gaussian"]
    # severities uniform in 1..5: chi2(4) 99.9% quantile 18.5
    assert set(sevs) == {1, 2, 3, 4, 5}
    assert _chi2([sevs[s] for s in range(1, 6)], [n / 5] * 5) < 18.5


def test_sample_single_is_seeded() -> None:
    a = [distortions.sample_single(np.random.default_rng(9)) for _ in range(3)]
    b = [distortions.sample_single(np.random.default_rng(9)) for _ in range(3)]
    assert a == b
    draws = [distortions.sample_single(np.random.default_rng(k)) for k in range(50)]
    assert len(set(draws)) > 10


def test_sample_single_max_severity() -> None:
    rng = np.random.default_rng(3)
    assert {distortions.sample_single(rng, max_severity=2)[1] for _ in range(200)} == {1, 2}


def _pair_counts(sampler, n: int, seed: int, **kw) -> Counter:
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    for _ in range(n):
        (n1, s1), (n2, s2) = sampler(rng, **kw)
        c1, c2 = REGISTRY[n1].category, REGISTRY[n2].category
        assert c2 in PAIR_TABLE[c1], (c1, c2)
        assert c1 != c2
        assert 1 <= s1 <= 3 and 1 <= s2 <= 3
        assert isinstance(s1, int) and isinstance(s2, int)
        counts[(c1, c2)] += 1
    return counts


def test_sample_pair_is_uniform_over_the_allowed_ordered_pairs() -> None:
    """The original's draw: chi-square against uniform over the 78 allowed ordered pairs."""
    from scipy.stats import chisquare

    allowed = sorted((a, b) for a, bs in PAIR_TABLE.items() for b in bs)
    assert len(allowed) == 78
    n = 15600  # 200 expected per pair
    counts = _pair_counts(distortions.sample_pair, n, 77)
    assert set(counts) == set(allowed)
    p = chisquare([counts[k] for k in allowed]).pvalue
    assert p > 0.001, p
    # oversharpen -> brighten (the only partner of oversharpen) is 1/78, not 1/12 * 1
    assert abs(counts[("oversharpen", "brighten")] / n - 1 / 78) < 0.005


def test_sample_pair_v1_keeps_the_old_first_category_uniform_mix() -> None:
    from scipy.stats import chisquare

    counts = _pair_counts(distortions.sample_pair_v1, 6000, 77)
    firsts = Counter()
    for (c1, _), k in counts.items():
        firsts[c1] += k
    assert chisquare([firsts[c] for c in CATEGORY_ORDER]).pvalue > 0.001
    # ... which is what made oversharpen + brighten ~1/12 of all md images
    assert counts[("oversharpen", "brighten")] / 6000 > 0.06


def test_samplers_exclude_colour_categories() -> None:
    excl = distortions.COLOUR_CATEGORIES
    rng = np.random.default_rng(5)
    singles = {REGISTRY[distortions.sample_single(rng, exclude=excl)[0]].category
               for _ in range(600)}
    assert singles == set(CATEGORY_ORDER) - set(excl)
    for sampler in (distortions.sample_pair, distortions.sample_pair_v1):
        cats = {c for pair in _pair_counts(sampler, 800, 6, exclude=excl) for c in pair}
        assert not cats & set(excl)


def test_pair_table_matches_spec_rows() -> None:
    assert set(PAIR_TABLE) == set(CATEGORY_ORDER)
    assert PAIR_TABLE["oversharpen"] == ("brighten",)
    assert len(PAIR_TABLE["noise"]) == 10
    for first, seconds in PAIR_TABLE.items():
        assert first not in seconds
        assert set(seconds) <= set(CATEGORY_ORDER)
