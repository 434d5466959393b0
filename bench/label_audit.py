"""Audit a build of the bundled photos: are the labels true to the pixels?

One command (not a speed benchmark; it lives here because it is run by hand, like them):

    python bench/label_audit.py [--count 300] [--workers 2] [--out /tmp/label-audit]

Builds the demo's ten photos (two grey) at 224 px with `--count` samples of each kind and
the template responder, then measures the written images, independently of the records:

* labelled images whose pixels equal their reference (want 0), and within the effect
  threshold of it (PSNR >= 50 dB, want 0);
* saturation (colour-only) labels on grey references (want 0);
* comparison records (refAB_brief / AB_brief / refAB_detail) whose pair the judge cannot
  separate: identical images or fr_score difference < the tie margin (want 0);
* the md mix: chi-square of the ordered category pairs of all md images against uniform
  over the 78 allowed ordered pairs (p-value), and the clean / one / two counts per kind;
* redraws made by the effect check and the tie rule, and ties left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import skimage.data
import yaml
from scipy.stats import chisquare

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import distortions  # noqa: E402
from pipeline import effect  # noqa: E402
from pipeline.build import run_build  # noqa: E402
from pipeline.ingest import decode_png  # noqa: E402
from pipeline.judge import fr_score  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402
from pipeline.records import KINDS, ReferenceRecord, SampleRecord  # noqa: E402
from pipeline.store import Store, read_jsonl  # noqa: E402

PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
          "motorcycle_left.png", "retina.jpg", "rocket.jpg", "coins.png", "ihc.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300, help="samples of each kind")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/label-audit")
    ap.add_argument("--md-mix", default="original", choices=("original", "dqgen_v1"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "audit", "seed": 2024, "output": str(out / "ds"), "md_mix": args.md_mix,
        "references": {"root": str(Path(skimage.data.__file__).resolve().parent),
                       "splits": {"train": list(PHOTOS)}},
        "counts": {k: {"train": args.count} for k in KINDS}, "chunk_size": 64,
        "tasks": {"report": False},
    }
    path = out / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    run_build(load_manifest(path), workers=args.workers,
              stages=["ingest", "plan", "synthesize", "respond", "assemble"])
    store = Store(out / "ds")
    refs = {r.ref_id: r for r in read_jsonl(store.references_index, ReferenceRecord)}
    px_cache: dict[str, np.ndarray] = {}

    def px(rel: str) -> np.ndarray:
        if rel not in px_cache:
            px_cache[rel] = decode_png(store.abs(rel).read_bytes())
        return px_cache[rel]

    equal = near = colour_on_grey = labelled = redraws = tie_redraws = ties = 0
    sizes: dict[str, Counter] = {k: Counter() for k in KINDS}
    pair_counts: Counter = Counter()
    untied_pairs: set[str] = set()
    for kind in KINDS:
        for s in read_jsonl(store.samples_path(kind, "train"), SampleRecord):
            ref = px(s.image_ref)
            ties += s.tie
            for img in (s.image_A, s.image_B):
                if img is None:
                    continue
                sizes[kind][len(img.distortions)] += 1
                redraws += sum(1 for r in img.redraws if not r.reason.startswith("tie"))
                tie_redraws += sum(1 for r in img.redraws if r.reason.startswith("tie"))
                if len(img.distortions) == 2:
                    pair_counts[tuple(d.category for d in img.distortions)] += 1
                if not img.distortions:
                    continue
                labelled += 1
                im = px(img.path)
                equal += bool(np.array_equal(im, ref))
                near += effect.psnr(ref, im) >= effect.MAX_EFFECT_PSNR_DB
                if refs[s.ref_id].grey and any(
                        d.category in distortions.COLOUR_CATEGORIES for d in img.distortions):
                    colour_on_grey += 1
            if s.image_B is not None:
                a, b = px(s.image_A.path), px(s.image_B.path)
                sa, sb = fr_score(ref, a), fr_score(ref, b)
                if not effect.is_tie(sa, sb, a, b):
                    untied_pairs.add(s.sample_id)
    verdicts_on_ties = 0
    comparisons = 0
    for task in ("refAB_brief", "AB_brief", "refAB_detail_sd", "refAB_detail_md"):
        p = store.task_path(task, "train")
        if not p.exists():
            continue
        for rec in json.loads(p.read_text(encoding="utf-8")):
            comparisons += 1
            verdicts_on_ties += rec["sample_id"] not in untied_pairs
    allowed = sorted((a, b) for a, bs in distortions.PAIR_TABLE.items() for b in bs)
    outside = sum(v for k, v in pair_counts.items() if k not in set(allowed))
    p_value = chisquare([pair_counts[k] for k in allowed]).pvalue
    print(f"labelled images: {labelled}")
    print(f"labelled images equal to their reference: {equal}")
    print(f"labelled images within {effect.MAX_EFFECT_PSNR_DB:.0f} dB of their reference: {near}")
    print(f"colour-only labels on grey references: {colour_on_grey}")
    print(f"comparison records: {comparisons}; verdicts on ties: {verdicts_on_ties}")
    print(f"ties left out: {ties}; B redrawn for a tie: {tie_redraws}; "
          f"effect-check redraws: {redraws}")
    print(f"md pairs: {sum(pair_counts.values())} (outside the table: {outside}); "
          f"chi-square vs uniform over {len(allowed)} allowed ordered pairs: p = {p_value:.3g}")
    for kind in KINDS:
        print(f"  {kind}: distortions per image {dict(sorted(sizes[kind].items()))}")


if __name__ == "__main__":
    main()
