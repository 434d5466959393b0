"""Every distortion orders its damage by severity on every bundled photo where it can act.

Measured on pixels, one measure per kind (independent of how the distortion is written):
mean luma for brightness, luma std for contrast, mean HSV saturation for saturation, PSNR
to the input for everything else; one seed for all severities (so a random angle or noise
field is the same across the ladder). The photos are the ten the demo manifest lists
(scikit-image's bundle), read as ingest reads them and scaled to a 128 px short side to
keep the test fast (224 px, the build size, gives the same verdicts: see
docs/differences-from-original.md). Colour-only distortions are measured on the colour
photos; on the grey ones they must leave every pixel as it is, which is why the planner
never draws them there (tests/pipeline/test_effect.py checks the build).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

import distortions
from pipeline.ingest import load_reference
from tests.distortions.helpers import resize_short

PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
          "motorcycle_left.png", "retina.jpg", "rocket.jpg", "coins.png", "ihc.png")
SIZE = 128
SEED = 7


@functools.cache
def _photos() -> dict[str, np.ndarray]:
    root = Path(skimage.data.__file__).resolve().parent
    out = {}
    for name in PHOTOS:
        img, _, _ = load_reference(root / name, max_pixels=10**9)
        img = resize_short(img, SIZE)
        img.setflags(write=False)
        out[name] = img
    return out


def _grey(img: np.ndarray) -> bool:
    return bool((img.max(axis=2) == img.min(axis=2)).all())


def _luma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64)


def _damage(category: str, ref: np.ndarray, img: np.ndarray) -> float:
    """The measure of the category's kind, signed so that more damage is larger."""
    if category in ("brighten", "darken"):
        return _luma(img).mean() * (1 if category == "brighten" else -1)
    if category.startswith("contrast_"):
        return _luma(img).std() * (1 if category.endswith("strengthen") else -1)
    if category.startswith("saturate_"):
        s = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float64).mean()
        return s * (1 if category.endswith("strengthen") else -1)
    mse = float(np.mean((ref.astype(np.float64) - img.astype(np.float64)) ** 2))
    return -(10 * np.log10(255.0**2 / mse)) if mse else -100.0


@pytest.mark.parametrize("name", distortions.names())
def test_severity_orders_the_damage_on_every_bundled_photo(name: str) -> None:
    category = distortions.category_of(name)
    colour_only = category in distortions.COLOUR_CATEGORIES
    bad = []
    for photo, ref in _photos().items():
        outs = [distortions.apply(ref, name, s, np.random.default_rng(SEED)) for s in range(1, 6)]
        if colour_only and _grey(ref):
            # nothing to act on: every severity leaves the grey photo as it is
            assert all(np.array_equal(o, ref) for o in outs), (name, photo)
            continue
        ladder = [_damage(category, ref, ref)] + [_damage(category, ref, o) for o in outs]
        if not all(b > a for a, b in zip(ladder, ladder[1:])):
            bad.append((photo, [round(v, 3) for v in ladder]))
    assert not bad, f"{name}: severity does not order the damage on {bad}"


def test_the_bundle_has_grey_and_colour_photos() -> None:
    greys = [p for p, img in _photos().items() if _grey(img)]
    assert greys == ["camera.png", "coins.png"]
