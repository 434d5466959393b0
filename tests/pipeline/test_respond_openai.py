"""The respond stage against a real loopback chat-completions server, driven by the real
`openai` client: retries, faults, cache, validation re-asks, failures, budget."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from distortions.pairs import CATEGORY_PHRASES
from pipeline.manifest import ResponderConfig
from pipeline.records import FailureRecord, ResponseRecord
from pipeline.respond import respond_split, retry_failures
from pipeline.store import Store, atomic_write_jsonl, read_jsonl
from tests.support.fake_openai import Answer, FakeOpenAI, Hang, Malformed, Status
from tests.support.respond_samples import fast_openai_config, make_samples

KEY = "sk-test-SECRET-0123456789abcdef"
MODEL = "gpt-4o-test"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _config(server: FakeOpenAI, **kw) -> ResponderConfig:
    # 0.8 s: a whole request (now bounded as a whole) on a loaded CI machine, well under Hang
    return fast_openai_config(server.base_url, MODEL, **{"timeout_s": 0.8, "concurrency": 4, **kw})


def _responses(root, kind="refA_sd", split="train"):
    return list(read_jsonl(Store(root).responses_path(f"openai--{MODEL}", kind, split),
                           ResponseRecord))


def _grep_key(root) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_happy_path_images_auth_and_cache_across_runs_and_splits(tmp_path):
    recs = make_samples(tmp_path, "refAB_sd", "train", 3)
    store = Store(tmp_path)
    with FakeOpenAI() as srv:
        cfg = _config(srv)
        s = respond_split(None, store, "refAB_sd", "train", config=cfg)
        assert (s["accepted"], s["calls"], s["cached"], s["failed"]) == (3, 3, 0, 0)
        assert srv.chat_calls == 3
        for req in srv.requests:
            assert req.headers["authorization"] == f"Bearer {KEY}"
            assert req.body["model"] == MODEL and req.body["max_tokens"] == 200
            assert req.body["temperature"] == 0.5
            url = req.body["messages"][1]["content"][2]["image_url"]["url"]
            assert url.startswith("data:image/png;base64,")
        sent = {tuple(r.image_sha256) for r in srv.requests}
        want = {(hashlib.sha256((tmp_path / r.image_ref).read_bytes()).hexdigest(),
                 r.image_A.sha256, r.image_B.sha256) for r in recs}
        assert sent == want  # reference first, then A, then B
        out = _responses(tmp_path, "refAB_sd")
        assert [r.sample_id for r in out] == [r.sample_id for r in recs]
        assert all(r.model == MODEL and r.prompt_version == "v1" and r.prompt_id == "refAB_sd"
                   and r.usage.prompt_tokens == 1000 and r.verdict for r in out)
        assert out[0].cost_usd > 0  # gpt-4o prices by prefix
        # a second run: nothing to do, no call
        s2 = respond_split(None, store, "refAB_sd", "train", config=cfg)
        assert (s2["todo"], s2["calls"], srv.chat_calls) == (0, 0, 3)
        # another split with the same requests: all from the cache
        rows = [r.model_copy(update={"split": "val"}) for r in recs]
        atomic_write_jsonl(store.samples_path("refAB_sd", "val"), rows)
        s3 = respond_split(None, store, "refAB_sd", "val", config=cfg)
        assert (s3["accepted"], s3["cached"], s3["calls"], srv.chat_calls) == (3, 3, 0, 3)
        # deleting the responses file: rebuilt from the cache, still no call
        store.responses_path(f"openai--{MODEL}", "refAB_sd", "train").unlink()
        s4 = respond_split(None, store, "refAB_sd", "train", config=cfg)
        assert (s4["accepted"], s4["calls"]) == (3, 0)
    assert len(list(store.cache_dir.rglob("*.json"))) == 3
    assert _grep_key(tmp_path) == []


def test_scripted_faults_exact_calls_failures_and_retry_failures(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 11)
    store = Store(tmp_path)
    a = [r.image_A.sha256 for r in recs]
    wrong = "The image shows a harbour. It is full of pixelation and heavy grain. Quality is poor."
    wrong_for = {i: wrong for i in range(11)}
    wrong_for[10] = "The image shows a harbour. It is blurry. Quality is poor."  # truth: pixelate
    script = {
        a[0]: [Status(429, retry_after="1"), Answer()],             # 2 calls
        a[1]: [Status(500), Status(503), Answer()],                 # 3 calls
        a[2]: [Hang(1.5), Answer()],                                # timeout, then 2nd call
        a[3]: [Malformed(), Answer()],                              # 2 calls
        a[4]: [Answer("I'm sorry, but I can't help with that."), Answer()],  # re-ask
        a[5]: [Answer("Compared with the reference image, this shows compression."), Answer()],
        a[6]: [Answer(wrong_for[6]), Answer()],                     # wrong distortion, re-ask
        a[7]: [Status(500), Status(500), Status(500)],              # exhausted: failure
        a[8]: [Status(400, message="bad image")],                   # not retried: failure
        a[9]: [Status(400, code_str="content_policy_violation")],   # refusal by policy
        # a[10]: answered at once (a 401 stops the run: tests/pipeline/test_reliability.py)
    }
    with FakeOpenAI(by_image=script) as srv:
        cfg = _config(srv)
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert srv.chat_calls == 2 + 3 + 2 + 2 + 2 + 2 + 2 + 3 + 1 + 1 + 1
        assert s["calls"] == srv.chat_calls
        assert (s["accepted"], s["failed"], s["remaining"]) == (8, 3, 0)
        # reasons are counted per rejected answer; the refusal and the reference answer
        # also miss the true distortion
        assert s["rejected"] == {"missing_distortion": 3, "mentions_reference": 1, "refusal": 1}
        assert s["rejected_answers"] == 3
        assert s["errors"]["rate_limited"] == 1 and s["errors"]["timeout"] == 1
        assert s["errors"]["malformed"] == 1 and s["errors"]["server_error"] == 5
        fails = {f.item_id: f for f in store.failures("respond")}
        assert set(fails) == {recs[i].sample_id for i in (7, 8, 9)}
        f7, f8, f9 = (fails[recs[i].sample_id] for i in (7, 8, 9))
        assert (f7.error_type, f7.status, f7.attempts) == ("server_error", 500, 3)
        assert (f8.error_type, f8.status, f8.attempts) == ("bad_request", 400, 1)
        assert f9.error_type == "content_policy"
        assert f7.path == f"responses/openai--{MODEL}/refA_sd/train.jsonl"
        assert _grep_key(tmp_path) == []  # not in failures, records, cache, anywhere
        # a plain re-run skips the open failures: zero calls
        calls = srv.chat_calls
        s2 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s2["calls"], s2["skipped_open_failures"], srv.chat_calls) == (0, 3, calls)
        # retry-failures re-runs exactly the three (the server now answers well)
        r = retry_failures(tmp_path)
        assert srv.chat_calls == calls + 3
        assert sorted(srv.requests[i].image_sha256[1] for i in range(calls, calls + 3)) == \
            sorted(a[i] for i in (7, 8, 9))
        assert r["retried"] == 3 and r["still_failing"] == 0
    assert store.failures("respond") == []
    moved = list(read_jsonl(tmp_path / "failures" / "respond.retried.jsonl", FailureRecord))
    assert len(moved) == 3
    assert len(_responses(tmp_path)) == 11
    assert _grep_key(tmp_path) == []


def test_rejections_exhaust_reasks_and_keep_raw_output(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 1)  # blur
    store = Store(tmp_path)
    bad = "The image shows a lake with heavy grain everywhere. Quality is poor."
    with FakeOpenAI(queue=[Answer(bad)] * 5) as srv:
        s = respond_split(None, store, "refA_sd", "train", config=_config(srv, max_reasks=2))
        assert srv.chat_calls == 3 and s["rejected"] == {"missing_distortion": 3}
        reask_texts = [r.user_text for r in srv.requests]
        assert "did not name the distortion" in reask_texts[1]
    (f,) = store.failures("respond")
    assert (f.item_id, f.error_type, f.attempts, f.raw_output) == (recs[0].sample_id,
                                                                   "rejected", 3, bad)


def test_pair_verdicts_reask_and_contradiction_flag(tmp_path):
    recs = make_samples(tmp_path, "refAB_sd", "train", 2)  # judge: sample 0 A better, 1 B
    store = Store(tmp_path)
    a = [r.image_A.sha256 for r in recs]
    named = [" and ".join(CATEGORY_PHRASES[d.category]
                          for d in r.image_A.distortions + r.image_B.distortions) for r in recs]
    script = {a[0]: [Answer(f"Both show a pier with {named[0]}."),  # no verdict: re-ask
                     Answer(f"Both show a pier with {named[0]}. Image A wins.")],
              a[1]: [Answer(f"Both show a pier with {named[1]}. Image A is better.")]}
    with FakeOpenAI(by_image=script) as srv:
        s = respond_split(None, store, "refAB_sd", "train", config=_config(srv))
        assert srv.chat_calls == 3 and s["rejected"] == {"no_verdict": 1}
    out = {r.sample_id: r for r in _responses(tmp_path, "refAB_sd")}
    assert out[recs[0].sample_id].verdict == "A" and out[recs[0].sample_id].flags == []
    assert out[recs[0].sample_id].attempts == 2
    assert out[recs[1].sample_id].verdict == "A"
    assert out[recs[1].sample_id].flags == ["verdict_contradicts_judge"]
    assert s["flagged"] == {"verdict_contradicts_judge": 1}


def test_budget_cap_stops_cleanly_and_resumes(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 8)
    store = Store(tmp_path)
    # price 10 $/1M in and out; each answer costs (1000 + 100) * 10 / 1e6 = 0.011 $;
    # the worst case reserved per call is larger, so the cap stops early and never overshoots
    prices = dict(price_input_per_1m=10.0, price_output_per_1m=10.0)
    with FakeOpenAI() as srv:
        cfg = _config(srv, concurrency=2, max_cost_usd=0.06, **prices)
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert s["budget_reached"] is True
        assert 0 < s["accepted"] < 8 and s["remaining"] == 8 - s["accepted"]
        assert s["calls"] == s["accepted"] == srv.chat_calls and s["failed"] == 0
        assert s["cost_usd"] == pytest.approx(0.011 * s["accepted"]) and s["cost_usd"] <= 0.06
        assert store.failures("respond") == []  # a budget stop is not a failure
        done = s["accepted"]
        s2 = respond_split(None, store, "refA_sd", "train",
                           config=cfg.model_copy(update={"max_cost_usd": None}))
        assert (s2["accepted"], s2["calls"], s2["budget_reached"]) == (8 - done, 8 - done, False)
        assert srv.chat_calls == 8
    assert len(_responses(tmp_path)) == 8


def test_budget_without_a_price_is_refused(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 1)
    with FakeOpenAI() as srv:
        cfg = _config(srv, model="my-local-llava", max_cost_usd=1.0)
        with pytest.raises(ValueError, match="no price is known"):
            respond_split(None, Store(tmp_path), "refA_sd", "train", config=cfg)
        assert srv.chat_calls == 0


def test_rate_limit_is_honoured_across_requests(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 6)
    with FakeOpenAI() as srv:
        cfg = _config(srv, requests_per_minute=600.0, concurrency=6)  # 10/s, burst 10
        s = respond_split(None, Store(tmp_path), "refA_sd", "train", config=cfg)
        assert s["accepted"] == 6
    with FakeOpenAI(rpm=1200, burst=2) as srv:  # server allows 2 at once, then 20/s
        cfg = _config(srv, requests_per_minute=None, concurrency=6, max_attempts=6)
        store2 = tmp_path / "b"
        shutil.copytree(tmp_path / "references", store2 / "references")
        shutil.copytree(tmp_path / "images", store2 / "images")
        shutil.copytree(tmp_path / "samples", store2 / "samples")
        s = respond_split(None, Store(store2), "refA_sd", "train", config=cfg)
        assert s["accepted"] == 6 and s["errors"].get("rate_limited", 0) == srv.rate_limited > 0
        assert s["calls"] == 6 + srv.rate_limited


def test_summary_is_json_able(tmp_path):
    make_samples(tmp_path, "refA_md", "train", 2)
    with FakeOpenAI() as srv:
        s = respond_split(None, Store(tmp_path), "refA_md", "train", config=_config(srv))
    json.dumps(s)
    assert s["accepted"] == 2 and s["prompt_tokens"] == 2000 and s["completion_tokens"] == 200
