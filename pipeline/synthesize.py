"""Synthesis: render the planned images, judge pairs, and write sample records.

Reads `plans/<kind>/<split>.jsonl`, `references.jsonl` and `references/<ref_id>.png`;
writes `images/<kind>/<split>/<shard>/<sample_id>_{A,B}.png` (Store.image_path), chunk result files
`samples/<kind>/<split>.chunks/<chunk:05d>.json`, and, when every chunk of a split is done,
`samples/<kind>/<split>.jsonl` (one `SampleRecord` per sample, plan order) plus the
deterministic failure logs `failures/synthesize.jsonl` and `failures/judge.jsonl`.

Work unit: a chunk of `manifest.chunk_size` plans, dealt by reference (`iter_chunk_plans`):
the plan is cut into windows of consecutive plans (`DEAL_WINDOW_PLANS`, a whole number of
chunks), and within a window the plans are grouped by reference (stable: first appearance
of the reference, then plan order) before being cut into chunks, so the samples of one
reference land in the same chunk and its PNG is decoded once for all of them. No plan,
seed or sample id changes; the merged `samples/<kind>/<split>.jsonl` and the failure logs
are in plan order as before. `synthesize_chunk` renders each sample (A with
`rng_for(seed, "A")`, B with `rng_for(seed, "B")`; a multi-distortion image applies its two distortions in order on one stream), writes its images atomically,
judges refAB samples while the pixels are in memory, and finally writes the chunk file
atomically: the chunk file is the completion marker. A re-run skips a chunk whose file
exists with the same key (a hash of the plans, the references' sha256 and the encoder
settings); an unfinished chunk is redone whole (rendering is deterministic, so rewritten
images have the same bytes). A chunk done with another judge is re-judged from the images
on disk, not re-rendered. A sample whose rendering raises becomes a failure record (stage
"synthesize") and the chunk goes on; a judge that cannot decide (e.g. a sample id missing
from a predictions file) gives a failure record (stage "judge") and the sample keeps
`judge = None`.

Clean images (no distortion) reuse the resized reference file (`references/<ref_id>.png`)
instead of a copy, so every image of a sample has the reference's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import distortions
from pipeline.ingest import decode_png, encode_png
from pipeline import effect
from pipeline.judge import FrScoreJudge, Judge, make_judge
from pipeline.manifest import Manifest
from pipeline.plan import load_plans, pair_sampler
from pipeline.records import (
    KINDS,
    AppliedDistortion,
    FailureRecord,
    ImageInfo,
    JudgeVerdict,
    ReferenceRecord,
    SamplePlan,
    SampleRecord,
)
from pipeline.seeds import rng_for, stable_hash
from pipeline.store import (
    Store,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    is_environment_error,
    read_jsonl,
)

__all__ = [
    "SYNTH_VERSION",
    "chunk_path",
    "DEAL_WINDOW_PLANS",
    "chunk_plans",
    "chunks_dir",
    "iter_chunk_plans",
    "judge_split",
    "merge_samples",
    "rebuild_failure_logs",
    "render_image",
    "synthesize_chunk",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

SYNTH_VERSION = "4"  # bump when rendering or record layout changes (invalidates chunks)
# 2: effect check and tie rule; 3: images in shard folders (Store.image_path);
# 4: chunks dealt by reference within windows of DEAL_WINDOW_PLANS plans
DEAL_WINDOW_PLANS = 4096  # plans grouped by reference at a time (bounds merge memory)


# --------------------------------------------------------------------------- layout
def chunks_dir(store: Store, kind: str, split: str) -> Path:
    """Folder of the chunk result files of a kind and split."""
    return store.root / "samples" / kind / f"{split}.chunks"


def chunk_path(store: Store, kind: str, split: str, chunk_index: int) -> Path:
    return chunks_dir(store, kind, split) / f"{chunk_index:05d}.json"


def _window_size(chunk_size: int) -> int:
    """Plans per dealing window: a whole number of chunks, about DEAL_WINDOW_PLANS."""
    if chunk_size < 1:
        msg = f"chunk_size must be >= 1, got {chunk_size}"
        raise ValueError(msg)
    return chunk_size * max(1, DEAL_WINDOW_PLANS // chunk_size)


def _windows(items: Iterable[T], size: int) -> Iterator[list[T]]:
    buf: list[T] = []
    for item in items:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _dealt(window: list[T], ref_of: Callable[[T], str]) -> list[T]:
    """The window grouped by reference: references in order of first appearance, each
    reference's items in their order (a stable sort)."""
    first: dict[str, int] = {}
    for item in window:
        first.setdefault(ref_of(item), len(first))
    return sorted(window, key=lambda item: first[ref_of(item)])


