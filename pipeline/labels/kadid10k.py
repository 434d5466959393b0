"""KADID-10k: 81 references x 25 distortions x 5 levels, one DMOS per distorted image.

Layout (as downloaded): `<root>/dmos.csv` with columns `dist_img, ref_img, dmos, var` and
all images (references and distorted) in `<root>/images/`. Names: `I01_01_01.png` is
reference `I01.png`, distortion type 01, level 01. DMOS is on 1..5 with higher = better
(despite its name: the ratings were of the distorted image's quality); `var` is the
variance of the ratings. Normalised score: `(dmos - 1) / 4`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, FileIndex, find_file, read_csv, require_columns
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_kadid10k"]

SCALE = Scale(min=1.0, max=5.0, higher_is_better=True)
RULE = "(dmos - 1) / 4"
_COLUMNS = ("dist_img", "ref_img", "dmos")


@register_adapter(
    "kadid10k",
    title="KADID-10k",
    kind="fr",
    layout="`dmos.csv` (dist_img, ref_img, dmos, var); images in `images/`",
    rule=RULE,
    split="reference",
    margin=0.1,
    max_pairs=30_000,
    published_pairs=30_000,
)
def read_kadid10k(root: Path) -> LabelSet:
    """Read KADID-10k's `dmos.csv` under `root` (see the module docstring)."""
    label_file = find_file(root, ["dmos.csv"], "KADID-10k label file")
    header, rows = read_csv(label_file)
    require_columns(label_file, header, _COLUMNS)
    files = FileIndex(root)
    images_dir = files.first_dir(["images", ""]) or ""
    col = Collector("kadid10k", root, label_file, label="dmos", scale=SCALE, rule=RULE)
    for row, cells in rows:
        name, ref = cells["dist_img"], cells["ref_img"]
        if col.blank(row, "dist_img or ref_img", name, ref):
            continue
        labels = col.read_labels(row, cells, ("var",))
        if labels is None:
            continue
        ref_path = files.find(f"{images_dir}/{ref}")
        if ref_path is None:
            col.fail(row, "missing_file", f"reference {ref!r} not found in {root / images_dir}")
            continue
        parts = Path(name).stem.split("_")
        attributes = {"distortion": parts[1], "level": parts[2]} if len(parts) == 3 else {}
        col.image(
            row,
            image_id=name,
            path=files.find(f"{images_dir}/{name}"),
            labels=labels,
            ref_id=Path(ref).stem,
            ref_path=ref_path,
            attributes=attributes,
        )
    return col.out
