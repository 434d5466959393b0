"""AGIQA-1k: 1,080 AI-generated images (two Stable Diffusion services) with a prompt and a
normalised perceptual MOS.

Layout (as downloaded): `<root>/AIGC_MOS_Zscore.xlsx` (first sheet, columns `Image, Prompt,
MOS`, read with openpyxl) and the images from `file.zip` in `<root>/file/` (`images/` is
accepted too). The MOS is the authors' normalised (z-score rescaled) MOS on 0..5 like
AGIQA-3k's, higher = better; normalised score `mos / 5` (a value outside 0..5 is reported
as an `out_of_range` failure, never clipped). Splits and pairs are grouped by the prompt as
written.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, find_file, header_key
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter
from pipeline.labels.spaq import sheet_rows

__all__ = ["read_agiqa1k"]

SCALE = Scale(min=0.0, max=5.0, higher_is_better=True)
RULE = "mos / 5"


@register_adapter(
    "agiqa1k",
    title="AGIQA-1k",
    kind="aigc",
    layout="`AIGC_MOS_Zscore.xlsx` (Image, Prompt, MOS); images in `file/`",
    rule=RULE,
    split="prompt",
)
def read_agiqa1k(root: Path) -> LabelSet:
    """Read AGIQA-1k's MOS workbook under `root` (see the module docstring)."""
    label_file = find_file(root, ["AIGC_MOS_Zscore.xlsx"], "AGIQA-1k MOS workbook")
    rows = sheet_rows(label_file)
    if not rows:
        msg = f"{label_file}: empty sheet"
        raise DatasetLayoutError(msg)
    header = [header_key(h) for h in rows[0]]
    missing = [c for c in ("image", "prompt", "mos") if c not in header]
    if missing:
        msg = f"{label_file}: missing column(s) {', '.join(missing)}; header is {header}"
        raise DatasetLayoutError(msg)
    files = FileIndex(root)
    images_dir = files.first_dir(["file", "images", "image"]) or "file"
    col = Collector("agiqa1k", root, label_file)
    for row, values in enumerate(rows[1:], start=2):
        cells = {k: (values[i] if i < len(values) else None) for i, k in enumerate(header)}
        if all(v is None or str(v).strip() == "" for v in cells.values()):
            continue
        name = str(cells["image"] or "").strip()
        prompt = str(cells["prompt"] or "").strip()
        if not name or not prompt:
            col.fail(row, "bad_row", "empty Image or Prompt")
            continue
        mos = col.number(row, cells["mos"], "MOS")
        if mos is None:
            continue
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels={"mos": mos},
            label="mos",
            scale=SCALE,
            rule=RULE,
            prompt=prompt,
        )
    return col.out
