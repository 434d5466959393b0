"""LIVE In the Wild Image Quality Challenge (LIVE Challenge, CLIVE): 1,169 mobile photos.

Layout (as downloaded, `ChallengeDB_release/`): `<root>/Data/AllImages_release.mat`,
`Data/AllMOS_release.mat` and `Data/AllStdDev_release.mat` (read with scipy.io.loadmat;
variables of the same names: image names, MOS, standard deviation, 1,169 entries each) and
the images in `Images/`. MOS is on 0..100, higher = better; normalised score `mos / 100`.

Entries 1..7 are the seven images used to train the raters (`Images/trainingImages/`); as
in the dataset's own evaluations they are left out (listed in the build summary, not as
failures), so entries 8..1169 (1,162 images) are read. No official split (random, seeded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, find_file
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["TRAINING_ENTRIES", "read_livec"]

SCALE = Scale(min=0.0, max=100.0, higher_is_better=True)
RULE = "mos / 100"
TRAINING_ENTRIES = 7  # entries 1..7: rater-training images, left out


def _variable(path: Path, name: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data: dict[str, Any] = loadmat(path)
    except Exception as err:  # scipy raises several types for corrupt files
        msg = f"{path}: not a readable .mat file: {err}"
        raise DatasetLayoutError(msg) from err
    if name in data:
        return np.asarray(data[name])
    keys = [k for k in data if not k.startswith("__")]
    if len(keys) == 1:
        return np.asarray(data[keys[0]])
    msg = f"{path}: variable {name!r} not found (has {', '.join(keys)})"
    raise DatasetLayoutError(msg)


def _name(cell: object) -> str:
    # A MATLAB cell of strings loads as an object array of 1-element string arrays.
    while isinstance(cell, np.ndarray):
        if cell.size == 0:
            return ""
        cell = cell.ravel()[0]
    return str(cell).strip()


@register_adapter(
    "livec",
    title="LIVE Challenge",
    kind="nr",
    layout="`Data/AllImages_release.mat`, `Data/AllMOS_release.mat` "
    "(+ `Data/AllStdDev_release.mat`); images in `Images/`",
    rule=RULE,
    split="random",
)
def read_livec(root: Path) -> LabelSet:
    """Read LIVE Challenge's .mat label files under `root` (see the module docstring)."""
    names_file = find_file(
        root, ["Data/AllImages_release.mat", "AllImages_release.mat"], "LIVE Challenge image list"
    )
    mos_file = find_file(
        root, ["Data/AllMOS_release.mat", "AllMOS_release.mat"], "LIVE Challenge MOS file"
    )
    names = [_name(c) for c in _variable(names_file, "AllImages_release").ravel()]
    mos = _variable(mos_file, "AllMOS_release").ravel()
    try:
        std_file = find_file(root, ["Data/AllStdDev_release.mat", "AllStdDev_release.mat"], "std")
        std: np.ndarray | None = _variable(std_file, "AllStdDev_release").ravel()
    except DatasetLayoutError:
        std = None
    if len(mos) != len(names) or (std is not None and len(std) != len(names)):
        msg = (
            f"{mos_file.parent}: the .mat files disagree in length: {len(names)} names, "
            f"{len(mos)} MOS" + (f", {len(std)} std" if std is not None else "")
        )
        raise DatasetLayoutError(msg)
    files = FileIndex(root)
    images_dir = files.first_dir(["Images"]) or "Images"
    col = Collector("livec", root, mos_file, label="mos", scale=SCALE, rule=RULE)
    out_note = min(TRAINING_ENTRIES, len(names))
    for i, name in enumerate(names):
        row = i + 1  # MATLAB entry number
        if row <= TRAINING_ENTRIES:
            continue
        if col.blank(row, "image name", name):
            continue
        value = col.number(row, mos[i], "AllMOS_release")
        if value is None:
            continue
        labels: dict[str, float | None] = {"mos": value}
        if std is not None:
            labels["std"] = col.number(row, std[i], "AllStdDev_release", required=False)
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
        )
    col.out.notes.append(f"entries 1..{out_note} (rater-training images) left out by rule")
    return col.out
