"""The respond stage's selection (the manifest's detail counts) and the cost announced
before the first paid call."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.detail import detail_subset, estimate_line
from pipeline.manifest import Manifest, ResponderConfig
from pipeline.records import SampleRecord, Usage
from pipeline.respond.cost import cost_usd, price_for
from pipeline.responders import Responder, ResponderError
from pipeline.responders.prompting import build_request, load_instruction
from pipeline.store import Store, read_jsonl

__all__ = ["announce_estimate", "estimate", "selection"]

log = logging.getLogger(__name__)


def selection(manifest: Manifest, store: Store, pairs: Iterable[tuple[str, str]]
              ) -> dict[tuple[str, str], set[str] | None]:
    """{(kind, split): ids that get a detail answer, or None for all} (pipeline/detail.py)."""
    return {(k, s): detail_subset(manifest, k, s, (r["sample_id"] for r in
                                                   read_jsonl(store.samples_path(k, s))))
            for k, s in pairs}


def estimate(store: Store, responder: Responder, config: ResponderConfig,
             subsets: dict[tuple[str, str], set[str] | None],
             targets: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Calls still to make (first asks of samples without an accepted answer of the
    current prompt version) and their worst-case tokens and USD (re-asks not counted)."""
    calls = prompt = completion = 0
    for kind, split, _ in targets:
        subset = subsets.get((kind, split))
        path = store.responses_path(responder.key, kind, split)
        done = {r["sample_id"] for r in read_jsonl(path)
                if r.get("prompt_version") == config.prompt_version}
        n, first = 0, None
        for row in read_jsonl(store.samples_path(kind, split)):
            sid = row["sample_id"]
            if (subset is None or sid in subset) and sid not in done:
                n += 1
                first = first or row
        if not n:
            continue
        per_prompt, per_completion = 0, 0
        try:
            request = build_request(SampleRecord.model_validate(first), store,
                                    load_instruction(kind, config.prompt_version),
                                    extra=config.extra, image_detail=config.image_detail)
            per_prompt = request.estimated_prompt_tokens(config.image_tokens)
            per_completion = request.max_tokens
        except (ResponderError, OSError, ValueError) as err:
            log.warning("respond: no token estimate for %s/%s: %s", kind, split, err)
        calls += n
        prompt += n * per_prompt
        completion += n * per_completion
    price = price_for(responder.model, config)
    usd = cost_usd(Usage(prompt_tokens=prompt, completion_tokens=completion), price) \
        if price is not None else None
    return {"calls": calls, "prompt_tokens": prompt, "completion_tokens": completion,
            "usd": usd, "model": responder.model}


def announce_estimate(store: Store, responder: Responder, config: ResponderConfig,
                      subsets: dict[tuple[str, str], set[str] | None],
                      targets: Iterable[tuple[str, str, Any]], *,
                      announce: Callable[[str], None]) -> dict[str, Any]:
    est = estimate(store, responder, config, subsets, list(targets))
    if est["calls"]:
        announce(estimate_line(est))
    return est
