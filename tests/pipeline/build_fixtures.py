"""Shared helpers of the build-core tests: small real photos and tiny manifests.

Real content (crops of scikit-image's bundled photos, scaled down) so distortions and the
judge see natural images, at sizes that keep a whole build to about a second.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
import yaml
from PIL import Image

from pipeline.manifest import Manifest, load_manifest

__all__ = ["PHOTOS", "make_photo", "photo_dir", "tree_digest", "write_manifest"]

# name -> (skimage loader, size written)
PHOTOS = {
    "astro.png": (skimage.data.astronaut, (80, 64)),
    "cat.png": (skimage.data.chelsea, (72, 60)),
    "coffee.jpg": (skimage.data.coffee, (64, 64)),
    "rocket.png": (skimage.data.rocket, (90, 60)),
}


def make_photo(loader: Any, size: tuple[int, int]) -> Image.Image:
    """A scaled-down RGB copy of a bundled photo."""
    arr = loader()
    return Image.fromarray(arr).convert("RGB").resize(size, Image.Resampling.BICUBIC)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with four small real photos (read-only by convention)."""
    root = tmp_path_factory.mktemp("photos")
    for name, (loader, size) in PHOTOS.items():
        im = make_photo(loader, size)
        im.save(root / name, quality=95) if name.endswith(".jpg") else im.save(root / name)
    return root


def write_manifest(folder: Path, root: Path, **overrides: Any) -> Path:
    """Write a tiny manifest (3 train refs, 1 test ref, 48 px short side) and return its path."""
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 11,
        "output": str(folder / "out"),
        "references": {"root": str(root),
                       "splits": {"train": ["astro.png", "cat.png", "coffee.jpg"],
                                  "test": ["rocket.png"]}},
        "resize": {"short_side": 48},
        "chunk_size": 3,
        "counts": {"refA_sd": {"train": 8, "test": 3}, "refA_md": {"train": 4, "test": 2},
                   "refAB_sd": {"train": 5, "test": 2}, "refAB_md": {"train": 3, "test": 2}},
        # The report's figures (matplotlib) cost seconds and are tested with the report.
        "tasks": {"report": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load(path: Path) -> Manifest:
    return load_manifest(path)


def tree_digest(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every output file under `root` (relative POSIX path -> hex).

    Hidden files and logs/ are left out, as in the lock: write temps, other stages' lock
    files and the run history are not outputs (tests check separately that no temp file is
    left behind).
    """
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        hidden = any(part.startswith(".") for part in Path(rel).parts)
        history = rel.startswith("logs/")  # run history, not an output (Store.logs_dir)
        if path.is_file() and rel not in skip and not hidden and not history:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def image_array(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))
