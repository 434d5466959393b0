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

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, find_file, read_csv
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
    missing = [c for c in ("image_name", "mos") if c not in header]
    if missing:
        msg = f"{label_file}: missing column(s) {', '.join(missing)}; header is {header}"
        raise DatasetLayoutError(msg)
    files = FileIndex(root)
    images_dir = files.first_dir(["1024x768", "512x384"]) or "1024x768"
    col = Collector("koniq10k", root, label_file)
    for row, cells in rows:
        name = cells["image_name"]
        if not name:
            col.fail(row, "bad_row", "empty image_name")
            continue
        mos = col.number(row, cells["mos"], "MOS")
        if mos is None:
            continue
        labels: dict[str, float | None] = {"mos": mos}
        for key in _OPTIONAL:
            if key in cells:
                labels[key] = col.number(row, cells[key], key, required=False)
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
            label="mos",
            scale=SCALE,
            rule=RULE,
            split=split,
        )
    return col.out
