"""The respond stage: detail answers for every refA/refAB sample, cached, validated, logged.

Reads `samples/<kind>/<split>.jsonl` (SampleRecord) and writes accepted answers to
`responses/<responder key>/<kind>/<split>.jsonl` (ResponseRecord, sample order), failed
samples to `failures/respond.jsonl` (FailureRecord), and paid answers to the request-hash
cache `cache/responses/<hh>/<hash>.json`. The responder key keeps responders and models
apart ("template", "replay", "openai--gpt-4o"), so their answers never mix.

For each sample still missing (resume), and for each ask (the first, then up to
`max_reasks` re-asks after a validation rejection):

1. build the request from the versioned instruction (prompts/instructions/);
2. look its hash up in the cache; a hit costs nothing (a re-run, or another split with the
   same request, makes zero calls);
3. otherwise (paid responders) reserve the worst-case cost against the budget, wait for
   the rate limiter (requests and tokens per minute), call with the one retry policy
   (tenacity: exponential backoff with jitter, Retry-After honoured and capped; retried:
   429, 5xx, 408/409, timeouts, connection errors, malformed bodies; not retried:
   400/401/403/404, content-policy refusals), and write the reply to the cache at once
   (a killed run loses at most the calls in flight);
4. validate (pipeline.validate); accepted answers are appended to the responses file.

A sample that exhausts its attempts or re-asks becomes a FailureRecord (never the key).
When the budget (`max_cost_usd`) would be exceeded no new call starts, in-flight calls
finish, and the summary says `budget_reached`; a re-run continues where it stopped.
`retry_failures(root)` re-runs exactly the samples of open failure records; for those
samples a cached answer that fails validation is not replayed but asked anew (the new
reply replaces the cache entry), while cached answers that pass are replayed, so an
accepted answer is never paid twice and a plain re-run still makes zero calls.

Prompt versions never mix: a sample counts as answered only by a record of the current
`prompt_version`. Records of another version are set aside (moved, not deleted) to
`responses/<key>/superseded/<kind>/<split>.jsonl` when a split is run, and their samples
are asked again with the current instruction (through the cache: a request already paid
for costs nothing). The key names the model, not the server (base_url): the same model
name served elsewhere shares the folder and the cache; a base_url change is logged.

Every run (the build's stage, `dqgen respond`, `retry-failures`, each `respond_split`
call) appends its summary as one JSON line to `logs/respond/<key>.jsonl` (`log_run`;
read back with `read_run_log`), which pipeline.report totals over all runs. In a summary
`rejected` counts rejections of answers got in that run; answers replayed from the cache
that fail again are counted in `rejected_cached` (they were counted when first paid).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import threading
import uuid
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from pipeline.manifest import Manifest, ResponderConfig
from pipeline.ratelimit import RateLimiter
from pipeline.records import FailureRecord, ResponseRecord, SampleRecord, Usage
from pipeline.responders import Responder, ResponderError, make_responder
from pipeline.responders.base import Reply, ResponseRequest
from pipeline.responders.prompting import Instruction, build_request, load_instruction
from pipeline.store import Store, append_jsonl, atomic_write_json, atomic_write_jsonl, read_jsonl
from pipeline.validate import validate_answer
from prompts import load_yaml

__all__ = [
    "STAGE",
    "Budget",
    "ProgressFn",
    "RUN_LOG",
    "ResponseCache",
    "backoff_wait",
    "cost_usd",
    "log_run",
    "price_for",
    "read_run_log",
    "respond",
    "respond_split",
    "retry_failures",
    "run_log_path",
    "stage_respond",
    "superseded_path",
]

log = logging.getLogger(__name__)

STAGE = "respond"
ProgressFn = Callable[[str, str, int, int], None]  # (kind, split, done, total)
T = TypeVar("T")
_SK = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")


def _scrub(text: str) -> str:
    """Remove the API key (and anything key-shaped) from a message we are about to write."""
    key = os.environ.get("OPENAI_API_KEY", "")
    if key:
        text = text.replace(key, "***")
    return _SK.sub("sk-***", text)


# prices and budget -----------------------------------------------------------------------
def price_for(model: str, config: ResponderConfig | None = None) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens: manifest override, else prompts/prices.yaml by
    exact name or longest prefix; None when unknown."""
    if config is not None and (config.price_input_per_1m is not None
                               or config.price_output_per_1m is not None):
        return (config.price_input_per_1m or 0.0, config.price_output_per_1m or 0.0)
    table: dict[str, dict[str, float]] = load_yaml("prices.yaml")
    if model in table:
        row = table[model]
    else:
        prefixes = [m for m in table if model.startswith(m)]
        if not prefixes:
            return None
        row = table[max(prefixes, key=len)]
    return (float(row["input"]), float(row["output"]))


