"""KonIQ-10k: 10,073 in-the-wild photos, each rated by about 120 crowd workers.

Layout (as downloaded): `<root>/koniq10k_distributions_sets.csv` (columns `image_name,
c1..c5, c_total, MOS, SD, set`; `c1..c5` are the fractions of 1..5 ratings, `c_total` the
number of ratings, `set` one of training/validation/test) and the images in `1024x768/`
(`512x384/` is used when only the half-size images were downloaded). `MOS` is the
rescaled MOS of the release (1..100 in principle, higher = better); `SD` is on the 1..5
rating scale. Normalised score: `mos / 100`. The official split is kept: training ->
`train`, validation -> `val`, test -> `test`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, FileIndex, find_file, read_csv, require_columns
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_koniq10k"]

SCALE = Scale(min=0.0, max=100.0, higher_is_better=True)
RULE = "mos / 100"
_SETS = {"training": "train", "train": "train", "validation": "val", "val": "val", "test": "test"}
_OPTIONAL = ("sd", "c1", "c2", "c3", "c4", "c5", "c_total")


@register_adapter(
    "koniq10k",
    title="KonIQ-10k",
    kind="nr",
    layout="`koniq10k_distributions_sets.csv` (image_name, c1..c5, c_total, MOS, SD, set); "
    "images in `1024x768/`",
    rule=RULE,
    split="official",
)
def read_koniq10k(root: Path) -> LabelSet:
    """Read KonIQ-10k's label file under `root` (see the module docstring)."""
    label_file = find_file(root, ["koniq10k_distributions_sets.csv"], "KonIQ-10k label file")
    header, rows = read_csv(label_file)
    require_columns(label_file, header, ("image_name", "mos"))
    files = FileIndex(root)
    images_dir = files.first_dir(["1024x768", "512x384"]) or "1024x768"
    col = Collector("koniq10k", root, label_file, label="mos", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name = cells["image_name"]
        if col.blank(row, "image_name", name):
            continue
        labels = col.read_labels(row, cells, _OPTIONAL, column="MOS")
        if labels is None:
            continue
        raw_set = cells.get("set", "").lower()
        split = _SETS.get(raw_set)
        if raw_set and split is None:
            col.fail(
                row,
                "bad_row",
                f"unknown set {cells['set']!r} (expected training, validation or test)",
            )
            continue
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
            split=split,
        )
    return col.out