def iter_chunk_plans(plans: Iterable[SamplePlan], chunk_size: int
                     ) -> Iterator[tuple[int, list[SamplePlan]]]:
    """Chunks of plans dealt by reference, one window of plans read at a time.

    Every window but the last holds a whole number of chunks, so chunk `i` belongs to
    window `i // (window size / chunk_size)` and the chunk count is ceil(N / chunk_size)
    as with consecutive chunks.
    """
    size = _window_size(chunk_size)
    index = 0
    for window in _windows(plans, size):
        dealt = _dealt(window, lambda p: p.ref_id)
        for start in range(0, len(dealt), chunk_size):
            yield index, dealt[start:start + chunk_size]
            index += 1


def chunk_plans(plans: Sequence[SamplePlan], chunk_size: int) -> list[tuple[int, list[SamplePlan]]]:
    """Chunks of plans dealt by reference: [(chunk_index, plans), ...] (`iter_chunk_plans`)."""
    return list(iter_chunk_plans(plans, chunk_size))


def _as_store(store: Store | str | Path) -> Store:
    return store if isinstance(store, Store) else Store(store)


@lru_cache(maxsize=4)
def _reference_table(index_path: str, mtime_ns: int, size: int) -> dict[str, ReferenceRecord]:
    # Cached per process: at full scale references.jsonl has ~140k rows, read once per worker.
    return {r.ref_id: r for r in read_jsonl(Path(index_path), ReferenceRecord)}


