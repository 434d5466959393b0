"""Local responders (template, replay) over the build's worker pool.

A local responder costs CPU, not money: the samples still to answer are dealt in chunks to
the process pool, each worker answers its chunk with the same `_Run._sample` as the
online run (request, answer, validation), and the parent appends the accepted records and
records the failures in the order of the samples (so the files have the same bytes for
any worker count). The paid openai responder never comes here: it keeps its async
concurrency, rate limiter and budget in one process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.records import FailureRecord, ResponseRecord, SampleRecord
from pipeline.respond.common import STAGE
from pipeline.respond.locks import file_lock
from pipeline.store import Store, append_jsonl

__all__ = ["LOCAL_CHUNK", "answer_chunk", "run_local"]

LOCAL_CHUNK = 128  # samples per task of the pool
_RESPONDERS: dict[str, Any] = {}  # one responder per worker process and config


def _responder(config: ResponderConfig) -> Any:
    from pipeline.responders import make_responder

    key = config.model_dump_json()
    if key not in _RESPONDERS:
        _RESPONDERS.clear()
        _RESPONDERS[key] = make_responder(config)
    return _RESPONDERS[key]


def answer_chunk(config: ResponderConfig, root: str, kind: str, rel_out: str,
                 samples: list[SampleRecord], retry_ids: set[str]) -> dict[str, Any]:
    """Answer `samples` in this process (a pool worker); nothing is written here.

    Returns:
        {"records": [ResponseRecord JSON] in sample order, "failures": [FailureRecord
        JSON], "finished": [ids], "counts", "rejected", "rejected_cached", "flagged"}.
    """
    from pipeline.respond.online import _Run, load_instruction

    responder = _responder(config)
    failures: list[dict[str, Any]] = []

    class _Collect(_Run):
        def _fail(self, sample: SampleRecord, rel_out: str, kind: str, message: str,
                  status: int | None, attempts: int, raw: str | None) -> None:
            failures.append(FailureRecord(
                stage=STAGE, item_id=sample.sample_id, error_type=kind, message=message,
                path=rel_out, status=status, attempts=max(1, attempts),
                raw_output=raw).model_dump(mode="json"))

    run = _Collect(Store(root), responder, config, None, None)
    instruction = load_instruction(kind, config.prompt_version)
    counts: Counter = Counter()
    rejected: Counter = Counter()
    rejected_cached: Counter = Counter()
    flagged: Counter = Counter()
    spent = [0.0]
    records: list[dict[str, Any]] = []
    finished: list[str] = []

    async def go() -> None:
        for sample in samples:
            before = counts["failed"]
            record = await run._sample(sample, instruction, rel_out, counts, rejected,
                                       flagged, spent, retrying=sample.sample_id in retry_ids,
                                       rejected_cached=rejected_cached)
            if record is not None:
                records.append(json.loads(record.model_dump_json()))
                finished.append(sample.sample_id)
            elif counts["failed"] > before:
                finished.append(sample.sample_id)

    asyncio.run(go())
    return {"records": records, "failures": failures, "finished": finished,
            "counts": dict(counts), "rejected": dict(rejected),
            "rejected_cached": dict(rejected_cached), "flagged": dict(flagged)}


def run_local(run: Any, pool: Executor, kind: str, split: str, todo: Iterable[SampleRecord],
              total: int, rel_out: str, retry_ids: set[str], counts: Counter,
              rejected: Counter, rejected_cached: Counter, flagged: Counter,
              finished_ids: set[str],
              progress: Callable[[str, str, int, int], None] | None) -> None:
    """Answer `todo` (`total` samples, read as they are dealt) over `pool`; append records
    and failures in sample order. A bounded window of chunks is in flight or waiting for
    its turn to be written, so the parent holds a few chunks, not the split."""
    store: Store = run.store
    out_path = store.root / rel_out
    chunks = _chunks(iter(todo), LOCAL_CHUNK)
    window = 4 * max(1, getattr(pool, "_max_workers", 2))
    pending: dict[Future[dict[str, Any]], int] = {}
    results: dict[int, dict[str, Any]] = {}
    sizes: dict[int, int] = {}
    next_write, next_submit, done_n = 0, 0, 0
    exhausted = False
    while True:
        while not exhausted and len(pending) + len(results) < window:
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
                break
            fut = pool.submit(answer_chunk, run.config, str(store.root), kind, rel_out,
                              chunk, retry_ids & {s.sample_id for s in chunk})
            pending[fut] = next_submit
            sizes[next_submit] = len(chunk)
            next_submit += 1
        if next_write >= next_submit and exhausted:
            break
        ready, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in ready:
            results[pending.pop(fut)] = fut.result()
        while next_write in results:  # in chunk order: the same bytes for any pool size
            res = results.pop(next_write)
            if res["records"]:
                with file_lock(out_path):
                    append_jsonl(out_path, [ResponseRecord.model_validate(r)
                                            for r in res["records"]])
            for f in res["failures"]:
                store.record_failure(FailureRecord.model_validate(f))
            counts.update(res["counts"])
            rejected.update(res["rejected"])
            rejected_cached.update(res["rejected_cached"])
            flagged.update(res["flagged"])
            finished_ids.update(res["finished"])
            n = sizes.pop(next_write)
            if progress:
                for i in range(n):
                    progress(kind, split, done_n + i + 1, total)
            done_n += n
            next_write += 1


def _chunks(items: Iterator[SampleRecord], size: int) -> Iterator[list[SampleRecord]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk
