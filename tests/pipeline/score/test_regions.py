"""Mix-grained regions: grid and SLIC segments cover the image, are deterministic, and the
aggregation is w * global + (1 - w) * area-weighted mean."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.score.regions import aggregate, crop_region, grid_regions, make_regions, \
    segment_regions


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = np.zeros((90, 120, 3), np.uint8)
    img[:, :60] = (200, 40, 40)  # a red left half, a noisy blue right half, a green box
    img[:, 60:] = (30, 60, 200)
    img[:, 60:] = np.clip(img[:, 60:] + rng.normal(0, 12, img[:, 60:].shape), 0, 255)
    img[50:80, 10:40] = (40, 190, 60)
    return img


def _coverage(regions, shape):
    return sum(r.mask.astype(int) for r in regions) if regions else np.zeros(shape, int)


@pytest.mark.parametrize("rows, cols, h, w", [(2, 2, 90, 120), (3, 2, 7, 5), (1, 1, 4, 4),
                                              (3, 3, 10, 11)])
def test_grid_tiles_the_image_exactly(rows, cols, h, w):
    regions = grid_regions(h, w, rows, cols)
    assert len(regions) == rows * cols
    assert (_coverage(regions, (h, w)) == 1).all()
    assert sum(r.area for r in regions) == pytest.approx(1.0)
    for r in regions:
        x0, y0, x1, y1 = r.bbox
        assert r.mask[y0:y1, x0:x1].all() and r.mask.sum() == (x1 - x0) * (y1 - y0)
    assert [r.name for r in regions][:2] == ["grid_r0c0", "grid_r0c1"][: min(2, rows * cols)]
    with pytest.raises(ValueError, match="rows and cols"):
        grid_regions(h, w, 0, 2)


def test_segments_cover_the_image_once_and_are_deterministic(photo):
    a = segment_regions(photo, 4)
    b = segment_regions(photo.copy(), 4)
    assert 2 <= len(a) <= 4
    assert (_coverage(a, photo.shape[:2]) == 1).all()  # every pixel in exactly one region
    assert sum(r.area for r in a) == pytest.approx(1.0)
    assert all(r.area >= 0.05 for r in a)
    assert [r.describe() for r in a] == [r.describe() for r in b]
    assert all((x.mask == y.mask).all() for x, y in zip(a, b, strict=True))
    # content-aware: the red half and the blue half never share a region
    for r in a:
        left, right = r.mask[:, :55].any(), r.mask[:, 65:].any()
        assert not (left and right and r.mask[:, :55].sum() > 200 and r.mask[:, 65:].sum() > 200)


@pytest.mark.parametrize("shape", [(8, 8), (3, 5), (1, 1)])
def test_flat_and_tiny_images_are_covered(shape):
    flat = np.full((*shape, 3), 90, np.uint8)
    regions = segment_regions(flat, 4)
    assert 1 <= len(regions) <= 4 and (_coverage(regions, shape) == 1).all()
    assert [r.describe() for r in regions] == [r.describe() for r in segment_regions(flat, 4)]


def test_large_images_are_segmented_on_a_shrunk_copy_and_mapped_back():
    img = np.zeros((300, 520, 3), np.uint8)
    img[:, 260:] = 255
    regions = segment_regions(img, 2)
    assert (_coverage(regions, img.shape[:2]) == 1).all()
    assert len(regions) == 2 and {r.bbox for r in regions} == {(0, 0, 260, 300), (260, 0, 520, 300)}


def test_modes_and_crop_masks_the_outside(photo):
    assert make_regions(photo, "none") == []
    both = make_regions(photo, "both", grid=(2, 3), segments=3)
    assert sum(r.kind == "grid" for r in both) == 6 and 1 <= sum(r.kind == "segment" for r in both) <= 3
    with pytest.raises(ValueError, match="regions mode"):
        make_regions(photo, "sam")
    seg = segment_regions(photo, 4)[0]
    crop = crop_region(photo, seg, mask_value=128)
    x0, y0, x1, y1 = seg.bbox
    assert crop.shape == (y1 - y0, x1 - x0, 3)
    inside = seg.mask[y0:y1, x0:x1]
    assert (crop[~inside] == 128).all() and (crop[inside] == photo[y0:y1, x0:x1][inside]).all()


def test_aggregation_arithmetic():
    assert aggregate(6, [(2, 0.25), (4, 0.75)], 0.5) == pytest.approx(0.5 * 6 + 0.5 * 3.5)
    assert aggregate(6, [(2, 0.25), (4, 0.75)], 1.0) == 6
    assert aggregate(6, [(2, 0.25), (4, 0.75)], 0.0) == pytest.approx(3.5)
    # areas need not sum to one ("both": grid + segments): the mean is normalised
    assert aggregate(5, [(1, 1.0), (7, 1.0)], 0.2) == pytest.approx(0.2 * 5 + 0.8 * 4)
    assert aggregate(3, [], 0.5) == 3
    with pytest.raises(ValueError, match="global_weight"):
        aggregate(3, [(1, 1.0)], 1.5)
