"""Shared helpers of the distortion tests: real photos, image measures, and the checks that
several category modules run, each on its own distortions."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from skimage import data

import distortions
from distortions.registry import REGISTRY

# The two non-contiguous views the view tests take of a photo, by id.
VIEWS = ("step2", "flipped")


def resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """`img` resized (INTER_AREA) so that its short side is `short`, aspect ratio kept."""
    h, w = img.shape[:2]
    f = short / min(h, w)
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


@functools.cache
def photo(name: str = "astronaut", size: int | tuple[int, int] = 96) -> np.ndarray:
    """skimage's real photo `data.<name>()`, read-only, resized with INTER_AREA: an int `size`
    is the short side (aspect kept, as `resize_short`), a pair is the exact (width, height)."""
    img = getattr(data, name)()
    if isinstance(size, int):
        out = resize_short(img, size)
    else:
        out = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    out.setflags(write=False)
    return out


def psnr(a: np.ndarray, b: np.ndarray, *, identical: float = math.inf) -> float:
    """PSNR in dB of two 8-bit images; `identical` (infinity unless given) when they are equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return identical if mse == 0 else 10 * math.log10(255.0**2 / mse)


def colourfulness(img: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M of an RGB image."""
    r, g, b = (img[:, :, i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def grey_rgb(img: np.ndarray) -> np.ndarray:
    """The grey (luma) version of an RGB image, as three equal channels."""
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def is_grey(img: np.ndarray) -> bool:
    return bool((img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 1] == img[:, :, 2]).all())


def run(name: str, img: np.ndarray, severity: int) -> np.ndarray:
    """The registered function of `name` on `img`, with a fresh generator seeded 0."""
    return REGISTRY[name].fn(img, severity, np.random.default_rng(0))


# ---------------------------------------------------------------------------- shared checks


def assert_one_field_table(name: str, category: str, field: str, values: list[float]) -> None:
    """`name` is a deterministic distortion of `category` whose table is the one-field rows
    `values` (field `field`), as the spec writes them."""
    spec = REGISTRY[name]
    assert spec.category == category
    assert spec.random is False
    assert [getattr(row, field) for row in spec.table] == values
    assert [tuple(row) for row in spec.table] == [(v,) for v in values]


def assert_deterministic_and_rng_untouched(
    name: str, img: np.ndarray, *, other_seed: int = 0
) -> None:
    """A deterministic distortion leaves its generator's state alone, and another seed gives
    the same result."""
    fn = REGISTRY[name].fn
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    a = fn(img, 3, rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(a, fn(img, 3, np.random.default_rng(other_seed)))


def assert_view_gives_the_contiguous_result(
    name: str, img: np.ndarray, view: str, *, severity: int = 4, seed: int = 0,
    read_only: bool = False,
) -> None:
    """The registered function of `name` on a non-contiguous view (one of VIEWS) of a copy of
    `img` (read-only if asked) gives what it gives on a contiguous copy of the view: a new
    writeable uint8 array of the view's shape; the copy is left as it was."""
    base = np.array(img)
    base.setflags(write=not read_only)
    v = base[::2, ::2] if view == "step2" else base[:, ::-1]
    assert not v.flags.c_contiguous
    fn = REGISTRY[name].fn
    out = fn(v, severity, np.random.default_rng(seed))
    ref = fn(np.ascontiguousarray(v), severity, np.random.default_rng(seed))
    np.testing.assert_array_equal(out, ref)
    assert out.shape == v.shape and out.dtype == np.uint8
    assert out.flags.writeable and not np.shares_memory(out, base)
    np.testing.assert_array_equal(base, img)


def grey_and_tiny_results(
    name: str, img: np.ndarray, severity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`distortions.apply` of `name` at `severity` (seed 0) on the 2-D grey version of `img`
    and on a 32 x 32 crop of it: the grey one must come back as RGB with three equal
    channels, the tiny one as a 32 x 32 x 3 uint8 array.
    Returns (grey, grey result, tiny, tiny result)."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    tiny = np.ascontiguousarray(img[10:42, 20:52])
    out = distortions.apply(grey, name, severity, np.random.default_rng(0))
    assert out.shape == grey.shape + (3,)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    small = distortions.apply(tiny, name, severity, np.random.default_rng(0))
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    return grey, out, tiny, small


def assert_flat_grey_and_tiny_inputs(name: str, img: np.ndarray) -> np.ndarray:
    """At severity 5: flat colours, black and white come back unchanged, a grey image stays
    grey, and a 32 x 32 crop of `img` keeps its shape. Returns the crop's result."""
    for value in ((180, 120, 60), (0, 0, 0), (255, 255, 255)):
        flat = np.tile(np.array(value, np.uint8), (33, 47, 1))
        np.testing.assert_array_equal(run(name, flat, 5), flat)
    assert is_grey(run(name, grey_rgb(img), 5))
    return assert_tiny_keeps_its_shape(name, img)


def assert_tiny_keeps_its_shape(name: str, img: np.ndarray, severity: int = 5) -> np.ndarray:
    """`run` on the 32 x 32 top-left crop of `img` gives a 32 x 32 x 3 result, returned."""
    out = run(name, np.ascontiguousarray(img[:32, :32]), severity)
    assert out.shape == (32, 32, 3)
    return out
