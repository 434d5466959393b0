"""BAPPS 2AFC (the LPIPS "Berkeley-Adobe Perceptual Patch Similarity" set): triplets of a
64x64 reference patch and two distorted patches p0/p1, with the fraction of human judges
who found p1 closer to the reference.

Layout (as downloaded with the LPIPS repository's script): `<root>/2afc/{train,val}/
<category>/{ref,p0,p1}/<n>.png` and `judge/<n>.npy` (one float in [0, 1]: the fraction
preferring p1). `<root>/dataset/2afc/...` is accepted too. The official split is kept:
`train` stays `train`, `val` becomes `test` (the only held-out part).

Pairs are taken as published: image A = p0, image B = p1, A is better when judge < 0.5;
score_A = 1 - judge and score_B = judge (fractions of judges preferring each), so the
normalised difference is |1 - 2 judge|. Exact ties (judge = 0.5, common in train where
two judges rated each triplet) are dropped by the margin filter (default 0: only ties).
No image-level records are written: BAPPS has no per-image score.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.labels._io import Collector, DatasetLayoutError, FileIndex
from pipeline.labels.records import HumanPair
from pipeline.labels.registry import LabelSet, register_adapter

__all__ = ["read_bapps"]

_SPLITS = {"train": "train", "val": "test"}


def _judge(path: Path) -> float:
    value = np.load(path, allow_pickle=False)
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size != 1:
        msg = f"expected one value, got shape {np.shape(value)}"
        raise ValueError(msg)
    return float(arr[0])


@register_adapter(
    "bapps",
    title="BAPPS (2AFC)",
    kind="2afc",
    layout="`2afc/{train,val}/<category>/{ref,p0,p1}/<n>.png` and `judge/<n>.npy`",
    rule="score_B = judge (fraction preferring p1), score_A = 1 - judge",
    split="official",
    margin=0.0,
    max_pairs="all",
    published_pairs=115_000,
)
def read_bapps(root: Path) -> LabelSet:
    """Read the BAPPS 2AFC triplets under `root` (see the module docstring)."""
    files = FileIndex(root)
    base = files.first_dir(["2afc", "dataset/2afc"])
    if base is None:
        msg = f"{root}: BAPPS folder 2afc/ (or dataset/2afc/) not found"
        raise DatasetLayoutError(msg)
    col = Collector("bapps", root, root / base)
    found_any = False
    for split_dir, split in _SPLITS.items():
        split_rel = files.find(f"{base}/{split_dir}")
        if split_rel is None:
            continue
        for category in sorted(p.name for p in (root / split_rel).iterdir() if p.is_dir()):
            cat_rel = f"{split_rel}/{category}"
            judge_rel = files.find(f"{cat_rel}/judge")
            if judge_rel is None:
                col.fail_at(cat_rel, "missing_file", "no judge/ folder")
                continue
            judged = {p.stem for p in (root / judge_rel).glob("*.npy")}
            p0_rel = files.find(f"{cat_rel}/p0")
            for png in sorted((root / p0_rel).glob("*.png")) if p0_rel is not None else []:
                if png.stem not in judged:  # a triplet without its judgement is named too
                    col.fail_at(f"{cat_rel}/{png.stem}", "missing_file",
                                f"missing judge/{png.stem}.npy", png)
            for npy in sorted((root / judge_rel).glob("*.npy")):
                found_any = True
                n = npy.stem
                where = f"{cat_rel}/{n}"
                try:
                    judge = _judge(npy)
                except (ValueError, OSError, EOFError) as err:
                    col.fail_at(where, "bad_number", f"judge file {npy.name}: {err}", npy)
                    continue
                if not math.isfinite(judge) or not 0.0 <= judge <= 1.0:
                    col.fail_at(
                        where,
                        "nan_score" if not math.isfinite(judge) else "out_of_range",
                        f"judge {judge} is not a fraction in [0, 1]",
                        npy,
                    )
                    continue
                paths = {k: files.find(f"{cat_rel}/{k}/{n}.png") for k in ("ref", "p0", "p1")}
                missing = [k for k, v in paths.items() if v is None]
                if missing:
                    col.fail_at(
                        where,
                        "missing_file",
                        f"missing {', '.join(f'{k}/{n}.png' for k in missing)}",
                        npy,
                    )
                    continue
                col.out.pairs.append(
                    HumanPair(
                        dataset="bapps",
                        pair_id=f"bapps_{split_dir}_{category}_{n}",
                        split=split,
                        ref_id=f"{split_dir}/{category}/{n}",
                        ref_path=paths["ref"],
                        A_id=f"{split_dir}/{category}/p0/{n}",
                        B_id=f"{split_dir}/{category}/p1/{n}",
                        A_path=paths["p0"],
                        B_path=paths["p1"],  # type: ignore[arg-type]
                        label="human:bapps:judge",
                        score_A=1.0 - judge,
                        score_B=judge,
                        norm_A=1.0 - judge,
                        norm_B=judge,
                        difference=abs(1.0 - 2.0 * judge),
                        margin=0.0,
                        A_better_B=judge < 0.5,
                        attributes={"category": category},
                    )
                )
    if not found_any and not col.out.failures:
        msg = f"{root / base}: no train/ or val/ triplets with judge/*.npy files"
        raise DatasetLayoutError(msg)
    return col.out
