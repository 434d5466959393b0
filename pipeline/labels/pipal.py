"""PIPAL (training part): 200 references x 116 distorted images (incl. GAN-based
restoration outputs), one ELO score per distorted image from pairwise human preferences.

Layout (as downloaded): `<root>/Train_Label/*.txt` (one file per reference, lines
`<distorted name>,<ELO>`), distorted images in `Train_Dist/` (some repacks name it
`Dist_Imgs/`, also accepted), references in `Train_Ref/`. The reference of `A0001_00_00.bmp`
is `A0001.bmp`: the part of the name before the first `_`, with the distorted file's
extension (the naming of the release: `<ref>_<distortion type>_<index>.bmp`).

ELO has no fixed range (about 900..1900 in the release), so the normalised score is min-max
over the images read: `(elo - min) / (max - min)`, with min and max recorded in the rule.
Margins on the normalised scale therefore mean a fraction of the ELO range of the release.
Higher ELO is better.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex, read_text
from pipeline.labels.records import Scale
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_pipal"]


@register_adapter(
    "pipal",
    title="PIPAL",
    kind="fr",
    layout="`Train_Label/*.txt` (`<distorted name>,<ELO>` lines); `Train_Dist/` "
    "(or `Dist_Imgs/`), `Train_Ref/`",
    rule="(elo - min) / (max - min) over the images read",
    split="reference",
    margin=0.1,
    max_pairs=70_000,
    published_pairs=70_000,
)
def read_pipal(root: Path) -> LabelSet:
    """Read PIPAL's training labels under `root` (see the module docstring)."""
    files = FileIndex(root)
    label_dir = files.first_dir(["Train_Label"])
    if label_dir is None:
        msg = f"{root}: PIPAL label folder Train_Label/ not found"
        raise DatasetLayoutError(msg)
    label_files = sorted(p for p in (root / label_dir).iterdir() if p.suffix.lower() == ".txt")
    if not label_files:
        msg = f"{root / label_dir}: no .txt label files"
        raise DatasetLayoutError(msg)
    dist_dir = files.first_dir(["Train_Dist", "Dist_Imgs"]) or "Train_Dist"
    ref_dir = files.first_dir(["Train_Ref"]) or "Train_Ref"
    col = Collector("pipal", root, label_files[0], label="elo")  # scale and rule: below
    parsed: list[tuple[Path, int, str, float]] = []
    for label_file in label_files:
        col.use(label_file)
        for row, line in enumerate(read_text(label_file).splitlines(), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or not parts[0]:
                col.fail(row, "bad_row", f"expected '<name>,<ELO>', got {line.strip()!r}")
                continue
            elo = col.number(row, parts[1], "elo")
            if elo is not None:
                parsed.append((label_file, row, parts[0], elo))
    # Duplicates and rows without files are reported before min and max are taken, so
    # that only the images actually kept define the scale.
    usable: list[tuple[Path, int, str, float, str, str]] = []
    first: dict[str, str] = {}
    for label_file, row, name, elo in parsed:
        col.use(label_file)
        if name in first:
            col.fail(row, "duplicate", f"image {name!r} already listed at {first[name]}")
            continue
        ref_id = name.split("_")[0]
        ref_path = files.find(f"{ref_dir}/{ref_id}{Path(name).suffix}")
        path = files.find(f"{dist_dir}/{name}")
        if ref_path is None or path is None:
            what = (
                f"reference {ref_id}{Path(name).suffix} of {name!r} not found in {root / ref_dir}"
                if ref_path is None
                else f"image file of {name!r} not found in {root / dist_dir}"
            )
            col.fail(row, "missing_file", what)
            continue
        first[name] = f"{col.label_rel} row {row}"
        usable.append((label_file, row, name, elo, path, ref_path))
    if len({u[3] for u in usable}) < 2:
        msg = f"{root / label_dir}: fewer than two distinct usable ELO scores, cannot normalise"
        raise DatasetLayoutError(msg)
    lo, hi = min(u[3] for u in usable), max(u[3] for u in usable)
    col.scale = Scale(min=lo, max=hi, higher_is_better=True)
    col.rule = f"(elo - {lo:g}) / ({hi:g} - {lo:g}): min-max over the images read"
    for label_file, row, name, elo, path, ref_path in usable:
        col.use(label_file)
        stem = Path(name).stem.split("_")
        col.image(
            row,
            image_id=name,
            path=path,
            labels={"elo": elo},
            ref_id=name.split("_")[0],
            ref_path=ref_path,
            attributes={"distortion_type": stem[1]} if len(stem) >= 2 else {},
        )
    return col.out
