"""Detail counts: which samples get a detail answer (the respond stage) and a detail record
(the assemble stage).

The manifest's `detail_counts` has the shape of `counts` (kind -> split -> n). For a kind
and split listed there, the first n samples by rank get a detail answer; the rank of a
sample is `stable_hash(manifest seed, "detail", sample id)`, so the subset

* depends only on the manifest and the sample ids (not on worker count, chunking or order);
* is stable: raising n extends the subset (the first n of one fixed ranking), never
  reshuffles it; lowering n keeps the first ones;
* is spread over the references and the plan (a hash, not the first samples of the plan).

A kind or split not listed, or a manifest without `detail_counts`, answers every sample
(the behaviour of small manifests such as the demo). n larger than the split is capped at
the split's size; 0 asks nothing.

Before the first paid call the respond stage prints what the selection will cost:
`estimate_line` (calls, prompt and completion tokens, USD).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from pipeline.manifest import Manifest
from pipeline.seeds import stable_hash

__all__ = ["detail_limit", "detail_rank", "detail_subset", "estimate_line", "is_selected"]


def detail_rank(manifest_seed: int, sample_id: str) -> str:
    """The sort key of a sample in the detail ranking (smaller: chosen first)."""
    return stable_hash(manifest_seed, "detail", sample_id)


def detail_limit(manifest: Manifest, kind: str, split: str) -> int | None:
    """How many samples of kind/split get a detail answer; None: all of them."""
    per_split = (manifest.detail_counts or {}).get(kind)
    if per_split is None or split not in per_split:
        return None
    return per_split[split]


def detail_subset(manifest: Manifest, kind: str, split: str,
                  sample_ids: Iterable[str]) -> set[str] | None:
    """The ids (of `sample_ids`) that get a detail answer; None: all of them.

    Streams the ids and keeps only the n best ranks (a heap), so memory is O(n), not
    O(samples).
    """
    n = detail_limit(manifest, kind, split)
    if n is None:
        return None
    if n == 0:
        return set()
    best = heapq.nsmallest(n, ((detail_rank(manifest.seed, sid), sid) for sid in sample_ids))
    return {sid for _, sid in best}


def is_selected(subset: set[str] | None, sample_id: str) -> bool:
    return subset is None or sample_id in subset


def estimate_line(estimate: dict[str, Any]) -> str:
    """One line for the user: "respond: 56,600 calls expected, ~61.0M prompt + 14.2M
    completion tokens (worst case), ~$300.12 (gpt-4o)"."""
    usd = estimate.get("usd")
    money = f"~${usd:,.2f}" if usd is not None else "price unknown (prompts/prices.yaml)"
    return (f"respond: {estimate['calls']:,} calls expected to {estimate['model']}, "
            f"~{estimate['prompt_tokens'] / 1e6:.2f}M prompt + "
            f"{estimate['completion_tokens'] / 1e6:.2f}M completion tokens (at most), {money} "
            f"(re-asks not counted; cached answers cost nothing)")