def cost_usd(usage: Usage, price: tuple[float, float] | None) -> float:
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6


@dataclass
class Budget:
    """A spending cap for one run. Calls reserve their worst-case cost before they start,
    so the cap holds even with many calls in flight."""

    cap: float | None = None
    spent: float = 0.0
    reserved: float = 0.0
    reached: bool = False
    # one Budget may be shared by chunks running in several threads (each with its own loop)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def try_reserve(self, amount: float) -> bool:
        with self._lock:
            if self.cap is None:
                return True
            if self.reached or self.spent + self.reserved + amount > self.cap:
                self.reached = True
                return False
            self.reserved += amount
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            if self.cap is not None:
                self.reserved = max(0.0, self.reserved - reserved)
            self.spent += actual


# cache ----------------------------------------------------------------------------------
class ResponseCache:
    """Request hash -> raw reply, one JSON file each, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, request_hash: str) -> Path:
        return self.root / request_hash[:2] / f"{request_hash}.json"

    def get(self, request_hash: str) -> Reply | None:
        p = self.path(request_hash)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return Reply(text=data["text"], usage=Usage(**data["usage"]),
                         model=data.get("served_model", ""),
                         finish_reason=data.get("finish_reason"),
                         usage_estimated=bool(data.get("usage_estimated")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:  # damaged entry: ask again
            log.warning("ignoring damaged cache entry %s: %s", p, err)
            return None

    def put(self, request_hash: str, reply: Reply, request: ResponseRequest, model: str) -> None:
        atomic_write_json(self.path(request_hash), {
            "request_hash": request_hash, "model": model, "served_model": reply.model,
            "prompt_id": request.prompt_id, "prompt_version": request.prompt_version,
            "reask": request.reask, "sample_id": request.sample.sample_id,
            "text": reply.text, "usage": reply.usage.model_dump(),
            "finish_reason": reply.finish_reason, "usage_estimated": reply.usage_estimated,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        })


# the run --------------------------------------------------------------------------------
def backoff_wait(attempt: int, *, initial: float, maximum: float, jitter: float,
                 rng: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with jitter after failed attempt number `attempt` (1, 2, ...):
    `min(initial * 2 ** (attempt - 1) + uniform(0, jitter), maximum)`, the same formula as
    tenacity's wait_exponential_jitter (whose keywords differ between versions)."""
    exp = initial * 2.0 ** min(max(attempt - 1, 0), 60)
    return max(0.0, min(exp + rng(0.0, max(jitter, 0.0)), maximum))


class _BudgetStop(Exception):
    """The budget leaves no room for this call."""


@dataclass
class _SplitResult:
    summary: dict[str, Any]
    finished: set[str] = field(default_factory=set)  # accepted, failed, or already done


