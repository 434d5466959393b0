"""SPAQ: 11,125 smartphone photos with a MOS and five attribute scores.

Layout (as downloaded): `<root>/Annotations/MOS and Image attribute scores.xlsx` (or the
workbook directly under `<root>`), first sheet with the columns `Image name, MOS,
Brightness, Colorfulness, Contrast, Noisiness, Sharpness`, read with openpyxl; images in
`TestImage/`. All scores are on 0..100, higher MOS is better (attribute scores are kept as
published). Normalised score: `mos / 100`. SPAQ has no official split (random, seeded).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, find_file, header_key
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_spaq", "sheet_rows"]

SCALE = Scale(min=0.0, max=100.0, higher_is_better=True)
RULE = "mos / 100"
_WORKBOOK = "MOS and Image attribute scores.xlsx"
_ATTRIBUTES = ("brightness", "colorfulness", "contrast", "noisiness", "sharpness")


def sheet_rows(path: Path) -> list[tuple[object, ...]]:
    """All rows (values) of the first sheet of an xlsx workbook, header first."""
    try:
        import openpyxl
    except ImportError as err:  # openpyxl is the `labels` extra
        msg = "reading SPAQ needs openpyxl: pip install 'dqgen[labels]'"
        raise ImportError(msg) from err
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()


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
    rows = sheet_rows(label_file)
    if not rows:
        msg = f"{label_file}: empty sheet"
        raise DatasetLayoutError(msg)
    header = [header_key(h) for h in rows[0]]
    missing = [c for c in ("image_name", "mos") if c not in header]
    if missing:
        msg = f"{label_file}: missing column(s) {', '.join(missing)}; header is {header}"
        raise DatasetLayoutError(msg)
    files = FileIndex(root)
    images_dir = files.first_dir(["TestImage"]) or "TestImage"
    col = Collector("spaq", root, label_file)
    for row, values in enumerate(rows[1:], start=2):
        cells = {k: (values[i] if i < len(values) else None) for i, k in enumerate(header)}
        if all(v is None or str(v).strip() == "" for v in cells.values()):
            continue
        name = str(cells["image_name"] or "").strip()
        if not name:
            col.fail(row, "bad_row", "empty Image name")
            continue
        mos = col.number(row, cells["mos"], "MOS")
        if mos is None:
            continue
        labels: dict[str, float | None] = {"mos": mos}
        for key in _ATTRIBUTES:
            if key in cells:
                labels[key] = col.number(row, cells[key], key, required=False)
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
            label="mos",
            scale=SCALE,
            rule=RULE,
        )
    return col.out
