"""The online run: each request of a split travels as one chat call (cache first, then the
budget, the rate limiter and the one retry policy), its answer validated, re-asked after a
rejection, accepted answers appended to the responses file, failures recorded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from pipeline.manifest import ResponderConfig
from pipeline.ratelimit import RateLimiter
from pipeline.records import FailureRecord, ResponseRecord, SampleRecord, Usage
from pipeline.respond.backoff import backoff_wait
from pipeline.respond.cache import ResponseCache
from pipeline.respond.common import STAGE, ProgressFn, _scrub
from pipeline.respond.cost import Budget, BudgetStop, batch_price_for, cost_usd, price_for
from pipeline.respond.files import finalize, set_aside_other_versions
from pipeline.respond.locks import file_lock, repair
from pipeline.respond.runlog import safe_url
from pipeline.respond.structured import COMPARISON_FORMAT, parse_structured, refuses_format
from pipeline.responders import Responder, ResponderError
from pipeline.responders.base import Reply, ResponseRequest
from pipeline.responders.prompting import Instruction, build_request
from pipeline.store import Store, append_jsonl, atomic_write_json, read_jsonl
from pipeline.validate import validate_answer

__all__ = ["AUTH_KINDS", "SampleSource", "_Run", "_SplitResult"]

log = logging.getLogger(__name__)

# A refused key (HTTP 401/403): every later request would be refused too.
AUTH_KINDS = ("auth", "permission")


class _FormatRefused(Exception):
    """The server refused the request's response_format (the run falls back to text)."""


class BatchPending(Exception):
    """The request has no answer yet: it travels in a batch (pipeline.respond.batch)."""


def load_instruction(kind: str, version: str) -> Instruction:
    """The versioned instruction, looked up on the package at call time so that
    `pipeline.respond.load_instruction` stays the one place to replace it (tests do)."""
    from pipeline import respond as package

    return package.load_instruction(kind, version)


class SampleSource:
    """What a run answers: the synthetic samples (samples/<kind>/<split>.jsonl) with their
    instructions and validation rules. Other item kinds plug in by providing the same
    methods (pipeline/respond/mos.py: human-labelled images with their MOS), so cache,
    budget, rate limits, retries, re-asks and the failure log stay one implementation."""

    def version(self, config: ResponderConfig) -> str:
        return config.prompt_version

    def items(self, store: Store, kind: str, split: str) -> Iterator[Any]:
        # A tied pair (no verdict: pipeline/effect.py) is left out of every comparison
        # task, so it is not answered: nothing is paid for an answer never used.
        # Streamed: the records are read as they are used.
        return (s for s in read_jsonl(store.samples_path(kind, split), SampleRecord)
                if not s.tie)

    def out_path(self, store: Store, key: str, kind: str, split: str) -> Any:
        return store.responses_path(key, kind, split)

    def instruction(self, kind: str, version: str) -> Instruction:
        return load_instruction(kind, version)

    def request(self, sample: Any, store: Store, instruction: Instruction, *, reask: int,
                reasons: tuple[str, ...], extra: dict[str, Any],
                image_detail: str) -> ResponseRequest:
        return build_request(sample, store, instruction, reask=reask, reasons=reasons,
                             extra=extra, image_detail=image_detail)

    def validate(self, sample: Any, request: ResponseRequest, text: str,
                 tolerance: float) -> Any:
        B = sample.image_B.distortions if sample.image_B is not None else None
        return validate_answer(text, word_limit=request.word_limit,
                               A=sample.image_A.distortions, B=B,
                               judge_A_better=sample.judge.A_better_B if sample.judge else None,
                               tolerance=tolerance)


@dataclass
class _SplitResult:
    summary: dict[str, Any]
    finished: set[str] = field(default_factory=set)  # accepted, failed, or already done


