"""Build orchestration without Prefect: the stage list, the process pool, the lock file.

Stage API (plain functions over the dataset folder; each is idempotent, resumes, and
returns a small JSON-able summary; Prefect tasks in `flows/` wrap exactly these)::

    ingest_references(manifest, store, *, executor=None, on_chunk=None, on_start=None) -> dict
        # or, chunk by chunk: list_sources(manifest) -> (sources, failures),
        #   chunk_items(sources, INGEST_CHUNK_SIZE), ingest_chunk(manifest, store, i, chunk),
        #   merge_references(manifest, store, sources, failures)
    plan_split(manifest, store, kind, split) -> list[SamplePlan]     # writes the plan file
    chunk_plans(plans, chunk_size) -> list[tuple[int, list[SamplePlan]]]  # dealt by reference
    synthesize_chunk(manifest, store, kind, split, chunk_index, plans) -> dict
    merge_samples(store, kind, split, *, failure_logs=True) -> dict  # samples/<kind>/<split>.jsonl
    rebuild_failure_logs(store) -> dict      # failures/{synthesize,judge}.jsonl from all chunks
    judge_split(manifest, store, kind, split) -> dict                # re-judge a split
    write_lock(manifest, store) -> dict                              # manifest.lock.json

`run_build` runs the stages of `STAGES` in order over one `BuildContext`; a stage is a
function `(ctx) -> summary dict`. Later stages (respond, assemble, report) are added to
`STAGES` before "lock", which must stay last because it hashes every output file.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    as_completed,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

import distortions
from pipeline.ingest import (
    INGEST_CHUNK_SIZE,
    chunk_items,
    ingest_chunk,
    ingest_references,
    list_sources,
    merge_references,
)
from pipeline.learnability import PROBE_DIR, stage_probe
from pipeline.manifest import Manifest, check_manifest_files
from pipeline.ownership import check_output_folder, own_folder
from pipeline.plan import load_plans, plan_split, write_plan
from pipeline.progress import BuildProgress, NullProgress
from pipeline.records import KINDS, SamplePlan
from pipeline.seeds import stable_hash
from pipeline.respond import stage_respond
from pipeline.respond.mos import stage_respond_mos
from pipeline.resume import HashLedger, Resume, files_under, sha256_file
from pipeline.score.run import stage_score
from pipeline.store import LOGS_DIR, Store, atomic_writer, read_jsonl
from pipeline.synthesize import (
    SYNTH_VERSION,
    chunk_plans,
    chunks_dir,
    iter_chunk_plans,
    judge_split,
    merge_samples,
    rebuild_failure_logs,
    synthesize_chunk,
)

__all__ = [
    "INGEST_CHUNK_SIZE",
    "STAGES",
    "BuildContext",
    "chunk_items",
    "chunk_plans",
    "ingest_chunk",
    "ingest_references",
    "judge_dataset",
    "judge_split",
    "list_sources",
    "make_executor",
    "merge_references",
    "merge_samples",
    "plan_split",
    "rebuild_failure_logs",
    "regenerate",
    "remove_stale_temp_files",
    "run_build",
    "selected_splits",
    "synthesize_chunk",
    "write_lock",
]

log = logging.getLogger(__name__)

_LOCK_PACKAGES = ("dqgen", "numpy", "opencv-python-headless", "pillow", "scikit-image",
                  "pydantic", "PyYAML", "Wand")


@dataclass
class BuildContext:
    """What every stage of one build sees."""

    manifest: Manifest
    store: Store
    kinds: list[str]
    splits: list[str]
    workers: int = 1
    progress: BuildProgress = field(default_factory=NullProgress)
    executor: Executor | None = None  # a process pool when workers > 1
    summaries: dict[str, Any] = field(default_factory=dict)
    resume: Resume | None = None  # stamps and hashes of a resumable build (pipeline/resume.py)


StageFn = Callable[[BuildContext], dict[str, Any]]


# --------------------------------------------------------------------------- helpers
def _watch_parent(pid: int, interval_s: float = 1.0) -> None:
    while True:
        time.sleep(interval_s)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)  # the build was killed (e.g. SIGKILL): do not linger as an orphan
        except PermissionError:  # pragma: no cover - the pid exists under another user
            pass


def _init_worker(parent_pid: int) -> None:
    # One OpenCV thread per worker process: the pool is the parallelism.
    cv2.setNumThreads(1)
    # A killed parent cannot shut the pool down, and forkserver workers are not its
    # children: each worker exits by itself once the building process is gone.
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="dqgen-parent-watch").start()


# What the pool's forkserver imports once, so that each worker it forks has it already.
POOL_PRELOAD = ("pipeline.synthesize", "pipeline.ingest")


def make_executor(workers: int) -> ProcessPoolExecutor:
    """A process pool of `workers` with one OpenCV thread each.

    Uses the forkserver start method where available: forking a process that runs threads
    (rich's refresh thread, Prefect) is unsafe, and spawn would re-import everything in
    each worker; the server preloads the distortion library once.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(POOL_PRELOAD))
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


