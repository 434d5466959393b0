"""AGIQA-3k: 2,982 AI-generated images (6 text-to-image models, 300 prompts) with a
perceptual-quality MOS and a text-image alignment MOS.

Layout (as downloaded): `<root>/data.csv` with columns `name, prompt, adj1, adj2, style,
mos_quality, std_quality, mos_align, std_align`, and the images either in `<root>/AGIQA-3K/`
or next to `data.csv` (both are found). MOS values are on 0..5 (z-scores rescaled by the
authors; the release spans about 0.2..4.5), higher = better. Normalised score:
`mos_quality / 5`; `mos_align` and both std columns are kept as labels. Images of one
prompt (the same prompt is rendered by every model) share a group: splits are grouped by
prompt (10 repeated 80/20 splits as in IP-IQA) and pairs compare images of one prompt.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, FileIndex, find_file, read_csv, require_columns
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_agiqa3k"]

SCALE = Scale(min=0.0, max=5.0, higher_is_better=True)
RULE = "mos_quality / 5"
_OPTIONAL = ("std_quality", "mos_align", "std_align")


@register_adapter(
    "agiqa3k",
    title="AGIQA-3k",
    kind="aigc",
    layout="`data.csv` (name, prompt, adj1, adj2, style, mos_quality, std_quality, mos_align, "
    "std_align); images in `AGIQA-3K/` or beside `data.csv`",
    rule=RULE,
    split="prompt",
)
def read_agiqa3k(root: Path) -> LabelSet:
    """Read AGIQA-3k's `data.csv` under `root` (see the module docstring)."""
    label_file = find_file(root, ["data.csv"], "AGIQA-3k label file")
    header, rows = read_csv(label_file)
    require_columns(label_file, header, ("name", "prompt", "mos_quality"))
    files = FileIndex(root)
    images_dir = files.first_dir(["AGIQA-3K", "images", "image"]) or ""
    col = Collector("agiqa3k", root, label_file, label="mos_quality", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name, prompt = cells["name"], cells["prompt"]
        if col.blank(row, "name or prompt", name, prompt):
            continue
        labels = col.read_labels(row, cells, _OPTIONAL)
        if labels is None:
            continue
        attributes = {k: cells[k] for k in ("adj1", "adj2", "style") if cells.get(k)}
        parts = Path(name).stem.rsplit("_", 2)
        if len(parts) == 3:  # AttnGAN_normal_000.jpg: model, generation setting, index
            attributes |= {"model": parts[0], "setting": parts[1]}
        path = files.find(f"{images_dir}/{name}") if images_dir else files.find(name)
        col.image(
            row,
            image_id=name,
            path=path,
            labels=labels,
            prompt=prompt,
            attributes=attributes,
        )
    return col.out
