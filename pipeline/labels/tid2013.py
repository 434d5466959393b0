"""TID2013: 25 references x 24 distortions x 5 levels, one MOS per distorted image.

Layout (as downloaded): `<root>/mos_with_names.txt`, lines `<mos> <name>` (e.g.
`5.51429 i01_01_1.bmp`), distorted images in `distorted_images/`, references in
`reference_images/` (`I01.BMP`). The reference of `i01_01_1.bmp` is the part before the
first `_` (`I01`); files are matched case-insensitively because the release mixes cases.
MOS is on 0..9, higher = better. Normalised score: `mos / 9`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, FileIndex, find_file, read_text
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_tid2013"]

SCALE = Scale(min=0.0, max=9.0, higher_is_better=True)
RULE = "mos / 9"
_REF_EXTS = (".bmp", ".png", ".tif", ".tiff")


@register_adapter(
    "tid2013",
    title="TID2013",
    kind="fr",
    layout="`mos_with_names.txt` (`<mos> <name>` lines); `distorted_images/`, "
    "`reference_images/` (case-insensitive)",
    rule=RULE,
    split="reference",
    margin=0.1,
    max_pairs=10_000,
)
def read_tid2013(root: Path) -> LabelSet:
    """Read TID2013's `mos_with_names.txt` under `root` (see the module docstring)."""
    label_file = find_file(root, ["mos_with_names.txt"], "TID2013 label file")
    files = FileIndex(root)
    dist_dir = files.first_dir(["distorted_images"]) or "distorted_images"
    ref_dir = files.first_dir(["reference_images"]) or "reference_images"
    col = Collector("tid2013", root, label_file)
    for row, line in enumerate(read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            col.fail(row, "bad_row", f"expected '<mos> <name>', got {line.strip()!r}")
            continue
        mos = col.number(row, parts[0], "mos")
        if mos is None:
            continue
        name = parts[1]
        stem_parts = Path(name).stem.split("_")
        ref_id = stem_parts[0].upper()
        ref_path = next(
            (p for ext in _REF_EXTS if (p := files.find(f"{ref_dir}/{ref_id}{ext}")) is not None),
            None,
        )
        if ref_path is None:
            col.fail(
                row,
                "missing_file",
                f"reference {ref_id!r} of {name!r} not found in {root / ref_dir}",
            )
            continue
        attributes = (
            {"distortion": stem_parts[1], "level": stem_parts[2]} if len(stem_parts) == 3 else {}
        )
        col.image(
            row,
            image_id=name.lower(),
            path=files.find(f"{dist_dir}/{name}"),
            labels={"mos": mos},
            label="mos",
            scale=SCALE,
            rule=RULE,
            ref_id=ref_id,
            ref_path=ref_path,
            attributes=attributes,
        )
    return col.out
