"""Mix-grained regions without SAM: local regions from the image itself, and the aggregation.

Dog-IQA scores the whole image and its SAM2 segments and combines them by area. No model
weights can be fetched here, so the local regions come from two deterministic sources (a
function of the pixels and the settings only; no random draw):

- `grid`: a `rows x cols` grid of boxes that tile the image exactly (integer bounds from
  `round(i * size / n)`);
- `segments`: scikit-image SLIC superpixels (`n_segments`, `compactness`, on the image
  shrunk to at most 256 px on its long side for speed), merged into `n` large regions: the
  smallest region is merged into the adjacent region of the closest mean CIELAB colour
  (ties: the lower label), until at most `n` remain and none covers less than `min_area`
  (5%) of the image. Every pixel belongs to exactly one region.

Each region is sent as its own crop: its bounding box, pixels outside the region filled with
`mask_value` (mid-grey). Its weight is its area (pixels of the region / pixels of the
image). The final score is

    final = w * global + (1 - w) * sum(area_i * local_i) / sum(area_i)

with `w` a setting (`global_weight`, default 0.5); `mode: both` uses grid and segments
together (their areas then sum to 2, which the normalisation absorbs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Region", "aggregate", "crop_region", "grid_regions", "make_regions",
           "segment_regions"]

_MAX_SIDE = 256  # segmentation runs on a shrunk copy: SLIC cost grows with pixels


@dataclass(frozen=True)
class Region:
    """One local region: `mask` (bool HxW, True inside), bounding box `(x0, y0, x1, y1)`
    (exclusive ends), `area` as a fraction of the image, and a stable `name`
    (`grid_r0c1`, `seg_2`)."""

    name: str
    kind: str
    bbox: tuple[int, int, int, int]
    area: float
    mask: np.ndarray

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "bbox": list(self.bbox),
                "area": round(self.area, 6)}


def _bounds(size: int, n: int) -> list[int]:
    return [int(round(i * size / n)) for i in range(n + 1)]


def grid_regions(height: int, width: int, rows: int = 2, cols: int = 2) -> list[Region]:
    """`rows x cols` boxes tiling a `height x width` image exactly (row-major order).

    Raises:
        ValueError: rows or cols below 1, or more than the image's pixels along that side.
    """
    if rows < 1 or cols < 1 or rows > height or cols > width:
        msg = f"grid: rows and cols must be 1..image size, got {rows}x{cols} for {width}x{height}"
        raise ValueError(msg)
    ys, xs = _bounds(height, rows), _bounds(width, cols)
    out = []
    for r in range(rows):
        for c in range(cols):
            mask = np.zeros((height, width), bool)
            mask[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = True
            out.append(Region(name=f"grid_r{r}c{c}", kind="grid",
                              bbox=(xs[c], ys[r], xs[c + 1], ys[r + 1]),
                              area=float(mask.mean()), mask=mask))
    return out


def _shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max(h, w) / _MAX_SIDE
    if scale <= 1:
        return image
    from PIL import Image

    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _merge(labels: np.ndarray, lab: np.ndarray, n: int, min_area: float) -> np.ndarray:
    """Merge labelled regions (0..k-1) until at most `n` remain and none is smaller than
    `min_area` of the image: smallest first into the adjacent region of the closest mean
    colour. Returns labels renumbered 0.. by first pixel (row-major)."""
    k = int(labels.max()) + 1
    flat = labels.ravel()
    size = np.bincount(flat, minlength=k).astype(float)
    colour = np.stack([np.bincount(flat, weights=lab[..., i].ravel(), minlength=k)
                       for i in range(3)], axis=1)
    adjacent: dict[int, set[int]] = {i: set() for i in range(k)}
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        diff = a != b
        for u, v in set(zip(a[diff].tolist(), b[diff].tolist(), strict=True)):
            adjacent[u].add(v)
            adjacent[v].add(u)
    parent = np.arange(k)
    alive = {i for i in range(k) if size[i] > 0}
    floor = min_area * labels.size
    while len(alive) > 1:
        small = min(alive, key=lambda i: (size[i], i))
        if len(alive) <= n and size[small] >= floor:
            break
        neighbours = sorted(adjacent[small] & alive)
        if not neighbours:  # cannot happen in a connected image; be safe
            neighbours = sorted(alive - {small})
        mean = colour[small] / size[small]
        target = min(neighbours,
                     key=lambda j: (float(np.sum((colour[j] / size[j] - mean) ** 2)), j))
        parent[parent == small] = target
        size[target] += size[small]
        colour[target] += colour[small]
        for j in adjacent[small]:
            adjacent[j].discard(small)
            if j != target:
                adjacent[j].add(target)
                adjacent[target].add(j)
        adjacent[target].discard(target)
        alive.discard(small)
    merged = parent[labels]
    order: dict[int, int] = {}
    for value in merged.ravel().tolist():
        if value not in order:
            order[value] = len(order)
    lut = np.zeros(k, int)
    for value, new in order.items():
        lut[value] = new
    return lut[merged]


def segment_regions(image: np.ndarray, n: int = 4, *, n_segments: int = 64,
                    compactness: float = 10.0, min_area: float = 0.05) -> list[Region]:
    """Content-aware regions: SLIC superpixels merged into at most `n` regions, none
    smaller than `min_area` (fraction of the image).

    Args:
        image: uint8 HxWx3.
        n: regions wanted (fewer when the image has fewer superpixels).
        n_segments: SLIC's target number of superpixels before merging.
        compactness: SLIC's colour/space trade-off.
        min_area: regions below this fraction are merged into a neighbour.
    """
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    if n < 1:
        msg = f"segments: n must be at least 1, got {n}"
        raise ValueError(msg)
    h, w = image.shape[:2]
    small = _shrink(image)
    labels = slic(small, n_segments=n_segments, compactness=compactness, start_label=0,
                  channel_axis=-1, enforce_connectivity=True)
    lab = rgb2lab(small)
    merged = _merge(np.asarray(labels, int), lab, n, min_area)
    if merged.shape != (h, w):  # back to full size: nearest neighbour keeps the partition
        yi = np.minimum((np.arange(h) * merged.shape[0]) // h, merged.shape[0] - 1)
        xi = np.minimum((np.arange(w) * merged.shape[1]) // w, merged.shape[1] - 1)
        merged = merged[yi][:, xi]
    out = []
    for label in range(int(merged.max()) + 1):
        mask = merged == label
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        out.append(Region(name=f"seg_{len(out)}", kind="segment",
                          bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                          area=float(mask.mean()), mask=mask))
    return out


def make_regions(image: np.ndarray, mode: str, *, grid: tuple[int, int] = (2, 2),
                 segments: int = 4, n_segments: int = 64, compactness: float = 10.0,
                 min_area: float = 0.05) -> list[Region]:
    """The local regions of `image` for `mode` (`none`, `grid`, `segments`, `both`)."""
    if mode not in ("none", "grid", "segments", "both"):
        msg = f"regions mode must be none, grid, segments or both, got {mode!r}"
        raise ValueError(msg)
    h, w = image.shape[:2]
    out: list[Region] = []
    if mode in ("grid", "both"):
        out += grid_regions(h, w, min(grid[0], h), min(grid[1], w))
    if mode in ("segments", "both"):
        out += segment_regions(image, segments, n_segments=n_segments, compactness=compactness,
                               min_area=min_area)
    return out


def crop_region(image: np.ndarray, region: Region, mask_value: int = 128) -> np.ndarray:
    """The region's bounding box of `image`, pixels outside the region set to `mask_value`."""
    x0, y0, x1, y1 = region.bbox
    crop = image[y0:y1, x0:x1].copy()
    crop[~region.mask[y0:y1, x0:x1]] = mask_value
    return crop


def aggregate(global_score: float, local: Sequence[tuple[float, float]],
              global_weight: float = 0.5) -> float:
    """`w * global + (1 - w) * area-weighted mean of the local scores`.

    Args:
        global_score: the whole image's level.
        local: (score, area) per region; empty: the global score alone.
        global_weight: w in [0, 1].
    """
    if not 0.0 <= global_weight <= 1.0:
        msg = f"global_weight must lie in [0, 1], got {global_weight}"
        raise ValueError(msg)
    total = sum(a for _, a in local)
    if not local or total <= 0:
        return float(global_score)
    mean_local = sum(s * a for s, a in local) / total
    return global_weight * float(global_score) + (1.0 - global_weight) * mean_local
