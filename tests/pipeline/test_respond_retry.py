"""Retrying rejected samples, the Retry-After wait, the backoff, and prompt versions: the
respond stage against the real loopback chat-completions server with the real `openai`
client."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from pipeline.manifest import ResponderConfig
from pipeline.records import FailureRecord, ResponseRecord
from pipeline.respond import backoff_wait, respond_split, retry_failures, superseded_path
from pipeline.responders.prompting import load_instruction
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import Answer, FakeOpenAI, Status
from tests.support.respond_samples import fast_openai_config, make_samples

KEY = "sk-test-SECRET-retry-0123456789"
MODEL = "gpt-4o-test"
RKEY = f"openai--{MODEL}"
BAD = "The image shows a lake with heavy grain everywhere. Quality is poor."  # truth: blur


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _config(server: FakeOpenAI, **kw) -> ResponderConfig:
    return fast_openai_config(server.base_url, MODEL, **kw)


def _responses(root, kind="refA_sd", split="train"):
    return list(read_jsonl(Store(root).responses_path(RKEY, kind, split), ResponseRecord))


def test_retry_failures_asks_rejected_samples_anew_and_pays_nothing_twice(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 2)  # sample 0: blur
    store = Store(tmp_path)
    a0 = recs[0].image_A.sha256
    # sample 0 gets wrong answers for its first 4 calls, then good ones; sample 1 is fine
    with FakeOpenAI(by_image={a0: [Answer(BAD)] * 4}) as srv:
        cfg = _config(srv)
        s1 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s1["accepted"], s1["failed"], s1["calls"], srv.chat_calls) == (1, 1, 4, 4)
        assert s1["rejected"] == {"missing_distortion": 3}
        (f,) = store.failures("respond")
        assert (f.item_id, f.error_type) == (recs[0].sample_id, "rejected")
        cache_files = len(list(store.cache_dir.rglob("*.json")))
        assert cache_files == 4  # the rejected answers are cached too

        # the retry does not replay the cached rejections: ask 0 (rejected in the cache)
        # is asked anew (bad: call 5), re-ask 1 (rejected in the cache) too (good: call 6)
        r = retry_failures(tmp_path, config=cfg)
        assert srv.chat_calls == 6 and r["totals"]["calls"] == 2
        assert r["totals"]["cache_bypassed"] == 2 and r["totals"]["cached"] == 0
        assert r["totals"]["accepted"] == 1 and r["totals"]["rejected"] == {
            "missing_distortion": 1}
        assert (r["retried"], r["still_failing"]) == (1, 0)
        assert [q.image_sha256[1] for q in srv.requests[4:]] == [a0, a0]
        assert "did not name the distortion" in srv.requests[5].user_text
        assert store.failures("respond") == []
        moved = list(read_jsonl(tmp_path / "failures" / "respond.retried.jsonl", FailureRecord))
        assert [m.item_id for m in moved] == [recs[0].sample_id]
        out = {x.sample_id: x for x in _responses(tmp_path)}
        assert len(out) == 2 and out[recs[0].sample_id].attempts == 2
        assert len(list(store.cache_dir.rglob("*.json"))) == cache_files  # replaced in place

        # a third, plain run: nothing to do, zero calls
        s3 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s3["todo"], s3["calls"], srv.chat_calls) == (0, 0, 6)
        # rebuilt from the cache: the accepted answers are replayed, never paid again
        store.responses_path(RKEY, "refA_sd", "train").unlink()
        s4 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s4["accepted"], s4["calls"], s4["failed"], srv.chat_calls) == (2, 0, 0, 6)
        assert s4["rejected"] == {} and s4["rejected_cached"] == {"missing_distortion": 1}
        # a retry of a sample whose cached answer passes replays it (no call)
        r2 = retry_failures(tmp_path, config=cfg)
        assert r2.get("retried", 0) == 0 and srv.chat_calls == 6
    assert [x.text for x in _responses(tmp_path)] == [x.text for x in out.values()]


def test_a_plain_rerun_still_replays_cached_rejections_without_calls(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 1)
    store = Store(tmp_path)
    with FakeOpenAI(queue=[Answer(BAD)] * 3) as srv:
        cfg = _config(srv)
        respond_split(None, store, "refA_sd", "train", config=cfg)
        assert srv.chat_calls == 3
        # no open failure record (not a retry): the cached answers are replayed, no call
        store.failures_path("respond").unlink()
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s["calls"], s["cached"], s["failed"], srv.chat_calls) == (0, 3, 1, 3)
        assert s["rejected"] == {} and s["rejected_cached"] == {"missing_distortion": 3}


def test_retry_after_is_waited_for(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 1)
    store = Store(tmp_path)
    script = {recs[0].image_A.sha256: [Status(429, retry_after="0.3"), Answer()]}
    with FakeOpenAI(by_image=script) as srv:
        # backoff alone would wait ~0.01 s: only the Retry-After explains a longer gap
        cfg = _config(srv, retry_after_max_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.02)
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s["accepted"], s["calls"], s["errors"]) == (1, 2, {"rate_limited": 1})
        first, second = srv.requests
        assert (first.action, second.action) == ("Status", "Answer")
        assert second.time - first.time >= 0.3
    # the cap on Retry-After holds: a 30 s request waits retry_after_max_s
    store.responses_path(RKEY, "refA_sd", "train").unlink()
    for p in store.cache_dir.rglob("*.json"):
        p.unlink()
    script = {recs[0].image_A.sha256: [Status(429, retry_after="30"), Answer()]}
    with FakeOpenAI(by_image=script) as srv:
        s = respond_split(None, store, "refA_sd", "train",
                          config=_config(srv, retry_after_max_s=0.2))
        assert (s["accepted"], s["calls"]) == (1, 2)
        first, second = srv.requests
        assert 0.2 <= second.time - first.time < 5.0


def test_backoff_wait_formula_and_tenacity_callstate():
    assert backoff_wait(1, initial=1.0, maximum=60, jitter=0.5, rng=lambda a, b: 0.0) == 1.0
    assert backoff_wait(3, initial=1.0, maximum=60, jitter=0.5, rng=lambda a, b: b) == 4.5
    assert backoff_wait(10, initial=1.0, maximum=60, jitter=1.0) == 60
    assert backoff_wait(10_000, initial=1.0, maximum=7, jitter=1.0) == 7  # no overflow
    for attempt in range(1, 8):
        w = backoff_wait(attempt, initial=0.5, maximum=10, jitter=0.5)
        assert min(0.5 * 2 ** (attempt - 1), 10) <= w <= min(0.5 * 2 ** (attempt - 1) + 0.5, 10)

    # the stage's wait is a plain callable over tenacity's RetryCallState
    import asyncio

    from pipeline.respond import _Run

    class Err(Exception):
        retry_after = None

    waits: list[float] = []
    run = _Run.__new__(_Run)
    run.config = ResponderConfig(backoff_initial_s=0.001, backoff_max_s=0.004)

    def wait(state: RetryCallState) -> float:
        waits.append(run._wait(state))
        return waits[-1]

    async def go() -> None:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(4), wait=wait,
                                           reraise=True):
            with attempt:
                if attempt.retry_state.attempt_number < 4:
                    raise Err

    asyncio.run(go())
    assert len(waits) == 3 and all(0.001 <= w <= 0.004 for w in waits)


def _v2(monkeypatch):
    """A v2 instruction: the v1 text under another version (prompts/ holds only v1)."""
    import pipeline.respond as respond_mod

    real = load_instruction

    def fake(kind: str, version: str = "v1"):
        ins = real(kind, "v1")
        return dataclasses.replace(ins, version="v2") if version == "v2" else real(kind, version)

    monkeypatch.setattr(respond_mod, "load_instruction", fake)


def test_answers_of_another_prompt_version_are_not_reused(tmp_path, monkeypatch):
    _v2(monkeypatch)
    make_samples(tmp_path, "refA_sd", "train", 3)
    store = Store(tmp_path)
    path = store.responses_path(RKEY, "refA_sd", "train")
    with FakeOpenAI() as srv:
        v1 = _config(srv)
        respond_split(None, store, "refA_sd", "train", config=v1)
        assert srv.chat_calls == 3
        v1_rows = path.read_text().splitlines()
        # v2: no v1 answer counts as done; all are asked (the request hash differs)
        s = respond_split(None, store, "refA_sd", "train",
                          config=v1.model_copy(update={"prompt_version": "v2"}))
        assert (s["already_done"], s["accepted"], s["calls"], s["superseded"]) == (0, 3, 3, 3)
        assert srv.chat_calls == 6
        assert {r.prompt_version for r in _responses(tmp_path)} == {"v2"}
        aside = superseded_path(store, path)
        assert aside == tmp_path / "responses" / RKEY / "superseded" / "refA_sd" / "train.jsonl"
        assert aside.read_text().splitlines() == v1_rows  # set aside, not lost
        # a v2 re-run: nothing to do
        s = respond_split(None, store, "refA_sd", "train",
                          config=v1.model_copy(update={"prompt_version": "v2"}))
        assert (s["todo"], s["calls"]) == (0, 0)
        # back to v1: re-answered through the cache (identical requests), zero calls
        s = respond_split(None, store, "refA_sd", "train", config=v1)
        assert (s["accepted"], s["cached"], s["calls"], srv.chat_calls) == (3, 3, 0, 6)
        assert {r.prompt_version for r in _responses(tmp_path)} == {"v1"}
        assert [json.loads(x)["text"] for x in path.read_text().splitlines()] == \
            [json.loads(x)["text"] for x in v1_rows]
        assert len(aside.read_text().splitlines()) == 6


def test_template_answers_of_another_prompt_version_are_redone(tmp_path, monkeypatch):
    _v2(monkeypatch)
    make_samples(tmp_path, "refA_sd", "train", 2)
    store = Store(tmp_path)
    cfg = ResponderConfig(kind="template")
    s = respond_split(None, store, "refA_sd", "train", config=cfg)
    assert s["accepted"] == 2
    s = respond_split(None, store, "refA_sd", "train",
                      config=cfg.model_copy(update={"prompt_version": "v2"}))
    assert (s["already_done"], s["accepted"], s["superseded"]) == (0, 2, 2)
    rows = list(read_jsonl(store.responses_path("template", "refA_sd", "train"), ResponseRecord))
    assert [r.prompt_version for r in rows] == ["v2", "v2"]
