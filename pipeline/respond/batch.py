"""The batch mode: requests travel through the OpenAI Batch API instead of one call each.

The split pass (pipeline.respond.online) is the same as online: a request whose hash is in
the cache is replayed and validated; a request that is not is handed to the `BatchQueue`
(`want`) instead of being called. After the pass the queue writes the new requests as batch
input JSONL (`custom_id` = request hash), uploads it (`files.create(purpose="batch")`) and
submits it (`batches.create`, `completion_window` 24h). Later polls (`collect`) retrieve
each batch; finished ones have their output and error files downloaded, every answer put
in the same request-hash cache as online answers (mode "batch"), every failed line kept
as an error of its request. The next split pass then validates those answers exactly as
online answers are validated; a rejected answer's re-ask is a new request, sent in the
next batch round (or online: `responder.batch_reasks`).

State: `logs/batches/<responder key>/state.json` (written atomically, under a file lock),
one entry per batch: local id, the request hashes it carries, input file id, batch id,
status, counts, worst-case cost reserved, cost of its answers. Every step is recorded
before the next is taken (input written -> uploaded -> created), so a process killed at
any point resumes where it stopped: an uploaded file is never uploaded again, a batch
whose creation was not recorded is found again by its `metadata.dqgen_local_id`
(batches.list) before anything is created, and a request in a batch that is still open is
never submitted again. Requests an expired, cancelled or failed batch left unanswered are
simply asked again by the next pass (they have no answer and are in no open batch), up
to `max_attempts` batches each. Limits (requests, bytes, estimated tokens per file) are
kept by splitting one round into several batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.respond.cache import ResponseCache, request_meta
from pipeline.respond.cost import Budget, cost_usd
from pipeline.respond.locks import file_lock
from pipeline.records import Usage
from pipeline.responders import Responder, ResponderError
from pipeline.responders.base import ResponseRequest
from pipeline.store import Store, atomic_write_bytes, atomic_write_json

__all__ = ["BatchQueue", "TERMINAL", "batch_hashes", "batch_state_path", "read_batches"]

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "expired", "cancelled")
BATCH_DIR = "batches"  # logs/batches/<key>/


def batch_state_path(store: Store, key: str) -> Path:
    """logs/batches/<key>/state.json: the batches of one responder key."""
    return store.logs_dir / BATCH_DIR / key / "state.json"


def read_batches(store: Store, key: str | None = None) -> list[dict[str, Any]]:
    """Every recorded batch (of `key`, or of all responder keys), oldest first."""
    root = store.logs_dir / BATCH_DIR
    paths = [batch_state_path(store, key)] if key else sorted(root.glob("*/state.json"))
    out: list[dict[str, Any]] = []
    for p in paths:
        if p.exists():
            out += json.loads(p.read_text(encoding="utf-8")).get("batches", [])
    return out


def batch_hashes(store: Store, key: str) -> set[str]:
    """Request hashes answered through the Batch API for a responder key (the report tells
    batch spend from online spend with them)."""
    return {h for b in read_batches(store, key) for h in b.get("answered", [])}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class BatchQueue:
    """The batches of one responder key during one run (see the module doc)."""

    def __init__(self, store: Store, responder: Responder, config: ResponderConfig,
                 budget: Budget, price: tuple[float, float] | None,
                 cache: ResponseCache) -> None:
        for name in ("batch_client", "batch_line", "batch_reply", "batch_error"):
            if not hasattr(responder, name):
                msg = (f"responder.mode batch needs the openai responder (the Batch API); "
                       f"{responder.name!r} has none")
                raise ValueError(msg)
        self.store, self.responder, self.config = store, responder, config
        self.budget, self.price, self.cache = budget, price, cache
        self.path = batch_state_path(store, responder.key)
        self.dir = self.path.parent
        self.pending: dict[str, ResponseRequest] = {}
        self.submitted: list[str] = []  # batch ids created by this run
        self.cost_usd = 0.0  # cost of the answers collected by this run
        self.collected = 0  # answers collected by this run
        self.fresh: set[str] = set()  # their hashes, not yet replayed by a split pass
        self._reserved: dict[str, float] = {}  # local id -> worst case reserved by this run
        self._run_lock = self._lock_run()
        self._batches = self._load()
        self._in_flight: set[str] = set()
        self._in_flight_key: tuple[tuple[int, bool, int], ...] | None = None

    def _lock_run(self) -> Any:
        """One batch-mode run per responder key at a time (two would both submit the
        requests neither has sent yet): an exclusive lock held until `close`."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: run one at a time
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        f = open(self.dir / ".run.lock", "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            msg = (f"another batch-mode respond of {self.responder.key} is running on "
                   f"{self.store.root} (lock {self.dir / '.run.lock'}); wait for it, or "
                   f"follow it with `dqgen batches {self.store.root}`")
            raise ValueError(msg) from None
        return f

    def close(self) -> None:
        """Release the run lock."""
        if self._run_lock is not None:
            self._run_lock.close()  # closing the file releases the lock
            self._run_lock = None

    # state ---------------------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return list(json.loads(self.path.read_text(encoding="utf-8")).get("batches", []))

    def _save(self) -> None:
        with file_lock(self.path):
            atomic_write_json(self.path, {"key": self.responder.key, "batches": self._batches},
                              indent=1)

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self._batches

    def open_batches(self) -> list[dict[str, Any]]:
        return [b for b in self._batches if not b.get("collected")]

    def in_flight(self) -> set[str]:
        """Hashes of requests in batches not collected yet (never submitted again).

        Asked once per request of a pass, so the set is kept until the batches change (a
        batch added or collected: a key over the few batch entries, not their hashes)."""
        key = tuple((id(b), bool(b.get("collected")), len(b["hashes"])) for b in self._batches)
        if self._in_flight_key != key:
            self._in_flight = {h for b in self.open_batches() for h in b["hashes"]}
            self._in_flight_key = key
        return self._in_flight

    # the split pass hands over requests and takes errors -------------------------------
    def want(self, request_hash: str, request: ResponseRequest) -> None:
        """A request with no cached answer: send it in the next batch (unless one open
        batch already carries it)."""
        if request_hash not in self.in_flight():
            self.pending.setdefault(request_hash, request)

    def take_error(self, request_hash: str) -> ResponderError | None:
        """The error of a request's batch line when it is final (not retryable, or
        `max_attempts` batches gave no answer); reported once (the failure record), after
        which asking again (retry-failures) submits it again."""
        tries = 0
        last: dict[str, Any] | None = None
        for b in self._batches:
            if not b.get("collected") or request_hash not in b["hashes"]:
                continue
            err = b.get("errors", {}).get(request_hash)
            if err is None and request_hash in b.get("answered", []):
                tries, last = 0, None  # an answer came (it was rejected or replaced)
                continue
            tries += 1
            last = err or {"kind": f"batch_{b['status']}", "status": None, "retryable": True,
                           "message": f"batch {b.get('batch_id')} ended {b['status']} "
                                      f"without an answer"}
            if err is not None and err.get("reported"):
                tries, last = 0, None
        if last is None or (last["retryable"] and tries < self.config.max_attempts):
            return None
        for b in self._batches:  # report once
            err = b.get("errors", {}).get(request_hash)
            if err is not None:
                err["reported"] = True
            elif b.get("collected") and request_hash in b["hashes"]:
                b.setdefault("errors", {})[request_hash] = {**last, "reported": True}
        self._save()
        error = ResponderError(last["message"], kind=last["kind"], status=last["status"])
        error.attempts = tries  # type: ignore[attr-defined]
        return error

    # submit --------------------------------------------------------------------------
    def _worst(self, request: ResponseRequest) -> tuple[int, float]:
        est = request.estimated_prompt_tokens(self.config.image_tokens)
        return est, cost_usd(Usage(prompt_tokens=est, completion_tokens=request.max_tokens),
                             self.price)

    def _chunks(self) -> list[list[tuple[str, dict[str, Any], dict[str, Any], int, float]]]:
        """Pending requests as input lines, cut at the request, byte and token limits,
        each reserved (its worst case) against the budget; the first that does not fit
        stops the round (budget_reached), the rest stay for a later run."""
        cfg = self.config
        chunks: list[list[tuple[str, dict[str, Any], dict[str, Any], int, float]]] = [[]]
        size = tokens = 0
        for h, request in sorted(self.pending.items(), key=lambda kv: (
                kv[1].sample.kind, kv[1].sample.split, kv[1].sample.sample_id, kv[1].reask)):
            est, worst = self._worst(request)
            if not self.budget.try_reserve(worst):
                break
            line = self.responder.batch_line(request, h)  # type: ignore[attr-defined]
            n = len(json.dumps(line, ensure_ascii=False).encode()) + 1
            cur = chunks[-1]
            if cur and (len(cur) >= cfg.batch_max_requests or size + n > cfg.batch_max_bytes
                        or (cfg.batch_max_tokens and tokens + est > cfg.batch_max_tokens)):
                chunks.append([])
                size = tokens = 0
            chunks[-1].append((h, line, {**request_meta(request), "est": est}, n, worst))
            size += n
            tokens += est
        return [c for c in chunks if c]

    async def submit(self) -> list[dict[str, Any]]:
        """Send the pending requests (see `_chunks`); returns the new batch entries."""
        in_flight = self.in_flight()
        self.pending = {h: r for h, r in self.pending.items() if h not in in_flight}
        if not self.pending:
            return []
        new = []
        for chunk in self._chunks():
            local_id = f"b{len(self._batches) + 1:05d}"
            input_rel = f"{local_id}.input.jsonl"
            atomic_write_bytes(self.dir / input_rel, "".join(
                json.dumps(line, ensure_ascii=False) + "\n" for _, line, _, _, _ in chunk
            ).encode())
            entry = {"local_id": local_id, "created": _now(), "status": "prepared",
                     "requests": len(chunk), "bytes": sum(c[3] for c in chunk),
                     "hashes": [c[0] for c in chunk], "meta": {c[0]: c[2] for c in chunk},
                     "reserved_usd": round(sum(c[4] for c in chunk), 6),
                     "input": input_rel, "input_file_id": None, "batch_id": None,
                     "model": self.responder.model}
            self._batches.append(entry)
            self._reserved[local_id] = entry["reserved_usd"]  # also: made by this process
            self._save()
            new.append(entry)
            for h in entry["hashes"]:
                self.pending.pop(h, None)
        for entry in new:
            await self._send(entry)
        return new

    async def _send(self, entry: dict[str, Any]) -> None:
        """Upload and create, each step recorded before the next (resumable)."""
        client = self.responder.batch_client()  # type: ignore[attr-defined]
        if entry.get("batch_id"):
            return
        if entry.get("input_file_id") is None:
            data = (self.dir / entry["input"]).read_bytes()
            f = await client.files.create(file=(entry["input"], data), purpose="batch")
            entry["input_file_id"] = f.id
            entry["status"] = "uploaded"
            self._save()
        # an entry of an earlier process may have been created already (killed before the
        # id was written): look for it first; one made by this process cannot have been
        found = None if entry["local_id"] in self._reserved else await self._find(entry)
        if found is None:
            found = await client.batches.create(
                input_file_id=entry["input_file_id"], endpoint="/v1/chat/completions",
                completion_window=self.config.batch_completion_window,
                metadata={"dqgen_local_id": entry["local_id"],
                          "dqgen_key": self.responder.key[:512]})
            self.submitted.append(found.id)
        entry["batch_id"] = found.id
        entry["status"] = found.status
        entry["submitted"] = _now()
        self._save()
        log.info("respond: batch %s submitted (%d requests, input %s)", found.id,
                 entry["requests"], entry["input_file_id"])

    async def _find(self, entry: dict[str, Any]) -> Any:
        """A batch created for this entry by a process killed before it recorded the id."""
        client = self.responder.batch_client()  # type: ignore[attr-defined]
        page = await client.batches.list(limit=100)
        for b in page.data:
            meta = b.metadata or {}
            if (meta.get("dqgen_local_id") == entry["local_id"]
                    and b.input_file_id == entry["input_file_id"]):
                return b
        return None

    # poll and collect ----------------------------------------------------------------
    async def collect(self) -> int:
        """Retrieve every open batch (sending entries a killed run left unsent); download
        the results of finished ones into the cache. Returns how many batches finished."""
        finished = 0
        client = None
        for entry in self.open_batches():
            if not entry.get("batch_id"):
                await self._send(entry)
                continue
            client = client or self.responder.batch_client()  # type: ignore[attr-defined]
            b = await client.batches.retrieve(entry["batch_id"])
            entry["status"] = b.status
            counts = b.request_counts
            if counts is not None:
                entry["counts"] = {"total": counts.total, "completed": counts.completed,
                                   "failed": counts.failed}
            if b.status in TERMINAL:
                await self._download(entry, b)
                finished += 1
            self._save()
        return finished

    async def _download(self, entry: dict[str, Any], b: Any) -> None:
        client = self.responder.batch_client()  # type: ignore[attr-defined]
        answered: list[str] = []
        errors: dict[str, dict[str, Any]] = {}
        hashes = set(entry["hashes"])
        spent = 0.0
        for file_id, is_error in ((b.output_file_id, False), (b.error_file_id, True)):
            if not file_id:
                continue
            content = await client.files.content(file_id)
            for raw in content.text.splitlines():
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    log.warning("respond: batch %s: unreadable result line skipped",
                                entry["batch_id"])
                    continue
                h = line.get("custom_id")
                if h not in hashes:
                    continue
                response = line.get("response") or {}
                status = response.get("status_code")
                try:
                    if is_error or status != 200 or line.get("error"):
                        raise self.responder.batch_error(  # type: ignore[attr-defined]
                            None if is_error else status,
                            line.get("error") or response.get("body"))
                    meta = entry["meta"][h]
                    reply = self.responder.batch_reply(  # type: ignore[attr-defined]
                        response.get("body"), meta["est"])
                except ResponderError as err:
                    errors[h] = {"kind": err.kind, "status": err.status,
                                 "retryable": err.retryable, "message": str(err)}
                    continue
                self.cache.put_meta(h, reply, {k: v for k, v in entry["meta"][h].items()
                                               if k != "est"}, self.responder.model)
                spent += cost_usd(reply.usage, self.price)
                answered.append(h)
                self.fresh.add(h)
        entry.update(answered=answered, errors=errors, collected=True,
                     cost_usd=round(spent, 6), finished=_now(),
                     done=len(answered), failed=len(errors))
        self.cost_usd += spent
        if entry["local_id"] in self._reserved:  # reserved by this run: settle it
            self.budget.settle(self._reserved.pop(entry["local_id"]), spent)
        self.collected += len(answered)
        left = len(hashes) - len(answered) - len(errors)
        if b.status != "completed" or left:
            log.warning("respond: batch %s ended %s: %d answered, %d failed, %d without a "
                        "result (asked again in the next batch)", entry["batch_id"],
                        b.status, len(answered), len(errors), left)
        with_input = self.dir / entry["input"]
        if with_input.exists():
            with_input.unlink()  # the requests can be rebuilt; the file is large

    # waiting -------------------------------------------------------------------------
    async def wait(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Poll (sleeping batch_poll_s, growing x1.5 to batch_poll_max_s) until at least one
        open batch finishes."""
        delay = self.config.batch_poll_s
        while self.open_batches():
            if await self.collect():
                return
            if progress is not None:
                total = sum(b["requests"] for b in self.open_batches())
                done = sum(b.get("counts", {}).get("completed", 0) + b.get(
                    "counts", {}).get("failed", 0) for b in self.open_batches())
                progress(done, total)
            await asyncio.sleep(delay)
            delay = min(max(delay, 0.001) * 1.5, self.config.batch_poll_max_s)

    def summary(self) -> dict[str, Any]:
        open_ = self.open_batches()
        return {"submitted": list(self.submitted),
                "open": [b.get("batch_id") or b["local_id"] for b in open_],
                "open_requests": sum(b["requests"] for b in open_),
                "collected_answers": self.collected,
                "batch_cost_usd": round(self.cost_usd, 6),
                "state": self.path.relative_to(self.store.root).as_posix()}