@contextmanager
def _cv2_single_thread() -> Iterator[None]:
    old = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def selected_splits(manifest: Manifest, kinds: Sequence[str] | None = None,
                    splits: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(kind, split) pairs of the manifest's counts, filtered by `kinds` and `splits`.

    Raises:
        ValueError: an unknown kind, or a kind/split the manifest has no count for.
    """
    for kind in kinds or []:
        if kind not in KINDS:
            msg = f"unknown kind {kind!r}; known: {', '.join(KINDS)}"
            raise ValueError(msg)
        if kind not in manifest.counts:
            known = ", ".join(manifest.kinds()) or "none"
            msg = f"kind {kind!r} has no counts in the manifest (kinds with counts: {known})"
            raise ValueError(msg)
    # human-labelled sources split into train and test (pipeline.labels.splits)
    allowed = [*manifest.splits(), *[s for s in ("train", "test")
                                     if manifest.sources and s not in manifest.splits()]]
    for split in splits or []:
        if split not in allowed:
            known = ", ".join(allowed) or "none"
            msg = (f"split {split!r} has no counts in the manifest and no human-labelled "
                   f"source gives it (known splits: {known})")
            raise ValueError(msg)
    return [(k, s) for k in manifest.kinds() if not kinds or k in kinds
            for s in manifest.counts[k] if not splits or s in splits]


def remove_stale_temp_files(store: Store) -> int:
    """Delete temp files a killed run left behind (`.<name>.*.tmp`); returns how many."""
    n = 0
    if store.root.exists():
        for path in store.root.rglob(".*.tmp"):
            if path.is_file():
                path.unlink(missing_ok=True)
                n += 1
    return n


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LOCK_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _label_splits(manifest: Manifest, store: Store) -> dict[str, Any]:
    """How each human-labelled source was split (labels/<dataset>/splits.json), summarised:
    rule, grouping, seed, test fraction and the size of every split of every repeat. The
    id lists stay in splits.json, whose hash is among the outputs."""
    out: dict[str, Any] = {}
    for src in manifest.sources:
        path = store.root / "labels" / src.dataset / "splits.json"
        if not path.is_file():
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        out[src.dataset] = {
            **{k: doc.get(k) for k in ("rule", "group_by", "seed", "test_fraction", "unit")},
            "repeats": [{split: len(ids) for split, ids in rep.items()}
                        for rep in doc.get("repeats", [])],
        }
    return out


LOCK_NAME = "manifest.lock.json"  # Store.lock_path


def _lock_files(root: Path) -> Iterator[str]:
    """The output files of a dataset folder, relative, in sorted order (as strings), read
    one folder at a time: hidden names, logs/, probe/ and the lock itself left out; a
    symlinked folder is not entered (as `Path.rglob`)."""

    def walk(folder: str, prefix: str) -> Iterator[str]:
        try:
            with os.scandir(folder) as it:
                entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e)
                           for e in it if not e.name.startswith(".")]
        except OSError:
            return
        for key, entry in sorted(entries, key=lambda x: x[0]):
            rel = prefix + entry.name
            if key.endswith("/"):
                if not prefix and entry.name in (LOGS_DIR, PROBE_DIR):
                    continue
                yield from walk(entry.path, rel + "/")
            elif entry.is_file() and rel != LOCK_NAME:
                yield rel

    yield from walk(str(root), "")


def write_lock(manifest: Manifest, store: Store | str | Path, *,
               ledger: HashLedger | None = None,
               executor: Executor | None = None) -> dict[str, Any]:
    """Write `manifest.lock.json`: resolved manifest, versions, sha256 of every output file.

    The content is deterministic (no timestamp), so two builds of one manifest have equal
    locks. Hidden files (temp files of writes in progress), the run history under logs/,
    the probe's model and run figures under probe/ and the lock itself are left out. The
    sha256 come from the hash ledger (logs/resume/hashes.sqlite, pipeline/resume.py): a
    file whose size and mtime did not change since it was hashed is not read again; new
    files are hashed over `executor`. Streamed: the folder is walked in sorted order and
    the lock written entry by entry (nothing per file is held), with the bytes of the whole
    dict dumped at once (`json.dumps(..., indent=1)`).

    Returns:
        {"files": n} (output files hashed).
    """
    store = store if isinstance(store, Store) else Store(store)
    own = ledger is None
    ledger = ledger if ledger is not None else HashLedger(store)
    head = json.dumps({
        "lock_version": 1,
        "manifest": manifest.model_dump(mode="json"),
        "references_root": str(manifest.references_root()),
        "packages": _versions(),
        "distortions": sorted(distortions.REGISTRY),
        "label_splits": _label_splits(manifest, store),
    }, ensure_ascii=False, indent=1)
    n = 0
    try:
        with atomic_writer(store.lock_path) as f:
            f.write((head[:-2] + ',\n "outputs": {').encode())
            rels = _lock_files(store.root) if store.root.exists() else iter(())
            for rel, sha in ledger.walk(rels, executor):
                line = f"{json.dumps(rel, ensure_ascii=False)}: {json.dumps(sha)}"
                f.write(((",\n  " if n else "\n  ") + line).encode())
                n += 1
            f.write(b"\n }\n}\n" if n else b"}\n}\n")
    finally:
        if own:
            ledger.close()
        else:
            ledger.save()
    return {"files": n}


# --------------------------------------------------------------------------- stages
def stage_ingest(ctx: BuildContext) -> dict[str, Any]:
    """Ingest references (resumes chunk by chunk)."""
    if not ctx.manifest.counts and ctx.manifest.sources:
        return {}  # only human-labelled sources: no reference photos to ingest
    key = ""
    if ctx.resume is not None:  # the same listing (names, sizes, mtimes) and settings: done
        key = _ingest_key(ctx)
        done = ctx.resume.current("ingest", key)
        if done is not None:
            return {"done": 0, "skipped": done.get("done", 0) + done.get("skipped", 0),
                    "failed": done.get("failed", 0), "references": done.get("references", 0)}
    out = ingest_references(
        ctx.manifest, ctx.store, executor=ctx.executor,
        on_start=lambda n: ctx.progress.start("ingest", n, "ingest references"),
        on_chunk=lambda _s: ctx.progress.advance("ingest"))
    if ctx.resume is not None:
        ctx.resume.record("ingest", key, [ctx.store.references_index], out)
    return out


def _ingest_key(ctx: BuildContext) -> str:
    assert ctx.resume is not None
    m = ctx.manifest
    sources, failures = list_sources(m)
    root = m.references_root()
    listing = []
    for src in sources:
        try:
            st = (root / src.source).stat()
            listing.append(f"{src.source}|{src.ref_id}|{src.split}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            listing.append(f"{src.source}|missing")
    return ctx.resume.key(settings={
        "references": m.references.model_dump(mode="json"),
        "resize": m.resize.model_dump(mode="json"), "root": str(root),
        "listing": stable_hash(*listing), "refused": sorted(f.item_id for f in failures)})


def stage_plan(ctx: BuildContext) -> dict[str, Any]:
    """Write the plan of every selected kind and split."""
    out = {}
    m = ctx.manifest
    for kind, split in selected_splits(ctx.manifest, ctx.kinds, ctx.splits):
        name, key = f"plan:{kind}/{split}", ""
        if ctx.resume is not None:  # unchanged inputs and plan file: nothing to do
            key = ctx.resume.key(files=[ctx.store.references_index], settings={
                "seed": m.seed, "clean_probability": m.clean_probability,
                "md_mix": getattr(m, "md_mix", None),
                "count": m.counts.get(kind, {}).get(split, 0)})
            done = ctx.resume.current(name, key)
            if done is not None:
                out[f"{kind}/{split}"] = done["plans"]
                continue
        out[f"{kind}/{split}"] = write_plan(ctx.manifest, ctx.store, kind, split)
        if ctx.resume is not None:
            ctx.resume.record(name, key, [ctx.store.plan_path(kind, split)],
                              {"plans": out[f"{kind}/{split}"]})
    return out


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def _plan_chunks(store: Store, kind: str, split: str, size: int
                 ) -> Iterator[tuple[int, list[SamplePlan]]]:
    """The chunks of a written plan, read from disk one dealing window at a time (the
    parent never holds a whole plan); the same chunks as `chunk_plans(load_plans(...))`."""
    return iter_chunk_plans(read_jsonl(store.plan_path(kind, split), SamplePlan), size)


def _synth_key(ctx: BuildContext, kind: str, split: str) -> str:
    """What a split's samples depend on (besides the code): plan, references, settings."""
    assert ctx.resume is not None
    m = ctx.manifest
    judge: dict[str, Any] = m.judge.model_dump(mode="json")
    if m.judge.kind == "predictions" and m.judge.predictions:
        try:
            judge["predictions_sha256"] = sha256_file(m.resolve(m.judge.predictions))
        except OSError:  # the judge itself reports the missing file
            judge["predictions_sha256"] = None
    return ctx.resume.key(
        files=[ctx.store.plan_path(kind, split), ctx.store.references_index],
        settings={"synth": SYNTH_VERSION, "png": m.png_compress_level,
                  "chunk_size": m.chunk_size, "judge": judge})


def _synthesize(ctx: BuildContext, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    size = ctx.manifest.chunk_size
    remaining: dict[tuple[str, str], int] = {}
    totals: dict[str, dict[str, int]] = {}
    keys: dict[tuple[str, str], str] = {}
    if ctx.resume is not None:  # splits whose inputs and samples file are unchanged: done
        todo = []
        for kind, split in pairs:
            keys[(kind, split)] = _synth_key(ctx, kind, split)
            done = ctx.resume.current(f"synthesize:{kind}/{split}", keys[(kind, split)])
            if done is None:
                todo.append((kind, split))
            else:
                totals[f"{kind}/{split}"] = {
                    "done": 0, "skipped": done.get("done", 0) + done.get("skipped", 0),
                    "failed": done.get("failed", 0), "judged": 0,
                    "samples": done.get("samples", 0)}
        if not todo:
            return totals
        pairs = todo
    for kind, split in pairs:
        n = -(-_count_lines(ctx.store.plan_path(kind, split)) // size)
        remaining[(kind, split)] = n
        ctx.progress.start(f"{kind}/{split}", n, f"{kind} {split}")
    totals.update({
        f"{k}/{s}": {"done": 0, "skipped": 0, "failed": 0, "judged": 0} for k, s in pairs})

    def merged(key: tuple[str, str]) -> None:
        name = f"{key[0]}/{key[1]}"
        totals[name]["samples"] = merge_samples(ctx.store, *key, failure_logs=False)["samples"]
        if ctx.resume is not None:
            ctx.resume.record(f"synthesize:{name}", keys[key], [ctx.store.samples_path(*key)],
                              totals[name])

    def finished(key: tuple[str, str], summary: dict[str, int]) -> None:
        name = f"{key[0]}/{key[1]}"
        for k, v in summary.items():
            totals[name][k] += v
        ctx.progress.advance(name)
        remaining[key] -= 1
        if remaining[key] == 0:
            merged(key)

    for key, n in remaining.items():  # empty splits: merge writes an empty file
        if not n:
            merged(key)
    work = ((key, index, plans) for key in remaining
            for index, plans in _plan_chunks(ctx.store, *key, size))
    if ctx.executor is None:
        with _cv2_single_thread():
            for key, index, plans in work:
                finished(key, synthesize_chunk(ctx.manifest, ctx.store, *key, index, plans))
    else:
        # A bounded window of chunks in flight: plans stay on disk until a worker is free.
        window = max(2, 3 * ctx.workers)
        futures: dict[Future[dict[str, int]], tuple[str, str]] = {}
        try:
            for key, index, plans in work:
                while len(futures) >= window:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in done:
                        finished(futures.pop(fut), fut.result())
                fut = ctx.executor.submit(synthesize_chunk, ctx.manifest, ctx.store.root,
                                          *key, index, plans)
                futures[fut] = key
            for fut in as_completed(list(futures)):
                finished(futures.pop(fut), fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    rebuild_failure_logs(ctx.store)  # once, from every chunk file of the dataset
    return totals


def stage_synthesize(ctx: BuildContext) -> dict[str, Any]:
    """Render, judge and merge every selected kind and split (resumes chunk by chunk)."""
    return _synthesize(ctx, selected_splits(ctx.manifest, ctx.kinds, ctx.splits))


def stage_labels(ctx: BuildContext) -> dict[str, Any]:
    """Read the manifest's human-labelled `sources` (pipeline/labels/build.py): image
    records, splits and instant-rating pairs/<dataset>/ that the assemble stage turns into
    refAB_brief / AB_brief records."""
    if not ctx.manifest.sources:
        return {}
    from pipeline.labels.build import build_labels

    ctx.progress.start("labels", len(ctx.manifest.sources), "human-labelled sources")
    result = build_labels(ctx.manifest, ctx.store,
                          on_source=lambda _name, _summary: ctx.progress.advance("labels"))
    out: dict[str, Any] = {}
    for name, s in result["sources"].items():
        failed = 1 if "error" in s else sum(s.get("failures", {}).values())
        out[name] = {"done": s.get("images") or s.get("native_pairs", 0), "failed": failed,
                     "pairs": sum(s.get("pairs", {}).values())}
    return out


def _derived_inputs(ctx: BuildContext) -> list[Path]:
    """The files the task files and the report are made from: samples, responses,
    human-judged pairs and the labels stage's records (what `assemble_tasks` and
    `write_report` read)."""
    root = ctx.store.root
    files = sorted(p for p in (root / "samples").glob("*/*.jsonl")) if (root / "samples").is_dir() else []
    files += [p for p in files_under(root, "responses", "pairs", "scores", "mos")
              if p.suffix in (".jsonl", ".json")]
    # human-labelled sources (labels stage): records, pairs and splits of each dataset
    # (not labels/<dataset>/src, the link to the source images)
    labels = root / "labels"
    if labels.is_dir():
        files += sorted(p for p in labels.glob("*/*") if p.is_file() and not p.is_symlink()
                        and p.suffix in (".json", ".jsonl"))
    return files


def _derived_settings(ctx: BuildContext) -> dict[str, Any]:
    m = ctx.manifest
    return {"tasks": m.tasks.model_dump(mode="json"), "detail_counts": m.detail_counts,
            "responder": m.responder.model_dump(mode="json"), "seed": m.seed,
            "sources": [s.dataset for s in m.sources], "kinds": ctx.kinds,
            "splits": ctx.splits}


def stage_assemble(ctx: BuildContext) -> dict[str, Any]:
    """Write the task files (pipeline/assemble.py) and the exports the manifest asks for.

    Skipped when no input changed since they were written (pipeline/resume.py)."""
    key = ""
    if ctx.resume is not None:
        key = ctx.resume.key(files=_derived_inputs(ctx), settings=_derived_settings(ctx))
        done = ctx.resume.current("assemble", key)
        if done is not None:
            return done
    out = _assemble(ctx)
    if ctx.resume is not None:
        ctx.resume.record("assemble", key, files_under(ctx.store.root, "tasks", "exports"), out)
    return out


def _assemble(ctx: BuildContext) -> dict[str, Any]:
    from pipeline.assemble import assemble_tasks
    from pipeline.export import export_tasks

    # All splits (pairs/ may hold splits without counts) unless the build was restricted.
    splits = None if set(ctx.splits) == set(ctx.manifest.splits()) else ctx.splits
    summary = assemble_tasks(ctx.manifest, ctx.store, kinds=ctx.kinds, splits=splits)
    out: dict[str, Any] = {f"{t}/{s}": {"done": n} for t, v in summary["tasks"].items()
                           for s, n in v.items()}
    for reason, n in {**summary["skipped"], **summary["dropped"]}.items():
        out[reason] = {"skipped": n}
    for fmt in ctx.manifest.tasks.exports:
        try:
            result = export_tasks(ctx.store, fmt, options=ctx.manifest.tasks.export_options)
        except ValueError as err:  # e.g. deqa-score without labelled sources: said, not fatal
            log.warning("export %s: %s", fmt, err)
            out[f"export:{fmt}"] = {"failed": 1, "error": str(err)}
            continue
        out[f"export:{fmt}"] = {"files": len(result["files"]),
                                "skipped": sum(result["skipped"].values())
                                + len(result["refused"])}
    return out


def stage_report(ctx: BuildContext) -> dict[str, Any]:
    """Write report/ (pipeline/report.py): dataset card, figures, contact sheet.

    Skipped when no input changed since it was written (pipeline/resume.py)."""
    from pipeline.report import write_history_summary, write_report

    if not ctx.manifest.tasks.report:
        write_history_summary(ctx.store, ctx.summaries.get("respond"))  # logs/, history
        return {}

    key = ""
    if ctx.resume is not None:
        inputs = [*_derived_inputs(ctx), *files_under(ctx.store.root, "tasks", "failures"),
                  ctx.store.references_index]
        key = ctx.resume.key(files=inputs, settings=_derived_settings(ctx))
        done = ctx.resume.current("report", key)
        if done is not None:
            write_history_summary(ctx.store, ctx.summaries.get("respond"))  # logs/, history
            return done
    result = write_report(ctx.manifest, ctx.store, respond_summary=ctx.summaries.get("respond"))
    out = {"files": 2 + len(result["figures"]) + 1}
    if ctx.resume is not None:
        ctx.resume.record("report", key, files_under(ctx.store.root, "report"), out)
    return out


def stage_lock(ctx: BuildContext) -> dict[str, Any]:
    """Write manifest.lock.json (last: it hashes every output; files already hashed with
    an unchanged size and mtime are not read again, new ones are hashed over the pool)."""
    ledger = ctx.resume.ledger if ctx.resume is not None else None
    return write_lock(ctx.manifest, ctx.store, ledger=ledger, executor=ctx.executor)


# The stages of `dqgen build --no-prefect`, in order. Later stages go here, after
# "synthesize" and before "lock": ("respond", ...), ("assemble", ...), ("report", ...).
STAGES: list[tuple[str, StageFn]] = [
    ("ingest", stage_ingest),
    ("plan", stage_plan),
    ("synthesize", stage_synthesize),
    ("labels", stage_labels),
    ("score", stage_score),  # pipeline/score/: only when the manifest enables `scoring`
    ("respond", stage_respond),  # pipeline/respond/: the manifest's responder
    ("respond_labels", stage_respond_mos),  # pipeline/respond/mos.py: tasks.labels.describe
    ("assemble", stage_assemble),
    ("probe", stage_probe),  # pipeline/learnability.py: only when the manifest has `probe:`
    ("report", stage_report),
    ("lock", stage_lock),
]


@contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    if workers <= 1:
        yield None
        return
    ex = make_executor(workers)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _context(manifest: Manifest, kinds: Sequence[str] | None, splits: Sequence[str] | None,
             workers: int, out: str | Path | None, progress: BuildProgress | None
             ) -> BuildContext:
    if workers < 1:
        msg = f"workers must be >= 1, got {workers}"
        raise ValueError(msg)
    selected_splits(manifest, kinds, splits)  # validate early
    check_manifest_files(manifest)  # e.g. a missing judge.predictions: fail before ingest
    store = Store(Path(out).expanduser().resolve() if out is not None else manifest.output_dir())
    check_output_folder(manifest, store.root)  # not the references' folder: before any work
    return BuildContext(manifest=manifest, store=store,
                        kinds=list(kinds or manifest.kinds()),
                        splits=list(splits or manifest.splits()), workers=workers,
                        progress=progress or NullProgress())


def run_build(
    manifest: Manifest,
    *,
    kinds: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    stages: Sequence[str] | None = None,
    progress: BuildProgress | None = None,
) -> dict[str, Any]:
    """Run the build stages in order (no Prefect); resumes whatever is already done.

    Args:
        manifest: the build manifest.
        kinds, splits: restrict plan and synthesis to these (default: all in the manifest).
        workers: processes for ingest and synthesis (1: in this process).
        out: dataset folder (default: the manifest's `output`).
        stages: names from `STAGES` to run (default: all, in order).
        progress: progress reporter (default: silent).

    Returns:
        {stage name: its summary} plus "output": the dataset folder.

    Raises:
        ValueError: unknown kind, split or stage name, or workers < 1.
        ManifestError: an input file of the manifest is missing (`judge.predictions`),
            raised before any stage runs.
    """
    names = [n for n, _ in STAGES]
    for name in stages or []:
        if name not in names:
            msg = f"unknown stage {name!r}; known: {', '.join(names)}"
            raise ValueError(msg)
    ctx = _context(manifest, kinds, splits, workers, out, progress)
    with own_folder(ctx.store.root, "build"):
        return _run_stages(ctx, stages, workers)


def _run_stages(ctx: BuildContext, stages: Sequence[str] | None, workers: int
                ) -> dict[str, Any]:
    removed = remove_stale_temp_files(ctx.store)
    if removed:
        log.info("removed %d temp files of an interrupted run", removed)
    for kind, split in selected_splits(ctx.manifest, ctx.kinds, ctx.splits):
        ctx.store.check_image_layout(kind, split)  # refuse the old flat image layout
    ctx.resume = Resume(ctx.store)
    with _pool(workers) as executor:
        ctx.executor = executor
        try:
            for name, fn in STAGES:
                if stages and name not in stages:
                    continue
                ctx.summaries[name] = fn(ctx)
        finally:
            ctx.resume.close()
    return {**ctx.summaries, "output": str(ctx.store.root)}


def regenerate(
    manifest: Manifest, kind: str, split: str, *, workers: int = 1,
    out: str | Path | None = None, progress: BuildProgress | None = None,
) -> dict[str, Any]:
    """Delete and rebuild one kind/split (plan, images, chunks, samples), then the lock.

    The result is byte-identical to the first build of that split (same manifest and
    references). References are ingested first if they are missing.

    Returns:
        {"plan": n, "synthesize": summary, "lock": summary, "output": folder}.
    """
    ctx = _context(manifest, [kind], [split], workers, out, progress)
    with own_folder(ctx.store.root, "regenerate"):
        return _regenerate(ctx, kind, split, workers)


def _regenerate(ctx: BuildContext, kind: str, split: str, workers: int) -> dict[str, Any]:
    manifest, store = ctx.manifest, ctx.store
    remove_stale_temp_files(store)
    if not store.references_index.exists():
        stage_ingest(ctx)
    for path in (store.plan_path(kind, split), store.samples_path(kind, split)):
        path.unlink(missing_ok=True)
    for folder in (store.image_dir(kind, split), chunks_dir(store, kind, split)):
        shutil.rmtree(folder, ignore_errors=True)
    n_plans = write_plan(manifest, store, kind, split)
    with _pool(workers) as executor:
        ctx.executor = executor
        synth = _synthesize(ctx, [(kind, split)])
    return {"plan": n_plans, "synthesize": synth, "lock": write_lock(manifest, store),
            "output": str(store.root)}


def judge_dataset(
    manifest: Manifest, *, kinds: Sequence[str] | None = None,
    splits: Sequence[str] | None = None, out: str | Path | None = None,
    progress: BuildProgress | None = None,
) -> dict[str, Any]:
    """Re-judge every synthesised refAB split with the manifest's judge, then the lock.

    Returns:
        {"<kind>/<split>": {"judged": n, "failed": n}, ..., "lock": summary}.
    """
    ctx = _context(manifest, kinds, splits, 1, out, progress)
    with own_folder(ctx.store.root, "judge"):
        return _judge_all(ctx)


def _judge_all(ctx: BuildContext) -> dict[str, Any]:
    manifest = ctx.manifest
    result: dict[str, Any] = {}
    for kind, split in selected_splits(manifest, ctx.kinds, ctx.splits):
        if not kind.startswith("refAB"):
            continue
        if not ctx.store.plan_path(kind, split).exists():
            msg = f"{kind}/{split} has not been built in {ctx.store.root}: run `dqgen build` first"
            raise FileNotFoundError(msg)
        ctx.progress.message(f"judging {kind}/{split}")
        with _cv2_single_thread():  # as in synthesis: scores never depend on thread count
            result[f"{kind}/{split}"] = judge_split(manifest, ctx.store, kind, split)
    result["lock"] = write_lock(manifest, ctx.store)
    return result