class _Run:
    """State shared by the splits of one run: responder, limiter, budget, cache."""

    def __init__(self, store: Store, responder: Responder, config: ResponderConfig,
                 progress: ProgressFn | None, budget: Budget | None) -> None:
        self.store = store
        self.responder = responder
        self.config = config
        self.progress = progress
        self.cache = ResponseCache(store.cache_dir)
        self._info_checked = False
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.price = price_for(responder.model, config)
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
        if cached is not None:
            if accept is None or accept(cached):
                counts["cached"] += 1
                return cached, request_hash, 0.0, True  # paid for in an earlier run
            counts["cache_bypassed"] += 1  # a rejected answer of an earlier run: ask anew
        prompt_est = request.estimated_prompt_tokens(self.config.image_tokens)
        worst = cost_usd(Usage(prompt_tokens=prompt_est, completion_tokens=request.max_tokens),
                         self.price)
        if not self.budget.try_reserve(worst):
            raise _BudgetStop
        actual = 0.0
        try:
            reply = await self._call(request, prompt_est + request.max_tokens, counts)
            actual = cost_usd(reply.usage, self.price)
            counts["prompt_tokens"] += reply.usage.prompt_tokens
            counts["completion_tokens"] += reply.usage.completion_tokens
        finally:
            self.budget.settle(worst, actual)
        self.cache.put(request_hash, reply, request, responder.model)  # before anything else
        return reply, request_hash, actual, False

    def _validate(self, sample: SampleRecord, request: ResponseRequest, text: str) -> Any:
        B = sample.image_B.distortions if sample.image_B is not None else None
        return validate_answer(text, word_limit=request.word_limit,
                               A=sample.image_A.distortions, B=B,
                               judge_A_better=sample.judge.A_better_B if sample.judge else None,
                               tolerance=self.config.word_limit_tolerance)

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
            try:
                request = build_request(sample, self.store, instruction, reask=reask,
                                        reasons=reasons, extra=self.config.extra,
                                        image_detail=self.config.image_detail)
                accept = None
                if retrying:
                    def accept(reply: Reply, _request: ResponseRequest = request) -> bool:
                        return bool(self._validate(sample, _request, reply.text).ok)
                reply, request_hash, cost, from_cache = await self._ask(request, counts,
                                                                        accept=accept)
            except _BudgetStop:
                counts["budget_stopped"] += 1
                return None
            except ResponderError as err:
                self._fail(sample, rel_out, err.kind, _scrub(str(err)), err.status,
                           getattr(err, "attempts", 1), err.raw_output)
                counts["failed"] += 1
                return None
            spent[0] += cost
            last_text = reply.text
            v = self._validate(sample, request, reply.text)
            if v.ok:
                flags = list(v.flags) + (["usage_estimated"] if reply.usage_estimated else [])
                flagged.update(flags)
                counts["accepted"] += 1
                return ResponseRecord(
                    sample_id=sample.sample_id, kind=sample.kind, split=sample.split,
                    responder=self.responder.name, model=reply.model or self.responder.model,
                    prompt_id=request.prompt_id, prompt_version=request.prompt_version,
                    request_hash=request_hash, text=reply.text, usage=reply.usage,
                    cost_usd=round(cost_usd(reply.usage, self.price), 8), attempts=reask + 1,
                    flags=flags, verdict=v.verdict,
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

    def _fail(self, sample: SampleRecord, rel_out: str, kind: str, message: str,
              status: int | None, attempts: int, raw: str | None) -> None:
        log.warning("respond: sample %s failed (%s): %s", sample.sample_id, kind, message)
        self.store.record_failure(FailureRecord(
            stage=STAGE, item_id=sample.sample_id, error_type=kind, message=message,
            path=rel_out, status=status, attempts=max(1, attempts), raw_output=raw))

    # one split -----------------------------------------------------------------------
    async def split(self, kind: str, split: str, *, only_ids: set[str] | None = None,
                    retry_failed: bool = False) -> _SplitResult:
        t0 = time.monotonic()
        store, responder = self.store, self.responder
        samples_path = store.samples_path(kind, split)
        samples = list(read_jsonl(samples_path, SampleRecord))
        out_path = store.responses_path(responder.key, kind, split)
        rel_out = out_path.relative_to(store.root).as_posix()
        version = self.config.prompt_version
        with _file_lock(out_path):
            _repair(out_path)
            rows, superseded = _set_aside_other_versions(store, out_path, version)
            done = {r["sample_id"] for r in rows}
        open_failed = {f.item_id for f in store.failures(STAGE) if f.path == rel_out}
        wanted = [s for s in samples if only_ids is None or s.sample_id in only_ids]
        todo = [s for s in wanted if s.sample_id not in done
                and (retry_failed or only_ids is not None or s.sample_id not in open_failed)]
        retry_ids = open_failed if retry_failed else set()
        result = _SplitResult(summary={})
        result.finished = {s.sample_id for s in wanted if s.sample_id in done}
        counts: Counter = Counter()
        rejected: Counter = Counter()
        rejected_cached: Counter = Counter()
        flagged: Counter = Counter()
        spent = [0.0]
        total = len(todo)
        if self.progress:
            self.progress(kind, split, 0, total)
        if todo:
            self._write_responder_info()
            instruction = load_instruction(kind, self.config.prompt_version)
            queue: asyncio.Queue[SampleRecord] = asyncio.Queue()
            for s in todo:
                queue.put_nowait(s)
            buffer: list[ResponseRecord] = []
            finished = [0]

            def flush() -> None:
                if buffer:
                    with _file_lock(out_path):
                        append_jsonl(out_path, buffer)
                    buffer.clear()

            async def worker() -> None:
                while not queue.empty():
                    if self.budget.reached:
                        return
                    sample = queue.get_nowait()
                    before_failed = counts["failed"]
                    record = await self._sample(
                        sample, instruction, rel_out, counts, rejected, flagged, spent,
                        retrying=sample.sample_id in retry_ids, rejected_cached=rejected_cached)
                    if record is not None:
                        buffer.append(record)
                        result.finished.add(sample.sample_id)
                        if len(buffer) >= 20:
                            flush()
                    elif counts["failed"] > before_failed:
                        result.finished.add(sample.sample_id)
                    finished[0] += 1
                    if self.progress:
                        self.progress(kind, split, finished[0], total)

            n_workers = min(self.config.concurrency if responder.paid else 1, len(todo))
            try:
                await asyncio.gather(*(worker() for _ in range(n_workers)))
            finally:
                flush()
            with _file_lock(out_path):
                _finalize(out_path, [s.sample_id for s in samples])
        remaining = sum(1 for s in todo if s.sample_id not in result.finished)
        result.summary = {
            "kind": kind, "split": split, "responder": responder.name,
            "model": responder.model, "key": responder.key,
            "prompt_version": version,
            "samples": len(samples), "superseded": superseded,
            "already_done": len(done & {s.sample_id for s in wanted}),
            "skipped_open_failures": len(wanted) - len(todo) - len(
                done & {s.sample_id for s in wanted}),
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
            "responses_path": rel_out, "elapsed_s": round(time.monotonic() - t0, 3),
        }
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
                                _safe_url(before), _safe_url(self.config.base_url),
                                self.responder.key)
        self._info_checked = True
        atomic_write_json(path, {"responder": self.responder.name, "model": self.responder.model,
                                 "key": self.responder.key,
                                 "config": self.config.model_dump(mode="json")})


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on a responses file (a `.lock` file beside it), so chunks of one split
    run by several threads or processes (e.g. Prefect tasks) never lose each other's lines.
    Without fcntl (Windows) it is a no-op: run one split per process there."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _repair(path: Path) -> None:
    """Drop the torn last line a killed run may have left, so appends start on a new line
    (responses files and run logs alike; read_jsonl already skips a torn last line)."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
        atomic_write_jsonl(path, list(read_jsonl(path)))


def superseded_path(store: Store, out_path: Path) -> Path:
    """Where answers of other prompt versions are set aside:
    responses/<key>/superseded/<kind>/<split>.jsonl (outside the <key>/<kind>/ folders that
    assemble and report read)."""
    rel = out_path.relative_to(store.root / "responses")  # <key>/<kind>/<split>.jsonl
    key, rest = rel.parts[0], rel.parts[1:]
    return store.root / "responses" / key / "superseded" / Path(*rest)


def _set_aside_other_versions(store: Store, out_path: Path,
                              version: str) -> tuple[list[dict[str, Any]], int]:
    """Move the records of a prompt version other than `version` out of the responses file
    (appended to `superseded_path`, then the file rewritten atomically), so one responses
    file never mixes prompt versions and those samples count as not answered yet. Returns
    the rows kept (plain dicts) and how many were moved. Call under the file's lock."""
    rows = list(read_jsonl(out_path))  # plain dicts: cheap when nothing is to move
    kept = [r for r in rows if r.get("prompt_version") == version]
    if len(kept) == len(rows):
        return rows, 0
    other = [ResponseRecord.model_validate(r) for r in rows
             if r.get("prompt_version") != version]
    log.info("respond: %d answer(s) of another prompt version set aside from %s (now %s)",
             len(other), out_path, version)
    append_jsonl(superseded_path(store, out_path), other)
    atomic_write_jsonl(out_path, [ResponseRecord.model_validate(r) for r in kept])
    return kept, len(other)