def _references(store: Store) -> dict[str, ReferenceRecord]:
    path = store.references_index
    if not path.exists():
        msg = f"{path} not found: run the ingest stage first"
        raise FileNotFoundError(msg)
    st = path.stat()
    return _reference_table(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _chunk_key(manifest: Manifest, plans: Sequence[SamplePlan],
               refs: dict[str, ReferenceRecord]) -> str:
    # The md mix and whether ties are redrawn (built-in judge) change the rendered images.
    parts: list[str] = [SYNTH_VERSION, str(manifest.png_compress_level), manifest.md_mix,
                        str(manifest.judge.kind == "fr_score")]
    for p in plans:
        ref = refs.get(p.ref_id)
        parts.append(p.model_dump_json())
        parts.append(ref.sha256 if ref is not None else "missing")
    return stable_hash(*parts)


def _read_chunk(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------- rendering
def render_image(ref: np.ndarray, plan_image: Sequence[AppliedDistortion],
                 rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Apply the planned distortions in order; returns (image, notes prefixed by name)."""
    image, notes = ref, []
    for d in plan_image:
        image, new = distortions.apply_with_notes(image, d.name, d.severity, rng)
        # Say which distortion degraded (some notes already start with the name).
        notes += [n if n.startswith(f"{d.name}:") else f"{d.name}: {n}" for n in new]
    return image, notes


def _load_ref(store: Store, ref: ReferenceRecord, cache: dict[str, np.ndarray]) -> np.ndarray:
    if ref.ref_id not in cache:
        arr = decode_png(store.abs(ref.path).read_bytes())
        arr.setflags(write=False)  # shared by the samples of this chunk: never modified
        cache[ref.ref_id] = arr
    return cache[ref.ref_id]


def _judge(judge: Judge, sample_id: str, ref: np.ndarray, a: np.ndarray, b: np.ndarray
           ) -> tuple[JudgeVerdict | None, FailureRecord | None]:
    try:
        return judge.verdict(sample_id, ref, a, b), None
    except Exception as err:  # noqa: BLE001 - any judge failure is recorded, the sample stays
        return None, FailureRecord(stage="judge", item_id=sample_id,
                                   error_type=type(err).__name__, message=str(err))


def _render_sample(manifest: Manifest, store: Store, plan: SamplePlan, ref: ReferenceRecord,
                   ref_px: np.ndarray, judge: Judge | None
                   ) -> tuple[SampleRecord, FailureRecord | None]:
    # The effect check and the tie rule (pipeline/effect.py) decide the final pixels.
    failures: list[FailureRecord] = []

    def judge_fn(a: np.ndarray, b: np.ndarray) -> JudgeVerdict | None:
        verdict, failure = _judge(judge, plan.sample_id, ref_px, a, b)
        failures[:] = [failure] if failure is not None else []
        return verdict

    rendered, verdict, tie = effect.render_sample_images(
        ref_px, plan.seed, plan.A, plan.B, exclude=effect.excluded_categories(ref.grey),
        pair_sampler=pair_sampler(manifest.md_mix),
        judge=judge_fn if judge is not None and plan.B is not None else None,
        redraw_ties=_redraws_ties(judge))
    # Encode everything first, write afterwards: a failing sample leaves no image behind.
    encoded = {side: encode_png(r.pixels, manifest.png_compress_level)
               for side, r in rendered.items() if r.distortions}
    infos: dict[str, ImageInfo] = {}
    for side, r in rendered.items():
        if side in encoded:
            out = store.image_path(plan.kind, plan.split, plan.sample_id, side)
            atomic_write_bytes(out, encoded[side])
            infos[side] = ImageInfo(path=store.rel(out),
                                    sha256=hashlib.sha256(encoded[side]).hexdigest(),
                                    distortions=r.distortions, notes=r.notes,
                                    redraws=r.redraws)
        else:
            infos[side] = ImageInfo(path=ref.path, sha256=ref.sha256, distortions=[])
    failure = failures[0] if failures else None
    record = SampleRecord(
        sample_id=plan.sample_id, kind=plan.kind, split=plan.split, ref_id=plan.ref_id,
        seed=plan.seed, width=int(ref_px.shape[1]), height=int(ref_px.shape[0]),
        image_ref=ref.path, image_A=infos["A"], image_B=infos.get("B"), judge=verdict,
        tie=tie,
    )
    return record, failure


def _redraws_ties(judge: Judge | None) -> bool:
    """A judge that scores the pixels (the built-in one) lets a tied B be redrawn."""
    return isinstance(judge, FrScoreJudge)


def _tie_checked(verdict: JudgeVerdict | None, a: np.ndarray, b: np.ndarray
                 ) -> tuple[JudgeVerdict | None, bool]:
    if verdict is not None and effect.is_tie(verdict.score_A, verdict.score_B, a, b):
        return None, True
    return verdict, False


def _rejudge(store: Store, judge: Judge, data: dict[str, Any]) -> dict[str, Any]:
    """Chunk data with every pair re-judged from the images on disk."""
    samples, judge_failures = [], []
    for row in data["samples"]:
        rec = SampleRecord.model_validate(row)
        if rec.image_B is not None:
            px = [decode_png(store.abs(p).read_bytes())
                  for p in (rec.image_ref, rec.image_A.path, rec.image_B.path)]
            verdict, failure = _judge(judge, rec.sample_id, *px)
            verdict, tie = _tie_checked(verdict, px[1], px[2])
            rec = rec.model_copy(update={"judge": verdict, "tie": tie})
            if failure is not None:
                judge_failures.append(failure.model_dump(mode="json"))
        samples.append(rec.model_dump(mode="json"))
    kept = [f for f in data["failures"] if f["stage"] != "judge"]
    return {**data, "judge": judge.name, "samples": samples, "failures": kept + judge_failures}


# --------------------------------------------------------------------------- stage
def synthesize_chunk(
    manifest: Manifest, store: Store | str | Path, kind: str, split: str, chunk_index: int,
    plans: Sequence[SamplePlan], *, force_judge: bool = False,
) -> dict[str, int]:
    """Render, judge and record one chunk of plans; idempotent, safe in any process or thread.

    Args:
        manifest: encoder settings and judge.
        store: the dataset folder.
        kind, split: which split the plans belong to.
        chunk_index: position of the chunk (its file name).
        plans: the chunk's plans, as dealt by `chunk_plans`.
        force_judge: re-judge a finished chunk even when its judge name is current.

    Returns:
        {"done": n, "skipped": n, "failed": n, "judged": n}: samples rendered now, samples
        of a chunk already done, failures (synthesis and judge) in the chunk, and pairs
        re-judged without re-rendering.
    """
    store = _as_store(store)
    if kind not in KINDS:
        msg = f"kind must be one of {', '.join(KINDS)}, got {kind!r}"
        raise ValueError(msg)
    refs = _references(store)
    key = _chunk_key(manifest, plans, refs)
    path = chunk_path(store, kind, split, chunk_index)
    judge = make_judge(manifest) if kind.startswith("refAB") else None
    old = _read_chunk(path) if path.exists() else None
    if old is not None and old.get("key") == key:
        summary = {"done": 0, "skipped": len(old["samples"]), "failed": len(old["failures"]),
                   "judged": 0}
        if judge is not None and (force_judge or old.get("judge") != judge.name):
            new = _rejudge(store, judge, old)
            atomic_write_json(path, new, indent=None)
            summary.update(failed=len(new["failures"]),
                           judged=sum(1 for s in new["samples"] if s.get("image_B")))
        return summary
    samples: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    cache: dict[str, np.ndarray] = {}
    for plan in plans:
        try:
            ref = refs.get(plan.ref_id)
            if ref is None:
                msg = f"reference {plan.ref_id!r} is not in references.jsonl"
                raise LookupError(msg)
            record, judge_failure = _render_sample(manifest, store, plan, ref,
                                                   _load_ref(store, ref, cache), judge)
        except Exception as err:  # noqa: BLE001 - one bad sample never stops the build
            if is_environment_error(err):  # a full disk is not the sample's fault
                raise
            log.warning("synthesize %s failed: %s: %s", plan.sample_id, type(err).__name__, err)
            failures.append(FailureRecord(stage="synthesize", item_id=plan.sample_id,
                                          error_type=type(err).__name__,
                                          message=f"{plan.sample_id}: {err}",
                                          ).model_dump(mode="json"))
            continue
        samples.append(record.model_dump(mode="json"))
        if judge_failure is not None:
            failures.append(judge_failure.model_dump(mode="json"))
    data = {"chunk": chunk_index, "key": key, "judge": judge.name if judge else None,
            "sample_ids": [p.sample_id for p in plans], "samples": samples,
            "failures": failures}
    atomic_write_json(path, data, indent=None)
    return {"done": len(samples), "skipped": 0, "failed": len(failures), "judged": 0}


def merge_samples(store: Store | str | Path, kind: str, split: str, *,
                  failure_logs: bool = True) -> dict[str, int]:
    """Write `samples/<kind>/<split>.jsonl` from the chunk files, in plan order.

    With `failure_logs` (default), also rewrites `failures/synthesize.jsonl` and
    `failures/judge.jsonl` from every chunk file of the dataset (`rebuild_failure_logs`),
    so they hold no duplicates and the same bytes on every run; a caller merging many
    splits can pass False and call `rebuild_failure_logs` once at the end. Chunk files
    past the end of the plan (a lowered count) are deleted.

    Returns:
        {"samples": n, "failed": n} for this kind and split.

    Raises:
        RuntimeError: a chunk is missing or does not match the plan (synthesis unfinished).
    """
    store = _as_store(store)
    if not store.plan_path(kind, split).exists():
        msg = f"{store.plan_path(kind, split)} not found: run the plan stage first"
        raise RuntimeError(msg)
    # Streamed: plan ids and chunk records are read as they are written out (memory flat
    # in the split's size); a missing or stale chunk aborts the write (the old file stays).
    plan_ids = (p["sample_id"] for p in read_jsonl(store.plan_path(kind, split)))
    state = {"failed": 0, "chunks": 0}

    def stale(index: int) -> RuntimeError:
        return RuntimeError(f"{kind}/{split}: chunk {index} is missing or stale; run "
                            "synthesis for this split before merging")

    def records() -> Iterator[SampleRecord]:
        # Chunks are dealt by reference within windows of consecutive plans: a chunk's
        # records wait here until the plan reaches them, so at most a window is held.
        index = 0
        expected = next(plan_ids, None)
        seen: set[str] = set()
        held: dict[str, dict[str, Any]] = {}
        while expected is not None:
            data = _read_chunk(chunk_path(store, kind, split, index))
            ids = data.get("sample_ids") if data else None
            if not ids or not seen.isdisjoint(ids) or len(set(ids)) != len(ids):
                raise stale(index)
            seen.update(ids)
            held.update((row["sample_id"], row) for row in data["samples"])
            state["failed"] += len(data["failures"])
            index += 1
            while expected is not None and expected in seen:
                seen.discard(expected)
                row = held.pop(expected, None)
                if row is not None:  # a failed sample has no record
                    yield SampleRecord.model_validate(row)
                expected = next(plan_ids, None)
        if seen:  # ids that are not in the plan (or came twice)
            raise stale(index - 1)
        state["chunks"] = index

    n = atomic_write_jsonl(store.samples_path(kind, split), records())
    for extra in sorted(chunks_dir(store, kind, split).glob("*.json")):
        if not extra.stem.isdigit() or int(extra.stem) >= state["chunks"]:
            extra.unlink()
    if failure_logs:
        rebuild_failure_logs(store)
    return {"samples": n, "failed": state["failed"]}


def rebuild_failure_logs(store: Store | str | Path) -> dict[str, int]:
    """Rewrite failures/synthesize.jsonl and failures/judge.jsonl from all chunk files."""
    store = _as_store(store)
    by_stage: dict[str, list[FailureRecord]] = {"synthesize": [], "judge": []}
    for folder in sorted((store.root / "samples").glob("*/*.chunks")):
        found: list[FailureRecord] = []
        for path in sorted(folder.glob("*.json")):
            data = _read_chunk(path) or {}
            found += [FailureRecord.model_validate(f) for f in data.get("failures", [])]
        for rec in _in_plan_order(store, folder, found):
            by_stage.setdefault(rec.stage, []).append(rec)
    for stage, rows in by_stage.items():
        if rows or store.failures_path(stage).exists():
            atomic_write_jsonl(store.failures_path(stage), rows)
    return {stage: len(rows) for stage, rows in by_stage.items()}


def _in_plan_order(store: Store, folder: Path, failures: list[FailureRecord]
                   ) -> list[FailureRecord]:
    """A split's failures (chunk order) in plan order, as when chunks were consecutive plans.

    Chunks are dealt by reference, so chunk order is not plan order; only the failing ids'
    positions are looked up (the plan is streamed, and read only when there are failures).
    """
    if not failures:
        return failures
    kind, split = folder.parent.name, folder.name.removesuffix(".chunks")
    wanted = {f.item_id for f in failures}
    position: dict[str, int] = {}
    plan = store.plan_path(kind, split)
    if plan.exists():
        for i, row in enumerate(read_jsonl(plan)):
            if row["sample_id"] in wanted:
                position[row["sample_id"]] = i
    last = len(position)
    return sorted(failures, key=lambda f: position.get(f.item_id, last))


def judge_split(manifest: Manifest, store: Store | str | Path, kind: str, split: str
                ) -> dict[str, int]:
    """Re-judge every pair of a synthesised refAB split with the manifest's judge, then merge.

    Images are read from disk (PNG is lossless: the same pixels the first judge saw).

    Returns:
        {"judged": n, "failed": n}.
    """
    store = _as_store(store)
    if not kind.startswith("refAB"):
        return {"judged": 0, "failed": 0}
    plans = load_plans(store, kind, split)
    judged = 0
    for index, chunk in chunk_plans(plans, manifest.chunk_size):
        judged += synthesize_chunk(manifest, store, kind, split, index, chunk,
                                   force_judge=True)["judged"]
    merged = merge_samples(store, kind, split)
    return {"judged": judged, "failed": merged["failed"]}