class _Run:
    """State shared by the splits of one run: responder, limiter, budget, cache."""

    def __init__(self, store: Store, responder: Responder, config: ResponderConfig,
                 progress: ProgressFn | None, budget: Budget | None,
                 source: SampleSource | None = None, run_id: str | None = None) -> None:
        self.source = source if source is not None else SampleSource()
        self.store = store
        self.run_id = run_id  # recorded in the cache entries this run pays for
        self.auth_error: ResponderError | None = None  # a 401/403: nothing more is sent
        self.failed_ids: set[str] = set()  # samples this run recorded a failure for
        # set by `respond` (pipeline/respond/run.py): the build's process pool for local
        # responders (pipeline/respond/local.py) and the detail subsets (pipeline/detail.py)
        self.pool: Executor | None = None
        self.subsets: dict[tuple[str, str], set[str] | None] = {}
        self.responder = responder
        self.config = config
        self.progress = progress
        self.cache = ResponseCache(store.cache_dir)
        self._info_checked = False
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.price = price_for(responder.model, config)
        self.batch_price = batch_price_for(responder.model, config)
        self.batch: Any = None  # a BatchQueue when responder.mode is batch (run.py sets it)
        # structured outputs for pairs; switched off for the run when the server refuses
        self.structured = bool(config.structured_output) and responder.paid
        cap = config.max_cost_usd
        self.budget = budget if budget is not None else Budget(cap=cap)
        if responder.paid and self.budget.cap is not None and self.price is None:
            msg = (f"max_cost_usd is set but no price is known for model {responder.model!r}: "
                   f"add it to prompts/prices.yaml or set responder.price_input_per_1m and "
                   f"responder.price_output_per_1m")
            raise ValueError(msg)

    # one call with the retry policy --------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After (capped at
        `retry_after_max_s`) when it sent one, else `backoff_wait`. A plain callable over
        tenacity's RetryCallState, so it works with every tenacity >= 8.2."""
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.config.retry_after_max_s)
        return backoff_wait(state.attempt_number, initial=self.config.backoff_initial_s,
                            maximum=self.config.backoff_max_s,
                            jitter=self.config.backoff_initial_s)

    async def _call(self, request: ResponseRequest, est_tokens: int, counts: Counter) -> Reply:
        calls = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts), wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ResponderError) and e.retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.limiter.acquire(est_tokens)
                    calls += 1
                    counts["calls"] += 1
                    if calls > 1:
                        counts["retries"] += 1
                    try:
                        return await self.responder.arespond(request)
                    except ResponderError as err:
                        counts[f"error_{err.kind}"] += 1
                        if err.status == 429 and err.retry_after is not None:
                            self.limiter.pause(min(err.retry_after, self.config.retry_after_max_s))
                        raise
        except ResponderError as err:
            err.attempts = calls  # type: ignore[attr-defined]
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask(self, request: ResponseRequest, counts: Counter, *,
                   accept: Callable[[Reply], bool] | None = None,
                   ) -> tuple[Reply, str, float, bool]:
        """Reply for one request (cache, budget, limiter, retries), its hash, the money
        spent on it in this run (0 for a cache hit), and whether it came from the cache.

        `accept` (set when a failed sample is retried): a cached reply it rejects is not
        replayed; the request is asked again and the new reply replaces the cache entry.
        An accepted cached reply is always replayed, so a good answer is never paid twice.
        """
        responder = self.responder
        request_hash = request.hash_for(responder.model)
        if not responder.paid:
            reply = await responder.arespond(request)
            return reply, request_hash, 0.0, False
        cached = self.cache.get(request_hash)
        if cached is not None and self.batch is not None and request_hash in self.batch.fresh:
            self.batch.fresh.discard(request_hash)  # collected by this run: paid now
            counts["batch_answers"] += 1
            counts["prompt_tokens"] += cached.usage.prompt_tokens
            counts["completion_tokens"] += cached.usage.completion_tokens
            return cached, request_hash, cost_usd(cached.usage, self._price_of(cached)), False
        if cached is not None:
            if accept is None or accept(cached):
                counts["cached"] += 1
                return cached, request_hash, 0.0, True  # paid for in an earlier run
            counts["cache_bypassed"] += 1  # a rejected answer of an earlier run: ask anew
        if self.batch is not None and not (request.reask
                                           and self.config.batch_reasks == "online"):
            if request_hash not in self.batch.in_flight():
                error = self.batch.take_error(request_hash)
                if error is not None:
                    raise error
            self.batch.want(request_hash, request)
            counts["batch_pending"] += 1
            raise BatchPending
        prompt_est = request.estimated_prompt_tokens(self.config.image_tokens)
        worst = cost_usd(Usage(prompt_tokens=prompt_est, completion_tokens=request.max_tokens),
                         self.price)
        if not self.budget.try_reserve(worst):
            raise BudgetStop
        actual = 0.0
        try:
            try:
                reply = await self._call(request, prompt_est + request.max_tokens, counts)
            except ResponderError as err:
                if request.response_format is None or not refuses_format(err):
                    raise
                self._refuse_structured(err)
                raise _FormatRefused from None
            actual = cost_usd(reply.usage, self.price)
            counts["prompt_tokens"] += reply.usage.prompt_tokens
            counts["completion_tokens"] += reply.usage.completion_tokens
        finally:
            self.budget.settle(worst, actual)
        self.cache.put(request_hash, reply, request, responder.model,  # before anything else
                       run_id=self.run_id, cost_usd=actual)
        return reply, request_hash, actual, False

    def _refuse_structured(self, err: ResponderError) -> None:
        if self.structured:
            self.structured = False
            log.warning("respond: the server refused response_format (%s); falling back to "
                        "the text protocol for the rest of this run", _scrub(str(err))[:200])

    def _price_of(self, reply: Reply) -> tuple[float, float] | None:
        return self.batch_price if reply.mode == "batch" else self.price

    def _validate(self, sample: SampleRecord, request: ResponseRequest, text: str) -> Any:
        return self.source.validate(sample, request, text, self.config.word_limit_tolerance)

    # one sample ----------------------------------------------------------------------
    async def _sample(self, sample: SampleRecord, instruction: Instruction, rel_out: str,
                      counts: Counter, rejected: Counter, flagged: Counter,
                      spent: list[float], *, retrying: bool = False,
                      rejected_cached: Counter | None = None) -> ResponseRecord | None:
        """Ask (and re-ask) for one sample. `retrying`: the sample is re-run because of an
        open failure record, so cached answers that fail validation are asked anew instead
        of replayed (else a retry of a rejected sample would replay the same rejections)."""
        reasons: tuple[str, ...] = ()
        max_reasks = 0 if self.responder.deterministic else self.config.max_reasks
        last_text: str | None = None
        for reask in range(max_reasks + 1):
            if self.auth_error is not None:
                return None  # the key was refused: left to do, not sent
            try:
                request = self.source.request(sample, self.store, instruction, reask=reask,
                                              reasons=reasons, extra=self.config.extra,
                                              image_detail=self.config.image_detail)
                if self.structured and getattr(sample, "image_B", None) is not None:
                    request = dataclasses.replace(request, response_format=COMPARISON_FORMAT)
                accept = None
                if retrying:
                    def accept(reply: Reply, _request: ResponseRequest = request) -> bool:
                        text, _ = self._answer(_request, reply)
                        return bool(self._validate(sample, _request, text).ok)
                try:
                    reply, request_hash, cost, from_cache = await self._ask(request, counts,
                                                                            accept=accept)
                except _FormatRefused:  # asked again with the text protocol
                    request = dataclasses.replace(request, response_format=None)
                    reply, request_hash, cost, from_cache = await self._ask(request, counts,
                                                                            accept=accept)
            except BatchPending:
                return None
            except BudgetStop:
                counts["budget_stopped"] += 1
                return None
            except ResponderError as err:
                if err.kind in AUTH_KINDS:  # not the sample's fault: stop, leave it to do
                    if self.auth_error is None:
                        self.auth_error = err
                        log.error("respond: %s; stopping the run (nothing more is sent)",
                                  _scrub(str(err)))
                    return None
                self._fail(sample, rel_out, err.kind, _scrub(str(err)), err.status,
                           getattr(err, "attempts", 1), err.raw_output)
                counts["failed"] += 1
                return None
            spent[0] += cost
            text, verdict = self._answer(request, reply)
            last_text = text
            v = self._validate(sample, request, text)
            if v.ok and verdict is not None and v.verdict is not None and verdict != v.verdict:
                v = dataclasses.replace(v, ok=False, reasons=("verdict_mismatch",))
            if v.ok:
                flags = list(v.flags) + (["usage_estimated"] if reply.usage_estimated else [])
                flagged.update(flags)
                counts["accepted"] += 1
                return ResponseRecord(
                    sample_id=sample.sample_id, kind=sample.kind, split=sample.split,
                    responder=self.responder.name, model=reply.model or self.responder.model,
                    prompt_id=request.prompt_id, prompt_version=request.prompt_version,
                    request_hash=request_hash, text=text, usage=reply.usage,
                    cost_usd=round(cost_usd(reply.usage, self._price_of(reply)), 8),
                    attempts=reask + 1, flags=flags, verdict=verdict or v.verdict,
                )
            if from_cache and rejected_cached is not None:
                # replayed from the cache: counted when it was first answered
                rejected_cached.update(v.reasons)
            else:
                rejected.update(v.reasons)
                counts["rejected_answers"] += 1
            reasons = v.reasons
        self._fail(sample, rel_out, "rejected",
                   f"answer rejected after {max_reasks + 1} ask(s): {', '.join(reasons)}",
                   None, max_reasks + 1, _scrub(last_text or ""))
        counts["failed"] += 1
        return None

    def _answer(self, request: ResponseRequest, reply: Reply) -> tuple[str, str | None]:
        """The answer text and, for a structured request, the verdict read from its JSON
        (an answer that is not the schema's JSON is read as plain text)."""
        if request.response_format is None:
            return reply.text, None
        obj = parse_structured(reply.text, request.response_format)
        if obj is None:
            return reply.text, None
        return str(obj.get("text", "")).strip(), obj.get("verdict")

    def _fail(self, sample: SampleRecord, rel_out: str, kind: str, message: str,
              status: int | None, attempts: int, raw: str | None) -> None:
        log.warning("respond: sample %s failed (%s): %s", sample.sample_id, kind, message)
        self.failed_ids.add(sample.sample_id)
        self.store.record_failure(FailureRecord(
            stage=STAGE, item_id=sample.sample_id, error_type=kind, message=message,
            path=rel_out, status=status, attempts=max(1, attempts), raw_output=raw))

    # one split -----------------------------------------------------------------------
    async def split(self, kind: str, split: str, *, only_ids: set[str] | None = None,
                    retry_failed: bool = False) -> _SplitResult:
        t0 = time.monotonic()
        store, responder = self.store, self.responder
        subset = self.subsets.get((kind, split))  # None: every sample gets an answer
        out_path = self.source.out_path(store, responder.key, kind, split)
        rel_out = out_path.relative_to(store.root).as_posix()
        version = self.source.version(self.config)
        with file_lock(out_path):
            repair(out_path)
            done, superseded = set_aside_other_versions(store, out_path, version)
        open_failed = {f.item_id for f in store.failures(STAGE) if f.path == rel_out}
        retry_ids = open_failed if retry_failed else set()
        result = _SplitResult(summary={})
        # One streamed pass over the items: ids are held, records only of the samples to
        # answer (a local responder over the pool re-reads even those chunk by chunk).
        local = (self.pool is not None and not responder.paid
                 and type(self.source) is SampleSource)
        order: list[str] = []
        todo: list[Any] = []
        todo_ids: set[str] = set()
        n_wanted = n_done = 0
        for s in self.source.items(store, kind, split):
            sid = s.sample_id
            if subset is not None and sid not in subset:
                continue
            order.append(sid)
            if only_ids is not None and sid not in only_ids:
                continue
            n_wanted += 1
            if sid in done:
                n_done += 1
                result.finished.add(sid)
            elif retry_failed or only_ids is not None or sid not in open_failed:
                todo_ids.add(sid)
                if not local:
                    todo.append(s)
        del done
        counts: Counter = Counter()
        rejected: Counter = Counter()
        rejected_cached: Counter = Counter()
        flagged: Counter = Counter()
        spent = [0.0]
        total = len(todo_ids)
        if self.progress:
            self.progress(kind, split, 0, total)
        if todo_ids:
            self._write_responder_info()
            instruction = self.source.instruction(kind, version)
            queue: asyncio.Queue[SampleRecord] = asyncio.Queue()
            if local:  # local samples: over the pool
                from pipeline.respond.local import run_local

                run_local(self, self.pool, kind, split,
                          (s for s in self.source.items(store, kind, split)
                           if s.sample_id in todo_ids), total, rel_out, retry_ids, counts,
                          rejected, rejected_cached, flagged, result.finished, self.progress)
            else:
                for s in todo:
                    queue.put_nowait(s)
            buffer: list[ResponseRecord] = []
            finished = [0]

            def flush() -> None:
                if buffer:
                    with file_lock(out_path):
                        append_jsonl(out_path, buffer)
                    buffer.clear()

            async def worker() -> None:
                while not queue.empty():
                    if self.budget.reached and self.batch is None:  # batch: spends at submit
                        return
                    if self.auth_error is not None:  # a refused key: nothing more is sent
                        return
                    sample = queue.get_nowait()
                    record = await self._sample(
                        sample, instruction, rel_out, counts, rejected, flagged, spent,
                        retrying=sample.sample_id in retry_ids, rejected_cached=rejected_cached)
                    if record is not None:
                        buffer.append(record)
                        result.finished.add(sample.sample_id)
                        if len(buffer) >= 20:
                            flush()
                    elif sample.sample_id in self.failed_ids:  # (not a count: the
                        result.finished.add(sample.sample_id)  # workers run concurrently)
                    finished[0] += 1
                    if self.progress:
                        self.progress(kind, split, finished[0], total)

            n_workers = min(self.config.concurrency if responder.paid else 1, len(todo))
            todo.clear()  # the queue holds them now
            try:
                await asyncio.gather(*(worker() for _ in range(n_workers)))
            finally:
                flush()
            with file_lock(out_path):
                finalize(out_path, order)
        remaining = sum(1 for sid in todo_ids if sid not in result.finished)
        result.summary = {
            "kind": kind, "split": split, "responder": responder.name,
            "model": responder.model, "key": responder.key,
            "prompt_version": version,
            "samples": len(order), "superseded": superseded,
            "already_done": n_done,
            "skipped_open_failures": n_wanted - total - n_done,
            "todo": total, "accepted": counts["accepted"], "failed": counts["failed"],
            "remaining": remaining, "calls": counts["calls"], "cached": counts["cached"],
            "retries": counts["retries"],
            "rejected": dict(sorted(rejected.items())),
            "rejected_answers": counts["rejected_answers"],
            "rejected_cached": dict(sorted(rejected_cached.items())),
            "cache_bypassed": counts["cache_bypassed"],
            "flagged": dict(sorted(flagged.items())),
            "errors": {k[6:]: v for k, v in sorted(counts.items()) if k.startswith("error_")},
            "prompt_tokens": counts["prompt_tokens"],
            "completion_tokens": counts["completion_tokens"],
            "cost_usd": round(spent[0], 6), "budget_reached": self.budget.reached,
            "auth_refused": self.auth_error is not None,
            "responses_path": rel_out, "elapsed_s": round(time.monotonic() - t0, 3),
        }
        if self.batch is not None:
            result.summary["batch_pending"] = counts["batch_pending"]
            result.summary["batch_answers"] = counts["batch_answers"]
        return result

    def _write_responder_info(self) -> None:
        """responses/<key>/responder.json: the latest settings of this responder key, which
        retry-failures runs with (never the API key: it is not part of the config).

        The key names the model, not the server: answers of one model name from another
        base_url share the folder (and the cache). A change of base_url is logged."""
        path = self.store.root / "responses" / self.responder.key / "responder.json"
        if path.exists() and not self._info_checked:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                before = json.loads(path.read_text(encoding="utf-8"))["config"].get("base_url")
                if before != self.config.base_url:
                    log.warning("respond: %s was answered via base_url %r, now %r; the "
                                "answers share responses/%s/", self.responder.key,
                                safe_url(before), safe_url(self.config.base_url),
                                self.responder.key)
        self._info_checked = True
        atomic_write_json(path, {"responder": self.responder.name, "model": self.responder.model,
                                 "key": self.responder.key,
                                 "config": self.config.model_dump(mode="json")})

