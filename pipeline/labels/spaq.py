"""SPAQ: 11,125 smartphone photos with a MOS and five attribute scores.

Layout (as downloaded): `<root>/Annotations/MOS and Image attribute scores.xlsx` (or the
workbook directly under `<root>`), first sheet with the columns `Image name, MOS,
Brightness, Colorfulness, Contrast, Noisiness, Sharpness`, read with openpyxl; images in
`TestImage/`. All scores are on 0..100, higher MOS is better (attribute scores are kept as
published). Normalised score: `mos / 100`. SPAQ has no official split (random, seeded).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import (
    Collector,
    FileIndex,
    find_file,
    read_sheet,
    require_columns,
    sheet_rows,  # re-exported (it was defined here before AGIQA-1k shared it)
)
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_spaq", "sheet_rows"]

SCALE = Scale(min=0.0, max=100.0, higher_is_better=True)
RULE = "mos / 100"
_WORKBOOK = "MOS and Image attribute scores.xlsx"
_ATTRIBUTES = ("brightness", "colorfulness", "contrast", "noisiness", "sharpness")


@register_adapter(
    "spaq",
    title="SPAQ",
    kind="nr",
    layout=f"`Annotations/{_WORKBOOK}` (Image name, MOS, Brightness, Colorfulness, Contrast, "
    "Noisiness, Sharpness); images in `TestImage/`",
    rule=RULE,
    split="random",
)
def read_spaq(root: Path) -> LabelSet:
    """Read SPAQ's MOS workbook under `root` (see the module docstring)."""
    label_file = find_file(root, [f"Annotations/{_WORKBOOK}", _WORKBOOK], "SPAQ MOS workbook")
    header, rows = read_sheet(label_file)
    require_columns(label_file, header, ("image_name", "mos"))
    files = FileIndex(root)
    images_dir = files.first_dir(["TestImage"]) or "TestImage"
    col = Collector("spaq", root, label_file, label="mos", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name = str(cells["image_name"] or "").strip()
        if col.blank(row, "Image name", name):
            continue
        labels = col.read_labels(row, cells, _ATTRIBUTES, column="MOS")
        if labels is None:
            continue
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
        )
    return col.out
