"""Pseudo-labels: a model's scores of unlabelled references as a labelled source of their own.

Reads `scores/<key>/references.jsonl` (the ingested references scored by `dqgen score
--references`) and writes, like the labels stage does for a human-labelled source,

    labels/<name>/images.jsonl    LabelledImage per scored reference (label `mllm_score`,
                                  scale 1..levels, attributes.provenance = "mllm_score")
    labels/<name>/pairs.jsonl     HumanPair per pair whose normalised scores differ by more
                                  than the margin (`scoring.pseudo_label_margin`)
    labels/<name>/summary.json    counts, the model, and its agreement with humans
    labels/<name>/src             a link to the dataset folder (paths are `references/...`)
    pairs/<name>/<split>.jsonl    ComparisonPair per pair: what assemble turns into the
                                  refAB_brief / AB_brief records (list `<name>` in
                                  `tasks.pair_sources`)

so the scoring and comparison tasks can use them. `agreement` in the summary is the same
model's SRCC/PLCC on the labelled sources it also scored (`eval/<key>/metrics.json`, written
by `dqgen evaluate`), so a reader sees how far the pseudo-labels can be trusted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.labels.build import comparison_pairs
from pipeline.labels.pairs import pairs_from_images
from pipeline.labels.records import LabelledImage, Scale
from pipeline.manifest import Manifest
from pipeline.store import Store, atomic_write_bytes, atomic_write_json, atomic_write_jsonl, read_jsonl

__all__ = ["PROVENANCE", "write_pseudo_labels"]

PROVENANCE = "mllm_score"


def _agreement(store: Store, key: str) -> dict[str, Any]:
    path = store.root / "eval" / key / "metrics.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"note": f"no eval/{key}/metrics.json yet: run `dqgen evaluate DIR --scores {key}`"}
    out = {}
    for ds, entry in doc.get("datasets", {}).items():
        if ds == PROVENANCE or "all" not in entry or "srcc" not in entry["all"]:
            continue
        out[ds] = {k: entry["all"].get(k) for k in ("n", "srcc", "plcc", "plcc_fitted")}
    return out


def write_pseudo_labels(manifest: Manifest, store: Store, key: str) -> dict[str, Any]:
    """Write the pseudo-labelled source of responder `key` (see the module docstring)."""
    cfg = manifest.scoring
    name = cfg.pseudo_label_name
    src = store.root / "scores" / key / "references.jsonl"
    rows = list(read_jsonl(src))
    if not rows:
        msg = f"{src}: no scored references; run `dqgen score MANIFEST --references`"
        raise FileNotFoundError(msg)
    out_dir = store.root / "labels" / name
    scale = Scale(min=1.0, max=float(cfg.levels), higher_is_better=True)
    images = []
    for i, r in enumerate(rows, 1):
        images.append(LabelledImage(
            dataset=name, image_id=r["image_id"], path=r["path"], split=r.get("split"),
            labels={PROVENANCE: float(r["final"]), "global_level": float(r["global_level"])},
            label=PROVENANCE, scale=scale, score=float(r["norm"]),
            rule=f"(final - 1) / {cfg.levels - 1}",
            attributes={"provenance": PROVENANCE, "model": r["model"],
                        "prompt_version": r["prompt_version"], "responder_key": key},
            label_file=store.rel(src), row=i))
    pairs = pairs_from_images(images, dataset=name, group_by=None,
                              margin=cfg.pseudo_label_margin, cap=None, seed=manifest.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    link = out_dir / "src"
    if not link.is_symlink():  # paths are relative to the dataset folder: link to it
        if link.exists():
            msg = f"{link}: exists and is not a link; remove it"
            raise FileExistsError(msg)
        os.symlink(Path("..") / "..", link, target_is_directory=True)
    atomic_write_jsonl(out_dir / "images.jsonl", images)
    atomic_write_jsonl(out_dir / "pairs.jsonl", pairs)
    prefix = f"labels/{name}/src/"
    by_split: dict[str, list[Any]] = {}
    for p in pairs:
        by_split.setdefault(p.split, []).append(p)
    pair_dir = store.root / "pairs" / name
    for split, ps in sorted(by_split.items()):
        atomic_write_jsonl(pair_dir / f"{split}.jsonl",
                           comparison_pairs(ps, prefix=prefix, seed=manifest.seed))
    splits = sorted({im.split or "none" for im in images})
    atomic_write_bytes(out_dir / "splits.json", json.dumps({
        "dataset": name, "rule": "references", "repeats": [
            {s: sorted(im.image_id for im in images if (im.split or "none") == s)
             for s in splits}]}, indent=2, sort_keys=True).encode() + b"\n")
    summary = {"dataset": name, "provenance": PROVENANCE, "responder_key": key,
               "model": rows[0]["model"], "images": len(images),
               "pairs": {s: len(v) for s, v in sorted(by_split.items())},
               "margin": cfg.pseudo_label_margin, "agreement": _agreement(store, key)}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
