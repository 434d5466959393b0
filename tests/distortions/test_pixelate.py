"""Tests of distortions/pixelate.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from distortions import pixelate
from tests.distortions import helpers
from tests.distortions.helpers import VIEWS, photo, psnr, run

NAME = "pixelate"
PHOTO = photo("astronaut", (96, 96))
SPEC_FACTORS = [0.5, 0.4, 0.3, 0.25, 0.2]  # ../shared/spec/distortions.md


def _run(img: np.ndarray, severity: int) -> np.ndarray:
    return run(NAME, img, severity)


def test_table_equals_the_spec() -> None:
    helpers.assert_one_field_table(NAME, "pixelate", "factor", SPEC_FACTORS)


@pytest.mark.parametrize("block", [2, 4, 5])
def test_constant_blocks_equal_to_the_block_mean(block: int) -> None:
    img = photo("astronaut", (80, 60))
    out = pixelate._pixelate(img, factor=1 / block)
    h, w = img.shape[:2]
    blocks = out.reshape(h // block, block, w // block, block, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every block constant
    means = img.reshape(h // block, block, w // block, block, 3).mean(axis=(1, 3))
    assert np.abs(blocks[:, 0, :, 0].astype(np.float64) - means).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("factor", [0.5, 0.25])
def test_equals_pillow_box_then_nearest_at_whole_block_sizes(factor: float) -> None:
    """The original: Pillow BOX down to int(w * f), NEAREST back up."""
    img = photo("astronaut", (224, 224))
    n = int(224 * factor)
    pil = Image.fromarray(img).resize((n, n), Image.BOX).resize((224, 224), Image.NEAREST)
    diff = np.abs(pixelate._pixelate(img, factor=factor).astype(int) - np.asarray(pil))
    assert diff.max() <= 1


@pytest.mark.parametrize("factor", [0.4, 0.3, 0.2])
def test_fractional_factors_give_centred_blocks_of_near_equal_size(factor: float) -> None:
    img = photo("astronaut", (101, 67))  # odd sides
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
    values = [psnr(_run(PHOTO, s), PHOTO) for s in range(1, 6)]
    assert np.isfinite(values).all() and (np.diff(values) < 0).all(), values


def test_deterministic_and_rng_untouched() -> None:
    helpers.assert_deterministic_and_rng_untouched(NAME, PHOTO)


def test_edge_inputs() -> None:
    out = helpers.assert_flat_grey_and_tiny_inputs(NAME, PHOTO)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 6 * 6  # 32 * 0.2 -> 6 x 6 blocks


@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_views(view: str) -> None:
    helpers.assert_view_gives_the_contiguous_result(NAME, PHOTO, view)
