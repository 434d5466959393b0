"""Tests of distortions/pixelate.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from distortions import pixelate
from distortions.registry import REGISTRY

PHOTO = cv2.resize(data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA)
SPEC_FACTORS = [0.5, 0.4, 0.3, 0.25, 0.2]  # ../shared/spec/distortions.md


def _run(img: np.ndarray, severity: int) -> np.ndarray:
    return REGISTRY["pixelate"].fn(img, severity, np.random.default_rng(0))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def test_table_equals_the_spec() -> None:
    spec = REGISTRY["pixelate"]
    assert spec.category == "pixelate"
    assert spec.random is False
    assert [row.factor for row in spec.table] == SPEC_FACTORS
    assert [tuple(row) for row in spec.table] == [(f,) for f in SPEC_FACTORS]


@pytest.mark.parametrize("block", [2, 4, 5])
def test_constant_blocks_equal_to_the_block_mean(block: int) -> None:
    img = cv2.resize(data.astronaut(), (80, 60), interpolation=cv2.INTER_AREA)
    out = pixelate._pixelate(img, factor=1 / block)
    h, w = img.shape[:2]
    blocks = out.reshape(h // block, block, w // block, block, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every block constant
    means = img.reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))
    assert np.abs(blocks[:, 0, :, 0].astype(np.float64) - means).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("factor", [0.5, 0.25])
def test_equals_pillow_box_then_nearest_at_whole_block_sizes(factor: float) -> None:
    """The original: Pillow BOX down to int(w * f), NEAREST back up."""
    img = cv2.resize(data.astronaut(), (224, 224), interpolation=cv2.INTER_AREA)
    n = int(224 * factor)
    pil = Image.fromarray(img).resize((n, n), Image.BOX).resize((224, 224), Image.NEAREST)
    diff = np.abs(pixelate._pixelate(img, factor=factor).astype(int) - np.asarray(pil))
    assert diff.max() <= 1


@pytest.mark.parametrize("factor", [0.4, 0.3, 0.2])
def test_fractional_factors_give_centred_blocks_of_near_equal_size(factor: float) -> None:
    img = cv2.resize(data.astronaut(), (101, 67), interpolation=cv2.INTER_AREA)  # odd sides
    out = pixelate._pixelate(img, factor=factor)
    assert out.shape == img.shape
    # block edges: where a row/column differs from the previous one
    cols = np.flatnonzero((out[:, 1:] != out[:, :-1]).any(axis=(0, 2))) + 1
    widths = np.diff(np.concatenate(([0], cols, [101])))
    assert len(widths) == int(101 * factor)
    assert widths.max() - widths.min() <= 1
    # and nearest upscaling is Pillow's (pixel-centre sampling)
    small = cv2.resize(img, (int(101 * factor), int(67 * factor)), interpolation=cv2.INTER_AREA)
    pil = np.asarray(Image.fromarray(small).resize((101, 67), Image.NEAREST))
    np.testing.assert_array_equal(out, pil)


def test_small_side_is_int_of_the_product() -> None:
    assert pixelate._small_side(224, 0.3) == 67
    assert pixelate._small_side(100, 0.29) == 29  # 28.999999999999996 in floating point
    assert pixelate._small_side(3, 0.2) == 1  # never zero


def test_psnr_falls_with_severity() -> None:
    psnr = [_psnr(_run(PHOTO, s), PHOTO) for s in range(1, 6)]
    assert (np.diff(psnr) < 0).all(), psnr


def test_deterministic_and_rng_untouched() -> None:
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    a = REGISTRY["pixelate"].fn(PHOTO, 3, rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(a, _run(PHOTO, 3))


def test_edge_inputs() -> None:
    for value in ((180, 120, 60), (0, 0, 0), (255, 255, 255)):
        flat = np.tile(np.array(value, np.uint8), (33, 47, 1))
        np.testing.assert_array_equal(_run(flat, 5), flat)
    grey = np.repeat(cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    out = _run(grey, 5)
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    tiny = np.ascontiguousarray(PHOTO[:32, :32])
    out = _run(tiny, 5)
    assert out.shape == (32, 32, 3)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 6 * 6  # 32 * 0.2 -> 6 x 6 blocks


@pytest.mark.parametrize("view", ["step2", "flipped"])
def test_non_contiguous_views(view: str) -> None:
    base = PHOTO.copy()
    v = base[::2, ::2] if view == "step2" else base[:, ::-1]
    np.testing.assert_array_equal(_run(v, 4), _run(np.ascontiguousarray(v), 4))
    np.testing.assert_array_equal(base, PHOTO)
