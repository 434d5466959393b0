"""The scoring run: standard-guided levels for every image of the labelled sources (and,
optionally, the ingested references and the synthetic samples' images), global and per
region, through the respond core.

Reads `labels/<dataset>/images.jsonl` (LabelledImage; images under `labels/<dataset>/src/`),
`references.jsonl` and `samples/<kind>/<split>.jsonl`, and writes

    scores/<key>/<dataset>.jsonl     ScoreRecord per scored image, in the source's order
    scores/<key>/run.json            the scoring settings of the latest run
    failures/score.jsonl             FailureRecord per image that could not be scored
    logs/score/<key>.jsonl           one summary line per run (history)
    cache/score_images/<hh>/<sha>.png  the PNGs sent (global image, masked crops), by content

For each image: the image (long side at most `max_side`) and its regions
(`pipeline.score.regions`) are written as PNGs, and each is asked for a level with the
versioned prompt (`pipeline.score.levels`). Every request goes through the respond core's
`_ask` (`pipeline.respond`): the same request-hash cache as `respond` (a re-run pays
nothing twice), the one tenacity retry policy, the rate limiter, the budget
(`max_cost_usd`; when it is reached no new call starts and the summary says so) and the
responder's error classification. The global level is asked first (when it fails, the
regions are not asked), then the regions concurrently; the CPU work of an image (decode,
segmentation, PNG encoding) runs in a thread, off the event loop. With
`responder.structured_output` the level is asked as a json_schema `{"level": n}` (n one of
the levels); a server that refuses `response_format` gets the text protocol for the rest
of the run (the respond core's fallback).
An answer the strict parser rejects is re-asked (up to
`responder.max_reasks`, the re-ask naming the reason), then the image fails with it. An image
is scored only when its global and every regional level were read; the record keeps every
sub-score with its region, area and request hash.

A record counts as done only for the same settings (`settings_hash`: prompt version,
standards, regions, weights, image size); another setting re-scores (through the cache).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from pipeline.labels.records import LabelledImage
from pipeline.manifest import Manifest, ResponderConfig, ScoringConfig
from pipeline.records import FailureRecord, Record, ReferenceRecord, Usage
from pipeline.responders import Responder, ResponderError, make_responder
from pipeline.responders.base import ImageInput, ResponseRequest
from pipeline.score.levels import ScoringPrompt, load_scoring_prompt, parse_level
from pipeline.score.regions import aggregate, crop_region, make_regions
from pipeline.store import Store, append_jsonl, atomic_write_bytes, atomic_write_json, \
    atomic_write_jsonl, read_jsonl

# the respond core: one request-hash cache, retry policy, rate limiter and budget for every
# mode (online respond, batch, scoring); `_Run._ask` does one request through all of them
from pipeline.respond.cost import BudgetStop, cost_usd, price_for
from pipeline.respond.online import _FormatRefused
from pipeline.respond.online import _Run as _CoreRun
from pipeline.respond.structured import json_schema_format
from pipeline.respond.run import _run_sync

__all__ = ["REFERENCES", "SAMPLES", "STAGE", "sample_items", "PartScore", "ScoreRecord", "estimate_cost",
           "score_images", "score_items", "scores_path", "stage_score"]

log = logging.getLogger(__name__)

STAGE = "score"
REFERENCES = "references"  # the scores file of the ingested references (pseudo-labels)
SAMPLES = "samples"  # the scores file of the synthetic samples' images
ProgressFn = Callable[[str, int, int], None]  # (dataset, done, total)


class PartScore(Record):
    """The level of one part of an image: the whole image (`global`) or one region."""

    name: str  # "global", "grid_r0c1", "seg_2"
    kind: str  # "global", "grid", "segment"
    bbox: list[int]  # x0, y0, x1, y1 in the scored image (long side <= max_side)
    area: float  # fraction of the image
    level: int
    request_hash: str
    attempts: int = 1  # asks (1 + re-asks)


class ScoreRecord(Record):
    """One scored image: every sub-score and the aggregated `final` (see regions.aggregate);
    `norm` = (final - 1) / (levels - 1) in [0, 1]."""

    dataset: str
    image_id: str
    path: str  # relative to the dataset folder
    split: str | None = None
    responder: str
    model: str
    prompt_id: str
    prompt_version: str
    levels: int
    regions_mode: str
    global_weight: float
    global_level: int
    regions: list[PartScore]
    final: float
    norm: float = Field(ge=0.0, le=1.0)
    usage: Usage = Usage()
    cost_usd: float = 0.0
    settings_hash: str


@dataclass(frozen=True)
class _Item:
    """What the respond core and the cache need to know of the item a request is for."""

    sample_id: str


@dataclass(frozen=True)
class ScoreItem:
    """One image to score: where it is (absolute) and what to write with its record."""

    dataset: str
    image_id: str
    path: Path
    rel_path: str
    split: str | None = None


def scores_path(store: Store, key: str, dataset: str) -> Path:
    return store.root / "scores" / key / f"{dataset}.jsonl"


def settings_hash(cfg: ScoringConfig, prompt: ScoringPrompt) -> str:
    keys = ("prompt_version", "levels", "regions", "grid", "segments", "slic_segments",
            "compactness", "min_region_area", "global_weight", "mask_value", "max_side",
            "max_tokens", "temperature")
    payload = {k: getattr(cfg, k) for k in keys}
    payload["standards"] = list(prompt.standards)
    blob = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _png(store: Store, array: np.ndarray) -> tuple[Path, str]:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = store.root / "cache" / "score_images" / sha[:2] / f"{sha}.png"
    if not path.exists():
        atomic_write_bytes(path, data)
    return path, sha


def _load(path: Path, max_side: int) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
    w, h = rgb.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                         Image.Resampling.LANCZOS)
    return np.asarray(rgb)


def regions_per_image(cfg: ScoringConfig) -> int:
    """The most regions one image can have (grid cells + segments)."""
    n = 0
    if cfg.regions in ("grid", "both"):
        n += cfg.grid[0] * cfg.grid[1]
    if cfg.regions in ("segments", "both"):
        n += cfg.segments
    return n


def estimate_cost(n_images: int, cfg: ScoringConfig, config: ResponderConfig,
                  model: str) -> dict[str, Any]:
    """Calls, tokens and USD of scoring `n_images` (first asks, no re-asks; worst case of
    the regions: every image gets all of them)."""
    calls = n_images * (1 + regions_per_image(cfg))
    prompt = load_scoring_prompt(cfg.prompt_version, cfg.levels, cfg.standards)
    text = len(prompt.system) + len(prompt.user(region=True)) + 40
    per_call_in = text // 3 + config.image_tokens + 20  # as ResponseRequest estimates
    usage = Usage(prompt_tokens=calls * per_call_in, completion_tokens=calls * cfg.max_tokens)
    price = price_for(model, config)
    return {"images": n_images, "calls": calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "usd": round(cost_usd(usage, price), 4) if price is not None else None,
            "price_known": price is not None}


class _ScoreRun:
    """Scores items with one responder; the respond core's run does each request."""

    def __init__(self, store: Store, responder: Responder, config: ResponderConfig,
                 cfg: ScoringConfig, prompt: ScoringPrompt) -> None:
        self.store = store
        self.core = _CoreRun(store, responder, config, None, None)
        self.responder = responder
        self.config = config
        self.cfg = cfg
        self.prompt = prompt
        # the user turn depends only on global vs region: rendered once, not per request
        self.user_text = {region: prompt.user(region) for region in (False, True)}
        self.settings = settings_hash(cfg, prompt)
        self.level_format = json_schema_format("quality_level", {
            "level": {"type": "integer", "enum": list(range(prompt.low, prompt.high + 1))}})
        self.counts: Counter = Counter()
        self.rejected: Counter = Counter()
        self.failures: list[FailureRecord] = []

    def _readable(self, reply: Any) -> bool:
        return parse_level(reply.text, self.prompt.low, self.prompt.high).ok

    async def _part(self, item_id: str, png: Path, sha: str, region: bool,
                    ) -> tuple[int, str, Usage, float, int] | tuple[None, str, str, str | None]:
        """(level, hash, usage, cost, asks) or (None, error kind, message, raw)."""
        max_reasks = 0 if self.responder.deterministic else self.config.max_reasks
        reason = ""
        usage = Usage()
        cost = 0.0
        last = ""
        for reask in range(max_reasks + 1):
            request = ResponseRequest(
                sample=_Item(item_id),  # type: ignore[arg-type]
                prompt_id=self.prompt.prompt_id, prompt_version=self.prompt.version,
                system=self.prompt.system, user=self.user_text[region],
                images=(ImageInput("Region:" if region else "Image:", png, sha),),
                max_tokens=self.cfg.max_tokens, temperature=self.cfg.temperature, word_limit=0,
                reask=reask, reask_text=self.prompt.reask(reason) if reask else "",
                extra=dict(self.config.extra), image_detail=self.config.image_detail)
            # a cached answer the parser rejects (an earlier run's) is asked anew, so a
            # re-run can recover an image that failed; an accepted one is never paid twice
            if self.core.structured:  # responder.structured_output: {"level": n} by schema
                request = dataclasses.replace(request, response_format=self.level_format)
            try:
                reply, request_hash, spent, _ = await self.core._ask(request, self.counts,
                                                                     accept=self._readable)
            except _FormatRefused:  # the server refused the schema: text protocol from now on
                request = dataclasses.replace(request, response_format=None)
                reply, request_hash, spent, _ = await self.core._ask(request, self.counts,
                                                                     accept=self._readable)
            cost += spent
            usage = Usage(prompt_tokens=usage.prompt_tokens + reply.usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens
                          + reply.usage.completion_tokens)
            parsed = parse_level(reply.text, self.prompt.low, self.prompt.high)
            if parsed.level is not None:
                return parsed.level, request_hash, usage, cost, reask + 1
            self.rejected[parsed.reason or "unknown"] += 1
            reason = parsed.reason or "unknown"
            last = reply.text
        return None, "rejected", f"answer rejected after {max_reasks + 1} ask(s): {reason}", last

    def _prepare(self, item: ScoreItem) -> list[tuple[str, str, list[int], float, Path, str]]:
        """The parts of one image as PNG files: (name, kind, bbox, area, png, sha256).
        CPU work (decode, segmentation, encode): run in a thread, off the event loop."""
        image = _load(item.path, self.cfg.max_side)
        h, w = image.shape[:2]
        regions = make_regions(image, self.cfg.regions, grid=self.cfg.grid,
                               segments=self.cfg.segments, n_segments=self.cfg.slic_segments,
                               compactness=self.cfg.compactness,
                               min_area=self.cfg.min_region_area)
        parts = [("global", "global", [0, 0, w, h], 1.0, *_png(self.store, image))]
        parts += [(r.name, r.kind, list(r.bbox), r.area,
                   *_png(self.store, crop_region(image, r, self.cfg.mask_value)))
                  for r in regions]
        return parts

    async def item(self, item: ScoreItem) -> ScoreRecord | None:
        """Score one image: the global ask first (a failure there spares the regions), then
        every region concurrently. Raises BudgetStop when the budget leaves no room."""
        item_id = f"{item.dataset}/{item.image_id}"
        try:
            parts = await asyncio.to_thread(self._prepare, item)
        except (OSError, ValueError) as err:
            return self._fail(item_id, "bad_image", f"{item.rel_path}: {err}", None, 1, None)

        async def ask(part: tuple[str, str, list[int], float, Path, str]) -> Any:
            return await self._part(item_id, part[4], part[5], region=part[1] != "global")

        first = await asyncio.gather(ask(parts[0]), return_exceptions=True)
        rest = await asyncio.gather(*(ask(p) for p in parts[1:]), return_exceptions=True) \
            if not isinstance(first[0], BaseException) and first[0][0] is not None else []
        scored: list[PartScore] = []
        usage, cost = Usage(), 0.0
        for part, out in zip(parts, [*first, *rest]):
            name, kind, bbox, area = part[:4]
            if isinstance(out, BudgetStop):
                raise out
            if isinstance(out, ResponderError):
                return self._fail(item_id, out.kind, f"{name}: {out}", out.status,
                                  getattr(out, "attempts", 1), out.raw_output)
            if isinstance(out, BaseException):
                raise out
            if out[0] is None:
                _, kind_err, message, raw = out
                return self._fail(item_id, kind_err, f"{name}: {message}", None,
                                  self.config.max_reasks + 1, raw)
            level, request_hash, u, c, asks = out
            usage = Usage(prompt_tokens=usage.prompt_tokens + u.prompt_tokens,
                          completion_tokens=usage.completion_tokens + u.completion_tokens)
            cost += c
            scored.append(PartScore(name=name, kind=kind, bbox=bbox, area=round(area, 6),
                                    level=level, request_hash=request_hash, attempts=asks))
        glob, local = scored[0], scored[1:]
        final = aggregate(glob.level, [(p.level, p.area) for p in local], self.cfg.global_weight)
        low, high = self.prompt.low, self.prompt.high
        self.counts["scored"] += 1
        return ScoreRecord(
            dataset=item.dataset, image_id=item.image_id, path=item.rel_path, split=item.split,
            responder=self.responder.name, model=self.responder.model,
            prompt_id=self.prompt.prompt_id, prompt_version=self.prompt.version,
            levels=self.cfg.levels, regions_mode=self.cfg.regions,
            global_weight=self.cfg.global_weight, global_level=glob.level, regions=local,
            final=round(final, 6), norm=round((final - low) / (high - low), 6), usage=usage,
            cost_usd=round(cost, 8), settings_hash=self.settings)

    def _fail(self, item_id: str, kind: str, message: str, status: int | None, attempts: int,
              raw: str | None) -> None:
        """Record an image's failure (returns None: no record)."""
        log.warning("score: %s failed (%s): %s", item_id, kind, message)
        self.counts["failed"] += 1
        self.failures.append(FailureRecord(
            stage=STAGE, item_id=item_id, error_type=kind, message=message, status=status,
            attempts=max(1, attempts), raw_output=raw,
            time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
        return None


async def _score_dataset(run: _ScoreRun, dataset: str, items: list[ScoreItem],
                         progress: ProgressFn | None) -> dict[str, Any]:
    store = run.store
    out_path = scores_path(store, run.responder.key, dataset)
    have = {r["image_id"]: r for r in read_jsonl(out_path)
            if r.get("settings_hash") == run.settings}
    todo = [it for it in items if it.image_id not in have]
    queue: asyncio.Queue[ScoreItem] = asyncio.Queue()
    for it in todo:
        queue.put_nowait(it)
    done = [0]
    stopped = [False]
    order = [it.image_id for it in items]

    def write() -> None:
        rows = [have[i] for i in order if i in have]
        atomic_write_jsonl(out_path, rows)

    async def worker() -> None:
        while not queue.empty() and not stopped[0]:
            it = queue.get_nowait()
            try:
                rec = await run.item(it)
            except BudgetStop:
                stopped[0] = True
                run.counts["budget_stopped"] += 1
                return
            if rec is not None:
                have[it.image_id] = rec.model_dump(mode="json")
            done[0] += 1
            if progress:
                progress(dataset, done[0], len(todo))
            if done[0] % 100 == 0:
                write()

    if progress:
        progress(dataset, 0, len(todo))
    n = min(run.config.concurrency if run.responder.paid else 1, max(1, len(todo)))
    try:
        await asyncio.gather(*(worker() for _ in range(n)))
    finally:
        if todo or out_path.exists():
            write()
    return {"images": len(items), "already_done": len(items) - len(todo), "todo": len(todo),
            "scored": sum(1 for it in todo if it.image_id in have),
            "scores_path": store.rel(out_path) if out_path.exists() else None}


def labelled_items(store: Store, dataset: str) -> list[ScoreItem]:
    """The images of a labelled source written by the labels stage."""
    src = store.root / "labels" / dataset / "images.jsonl"
    if not src.exists():
        msg = f"{src}: no labelled images for {dataset}; run `dqgen labels build` first"
        raise FileNotFoundError(msg)
    out = []
    for im in read_jsonl(src, LabelledImage):
        rel = f"labels/{dataset}/src/{im.path}"
        out.append(ScoreItem(dataset, im.image_id, store.root / rel, rel, im.split))
    return out


def sample_items(store: Store, kinds: list[str], splits: list[str]) -> list[ScoreItem]:
    """The synthetic images of the sample records (image A, and B of pairs), as items of
    the scores file `samples` with ids `<sample id>/A` and `<sample id>/B`."""
    from pipeline.records import SampleRecord

    out = []
    for kind in kinds:
        for split in splits:
            for s in read_jsonl(store.samples_path(kind, split), SampleRecord):
                for role, info in (("A", s.image_A), ("B", s.image_B)):
                    if info is not None:
                        out.append(ScoreItem(SAMPLES, f"{s.sample_id}/{role}",
                                             store.abs(info.path), info.path, split))
    return out


def reference_items(store: Store) -> list[ScoreItem]:
    """The ingested references (references.jsonl), for pseudo-labels."""
    return [ScoreItem(REFERENCES, r.ref_id, store.abs(r.path), r.path, r.split)
            for r in read_jsonl(store.references_index, ReferenceRecord)]


def score_items(store: Store, groups: dict[str, list[ScoreItem]], *, config: ResponderConfig,
                cfg: ScoringConfig, responder: Responder | None = None,
                progress: ProgressFn | None = None) -> dict[str, Any]:
    """Score every item of `groups` ({dataset: items}); returns the run summary."""
    if responder is None:
        responder = make_responder(config)
    if config.kind == "template" and responder.name == "template":
        msg = ("scoring needs a model: the template responder writes descriptions, not levels "
               "(use --responder openai with a base_url and OPENAI_API_KEY)")
        raise ValueError(msg)
    prompt = load_scoring_prompt(cfg.prompt_version, cfg.levels, cfg.standards)
    run = _ScoreRun(store, responder, config, cfg, prompt)
    t0 = time.monotonic()

    async def main() -> dict[str, Any]:
        try:
            return {ds: await _score_dataset(run, ds, items, progress)
                    for ds, items in groups.items()}
        finally:
            await responder.aclose()

    per = _run_sync(main())  # also from inside a running loop (Prefect, notebooks)
    attempted = {f"{ds}/{it.image_id}" for ds, items in groups.items() for it in items}
    keep = [f for f in store.failures(STAGE) if f.item_id not in attempted]
    # failures/score.jsonl: this run's failures plus earlier ones of items not attempted
    # now (a re-run retries every unscored image, so its old failure is replaced)
    if run.failures or store.failures_path(STAGE).exists():
        atomic_write_jsonl(store.failures_path(STAGE), keep + run.failures)
    c = run.counts
    summary = {
        "responder": responder.name, "model": responder.model, "key": responder.key,
        "prompt_version": prompt.version, "settings_hash": run.settings,
        "datasets": per, "images": sum(p["images"] for p in per.values()),
        "scored": c["scored"], "failed": c["failed"], "calls": c["calls"],
        "cached": c["cached"], "retries": c["retries"],
        "rejected": dict(sorted(run.rejected.items())),
        "errors": {k[6:]: v for k, v in sorted(c.items()) if k.startswith("error_")},
        "prompt_tokens": c["prompt_tokens"], "completion_tokens": c["completion_tokens"],
        "cost_usd": round(run.core.budget.spent, 6), "budget_reached": run.core.budget.reached,
        "elapsed_s": round(time.monotonic() - t0, 3),
    }
    atomic_write_json(store.root / "scores" / responder.key / "run.json",
                      {"config": cfg.model_dump(mode="json"), "settings_hash": run.settings,
                       "responder": config.model_dump(mode="json")})
    log_path = store.logs_dir / "score" / f"{responder.key}.jsonl"
    append_jsonl(log_path, [{"time": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), **summary}])
    return summary


def score_images(manifest: Manifest, store: Store, *, config: ResponderConfig | None = None,
                 cfg: ScoringConfig | None = None, datasets: list[str] | None = None,
                 references: bool | None = None, samples: bool | None = None,
                 responder: Responder | None = None,
                 progress: ProgressFn | None = None) -> dict[str, Any]:
    """Score the manifest's labelled sources (and references) with its responder."""
    config = config or manifest.responder
    cfg = cfg or manifest.scoring
    names = datasets or cfg.datasets or [s.dataset for s in manifest.sources]
    groups = {name: labelled_items(store, name) for name in names}
    if references if references is not None else cfg.references:
        groups[REFERENCES] = reference_items(store)
    if samples if samples is not None else cfg.samples:
        groups[SAMPLES] = sample_items(store, manifest.kinds(), manifest.splits())
    return score_items(store, groups, config=config, cfg=cfg, responder=responder,
                       progress=progress)


def stage_score(ctx: Any) -> dict[str, Any]:
    """The build's score stage: runs when the manifest enables `scoring`."""
    m = ctx.manifest
    if not m.scoring.enabled:
        return {}
    summary = score_images(m, ctx.store)
    if m.scoring.references:
        from pipeline.score.pseudo import write_pseudo_labels

        summary["pseudo_labels"] = write_pseudo_labels(m, ctx.store, summary["key"])
    return summary