def _finalize(out_path: Path, order: list[str]) -> None:
    """Rewrite the responses file in sample order without duplicates (atomic)."""
    rows = list(read_jsonl(out_path, ResponseRecord))
    seen: dict[str, ResponseRecord] = {}
    for row in rows:
        seen.setdefault(row.sample_id, row)
    rank = {sid: i for i, sid in enumerate(order)}
    ordered = sorted(seen.values(), key=lambda r: rank.get(r.sample_id, len(rank)))
    if ordered != rows:
        atomic_write_jsonl(out_path, ordered)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (then on a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    t = threading.Thread(target=target, name="dqgen-respond")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _arun(store: Store, responder: Responder, config: ResponderConfig,
                targets: Iterable[tuple[str, str, set[str] | None]], *, retry_failed: bool,
                progress: ProgressFn | None, budget: Budget | None, origin: str,
                run_id: str | None = None) -> list[_SplitResult]:
    run = _Run(store, responder, config, progress, budget)
    results = []
    try:
        for kind, split, only_ids in targets:
            # after a budget stop the remaining splits still report what is left to do
            results.append(await run.split(kind, split, only_ids=only_ids,
                                           retry_failed=retry_failed))
    finally:
        await responder.aclose()
    if results:
        log_run(store, responder, config, _combine([r.summary for r in results]),
                origin=origin, run_id=run_id)
    return results


# the run log ----------------------------------------------------------------------------
RUN_LOG = "respond"  # logs/respond/<key>.jsonl


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """The runs of one run log, oldest first (a torn last line of a killed run is skipped)."""
    return [row for row in read_jsonl(Path(path)) if isinstance(row, dict)]


def run_log_path(store: Store, key: str) -> Path:
    """logs/respond/<key>.jsonl: one JSON line per respond run of that responder key.

    Under logs/ (Store.logs_dir): a history, left out of the lock and of the
    byte-identity of builds, since a resumed build has more runs than an uninterrupted one.
    """
    return store.logs_dir / RUN_LOG / f"{key}.jsonl"


def _safe_url(url: str | None) -> str | None:
    """A base_url without user:password@ (never written or logged)."""
    return re.sub(r"//[^/@]*@", "//", url) if url else url


def log_run(store: Store, responder: Responder, config: ResponderConfig,
            result: dict[str, Any], *, origin: str, run_id: str | None = None) -> None:
    """Append one run's summary to `run_log_path` (append-only; one flushed line under the
    file's lock, after dropping a torn line a killed run left), so rejections, calls,
    tokens and cost of every run survive later runs (pipeline.report totals them).

    Line: {"run_id", "time", "origin" ("build", "respond", "retry-failures", ...), "key",
    "responder", "model", "prompt_version", "base_url", "splits", "totals",
    "budget_reached"}."""
    row = {"run_id": run_id or uuid.uuid4().hex,
           "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
           "origin": origin, "key": responder.key, "responder": responder.name,
           "model": responder.model, "prompt_version": config.prompt_version,
           "base_url": _safe_url(config.base_url), **result}
    path = run_log_path(store, responder.key)
    with _file_lock(path):
        _repair(path)
        append_jsonl(path, [row])


def _resolve(manifest: Manifest | None, config: ResponderConfig | None,
             responder: Responder | None) -> tuple[ResponderConfig, Responder]:
    if config is None:
        if manifest is None:
            msg = "respond needs a manifest or a ResponderConfig"
            raise ValueError(msg)
        config = manifest.responder
    if config.kind == "replay" and config.replay_file and manifest is not None:
        replay = str(manifest.resolve(config.replay_file))
        config = config.model_copy(update={"replay_file": replay})
    if responder is None:
        responder = make_responder(config, manifest=manifest)
    return config, responder


def respond_split(manifest: Manifest | None, store: Store, kind: str, split: str, *,
                  responder: Responder | None = None, config: ResponderConfig | None = None,
                  only_ids: Iterable[str] | None = None, retry_failed: bool = False,
                  progress: ProgressFn | None = None, budget: Budget | None = None,
                  origin: str = "respond_split") -> dict[str, Any]:
    """Answer every sample of one kind and split that has no accepted response yet.

    Idempotent and resumable: a re-run skips answered samples, and paid answers come from
    the cache. Samples with an open failure record are skipped unless `retry_failed`
    (or named in `only_ids`); see `retry_failures`.

    Args:
        manifest: the build manifest (its `responder` section is the default config).
        store: the dataset folder.
        kind: sample kind (refA_sd, refA_md, refAB_sd, refAB_md).
        split: split name (train, test, ...).
        responder: a ready responder (default: built from the config).
        config: responder settings (default: `manifest.responder`).
        only_ids: restrict to these sample ids.
        retry_failed: also redo samples with open failure records.
        progress: called as progress(kind, split, done, total).
        budget: a Budget shared by several calls (default: a new one with max_cost_usd).
        origin: what ran it, written to the run log (logs/respond/<key>.jsonl).

    Returns:
        A small JSON-able summary: samples, already_done, todo, accepted, failed, remaining,
        calls, cached, retries, rejected (by reason), flagged, errors (by kind),
        prompt_tokens, completion_tokens, cost_usd, budget_reached, responses_path, ...
    """
    config, responder = _resolve(manifest, config, responder)
    ids = set(only_ids) if only_ids is not None else None
    results = _run_sync(_arun(store, responder, config, [(kind, split, ids)],
                              retry_failed=retry_failed, progress=progress, budget=budget,
                              origin=origin))
    return results[0].summary


def respond(manifest: Manifest, store: Store, *, kinds: Iterable[str] | None = None,
            splits: Iterable[str] | None = None, responder: Responder | None = None,
            config: ResponderConfig | None = None, retry_failed: bool = False,
            progress: ProgressFn | None = None, origin: str = "respond") -> dict[str, Any]:
    """Run the stage over several kinds and splits with one responder and one budget; the
    combined summary is appended to the run log (logs/respond/<key>.jsonl, `origin`).

    Returns:
        {"splits": [summary per split], "totals": summed counts, "budget_reached": bool}
    """
    config, responder = _resolve(manifest, config, responder)
    kinds = list(kinds) if kinds is not None else manifest.kinds()
    splits = list(splits) if splits is not None else manifest.splits()
    targets = [(k, s, None) for k in kinds for s in splits
               if store.samples_path(k, s).exists()]
    results = _run_sync(_arun(store, responder, config, targets, retry_failed=retry_failed,
                              progress=progress, budget=None, origin=origin))
    return _combine([r.summary for r in results])


def _combine(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for s in summaries:
        for k, v in s.items():
            if isinstance(v, bool) or k in ("elapsed_s",):
                continue
            if isinstance(v, (int, float)):
                totals[k] = round(totals.get(k, 0) + v, 6)
            elif isinstance(v, dict):
                bucket = totals.setdefault(k, {})
                for kk, vv in v.items():
                    bucket[kk] = bucket.get(kk, 0) + vv
    return {"splits": summaries, "totals": totals,
            "budget_reached": any(s.get("budget_reached") for s in summaries)}


_RESPONSES_PATH = re.compile(r"^responses/([^/]+)/([^/]+)/([^/]+)\.jsonl$")


def retry_failures(root: Path | str, *, responder: Responder | None = None,
                   config: ResponderConfig | None = None,
                   progress: ProgressFn | None = None,
                   origin: str = "retry-failures") -> dict[str, Any]:
    """Re-run exactly the samples of open records in `failures/respond.jsonl`.

    A sample that failed validation is asked anew: its cached answers that the validator
    rejects are not replayed (new calls replace them in the cache); cached answers that
    pass are replayed, so nothing accepted is paid twice.

    Each record's `path` names the responses file (responder key, kind, split); the
    responder settings come from `responses/<key>/responder.json` (written by the stage)
    unless `config`/`responder` are given. Afterwards the retried records (those whose
    sample was answered or failed again) move to `failures/respond.retried.jsonl`, the
    failures file keeps the rest plus any new failures (rewritten atomically); samples the
    budget left untouched stay open.

    Returns:
        As `respond`, plus "retried" (samples re-run) and "still_failing".
    """
    store = Store(root)
    before = store.failures(STAGE)
    groups: dict[str, set[str]] = {}
    for f in before:
        if f.path and _RESPONSES_PATH.match(f.path):
            groups.setdefault(f.path, set()).add(f.item_id)
    summaries: list[dict[str, Any]] = []
    finished: dict[str, set[str]] = {}
    run_id = uuid.uuid4().hex  # one id over the responder keys of this retry
    for rel, ids in groups.items():
        m = _RESPONSES_PATH.match(rel)
        assert m is not None
        key, kind, split = m.groups()
        cfg = config
        if cfg is None:
            info_path = store.root / "responses" / key / "responder.json"
            if not info_path.exists():
                msg = f"{info_path}: missing; cannot tell how {rel} was answered"
                raise FileNotFoundError(msg)
            cfg = ResponderConfig.model_validate(json.loads(info_path.read_text())["config"])
        resp = responder if responder is not None and responder.key == key else None
        cfg, resp = _resolve(None, cfg, resp)
        if resp.key != key:
            msg = f"{rel}: responder key {key!r} but the settings give {resp.key!r}"
            raise ValueError(msg)
        results = _run_sync(_arun(store, resp, cfg, [(kind, split, ids)], retry_failed=True,
                                  progress=progress, budget=None, origin=origin,
                                  run_id=run_id))
        summaries.append(results[0].summary)
        finished[rel] = results[0].finished
    after = store.failures(STAGE)
    new = after[len(before):]
    moved = [f for f in before if f.item_id in finished.get(f.path or "", set())]
    keep = [f for f in before if f.item_id not in finished.get(f.path or "", set())] + new
    if moved:
        append_jsonl(store.root / "failures" / f"{STAGE}.retried.jsonl", moved)
    atomic_write_jsonl(store.failures_path(STAGE), keep)
    out = _combine(summaries)
    out["retried"] = sum(len(v) for v in finished.values())
    out["still_failing"] = len({(f.path, f.item_id) for f in new})
    return out


def stage_respond(ctx: Any) -> dict[str, Any]:
    """The build's respond stage (pipeline.build.STAGES): the manifest's responder over the
    build's kinds and splits, with progress per kind/split.

    Returns:
        {"<kind>/<split>": {"done", "skipped", "failed", "samples", "calls", "cached",
        "cost_usd"}, ..., "totals": the summed counts incl. "rejected" by reason and cost,
        "budget_reached": bool}
    """
    progress = ctx.progress
    started: set[str] = set()

    def report(kind: str, split: str, done: int, total: int) -> None:
        key = f"respond {kind}/{split}"
        if key not in started:
            started.add(key)
            progress.start(key, total, f"respond {kind}/{split}")
        elif done:
            progress.advance(key, 1)

    result = respond(ctx.manifest, ctx.store, kinds=ctx.kinds, splits=ctx.splits,
                     progress=report, origin="build")
    out: dict[str, Any] = {}
    for s in result["splits"]:
        out[f"{s['kind']}/{s['split']}"] = {
            "done": s["accepted"], "skipped": s["already_done"] + s["skipped_open_failures"],
            "failed": s["failed"], "samples": s["samples"], "calls": s["calls"],
            "cached": s["cached"], "cost_usd": s["cost_usd"]}
    out["totals"] = {**result["totals"], "done": result["totals"].get("accepted", 0),
                     "skipped": result["totals"].get("already_done", 0)
                     + result["totals"].get("skipped_open_failures", 0)}
    if result["budget_reached"]:
        out["totals"]["budget_reached"] = True
        progress.message("respond: the budget (max_cost_usd) was reached; re-run to continue")
    return out
