"""AIGCIQA2023: 2,400 AI-generated images (6 models x 100 prompts x 4 images) rated for
quality, authenticity and text-image correspondence.

Layout (as downloaded): images in `<root>/Image/allimg/<n>.png`, and the label table
`AIGCIQA2023.csv` that the authors publish in their GitHub repository (built from the
release's `DATA/MOS/mosz{1,2,3}.mat`, `DATA/STD/SD{1,2,3}.mat` and the prompt sheet), put
at `<root>/AIGCIQA2023.csv` or `<root>/DATA/MOS/AIGCIQA2023.csv`. Its columns: an unnamed
index, `name, prompt, style, class, quality_mos, authenticity_mos, correspondence_mos,
quality_std, authenticity_std, correspondence_std`. MOS values are z-scores rescaled to
0..100, higher = better. Normalised score: `quality_mos / 100`; the other two MOS and the
std columns are kept as labels. Splits and pairs are grouped by prompt.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, FileIndex, find_file, read_csv, require_columns
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_aigciqa2023"]

SCALE = Scale(min=0.0, max=100.0, higher_is_better=True)
RULE = "quality_mos / 100"
_OPTIONAL = (
    "authenticity_mos",
    "correspondence_mos",
    "quality_std",
    "authenticity_std",
    "correspondence_std",
)


@register_adapter(
    "aigciqa2023",
    title="AIGCIQA2023",
    kind="aigc",
    layout="`AIGCIQA2023.csv` (name, prompt, style, class, quality_mos, authenticity_mos, "
    "correspondence_mos, *_std) at the root or in `DATA/MOS/`; images in `Image/allimg/`",
    rule=RULE,
    split="prompt",
)
def read_aigciqa2023(root: Path) -> LabelSet:
    """Read AIGCIQA2023's label table under `root` (see the module docstring)."""
    label_file = find_file(
        root, ["AIGCIQA2023.csv", "DATA/MOS/AIGCIQA2023.csv"], "AIGCIQA2023 label table"
    )
    header, rows = read_csv(label_file)
    require_columns(label_file, header, ("name", "prompt", "quality_mos"))
    files = FileIndex(root)
    images_dir = files.first_dir(["Image/allimg", "allimg", "Image"]) or "Image/allimg"
    col = Collector("aigciqa2023", root, label_file, label="quality_mos", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name, prompt = cells["name"], cells["prompt"]
        if col.blank(row, "name or prompt", name, prompt):
            continue
        labels = col.read_labels(row, cells, _OPTIONAL)
        if labels is None:
            continue
        attributes = {k: cells[k] for k in ("style", "class") if cells.get(k)}
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
            prompt=prompt,
            attributes=attributes,
        )
    return col.out
