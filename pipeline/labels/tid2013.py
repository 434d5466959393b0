"""TID2013: 25 references x 24 distortions x 5 levels, one MOS per distorted image.

Layout (as downloaded): `<root>/mos_with_names.txt`, lines `<mos> <name>` (e.g.
`5.51429 i01_01_1.bmp`), distorted images in `distorted_images/`, references in
`reference_images/` (`I01.BMP`). The reference of `i01_01_1.bmp` is the part before the
first `_` (`I01`); files are matched case-insensitively because the release mixes cases.
MOS is on 0..9, higher = better. Normalised score: `mos / 9`.

`mos_std.txt` (one standard deviation per line, in the order of `mos.txt` and
`mos_with_names.txt`), when present beside the label file, gives each image its `std`
label (line n of `mos_std.txt` belongs to line n of `mos_with_names.txt`). A std file whose
line count differs from the label file's is one failure and is not used (its lines could
not be matched); an unreadable std value is a bad row.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, find_file, read_text
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
    layout="`mos_with_names.txt` (`<mos> <name>` lines; + `mos_std.txt`); `distorted_images/`, "
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
    col = Collector("tid2013", root, label_file, label="mos", scale=SCALE, rule=RULE)
    lines = read_text(label_file).splitlines()
    std = _std_lines(root, label_file, lines, col)
    for row, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            col.fail(row, "bad_row", f"expected '<mos> <name>', got {line.strip()!r}")
            continue
        mos = col.number(row, parts[0], "mos")
        if mos is None:
            continue
        labels: dict[str, float | None] = {"mos": mos}
        if std is not None:
            labels["std"] = col.number(row, std[row - 1], "mos_std.txt", required=False)
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
            labels=labels,
            ref_id=ref_id,
            ref_path=ref_path,
            attributes=attributes,
        )
    return col.out


def _content_lines(lines: list[str]) -> int:
    """The number of lines up to the last non-blank one (trailing blank lines ignored)."""
    n = len(lines)
    while n and not lines[n - 1].strip():
        n -= 1
    return n


def _std_lines(root: Path, label_file: Path, lines: list[str], col: Collector) -> list[str] | None:
    """The lines of `mos_std.txt` beside the label file, one per label line, or None.

    None when there is no std file, or when its line count differs from the label file's
    (recorded as one failure naming both counts).
    """
    try:
        std_file = find_file(label_file.parent, ["mos_std.txt"], "TID2013 std file")
    except DatasetLayoutError:
        return None
    std = read_text(std_file).splitlines()
    want, got = _content_lines(lines), _content_lines(std)
    if got != want:
        col.fail_at(
            std_file.relative_to(root).as_posix(),
            "bad_row",
            f"{got} std values for the {want} lines of {label_file.name}; std not used",
            std_file,
        )
        return None
    return std + [""] * (len(lines) - len(std))
