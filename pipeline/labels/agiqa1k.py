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

from pipeline.labels._io import Collector, FileIndex, find_file, read_sheet, require_columns
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

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
    header, rows = read_sheet(label_file)
    require_columns(label_file, header, ("image", "prompt", "mos"))
    files = FileIndex(root)
    images_dir = files.first_dir(["file", "images", "image"]) or "file"
    col = Collector("agiqa1k", root, label_file, label="mos", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name = str(cells["image"] or "").strip()
        prompt = str(cells["prompt"] or "").strip()
        if col.blank(row, "Image or Prompt", name, prompt):
            continue
        labels = col.read_labels(row, cells, column="MOS")
        if labels is None:
            continue
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
            prompt=prompt,
        )
    return col.out
