"""The batch mode (OpenAI Batch API) against a loopback server with /v1/files and
/v1/batches, driven by the real `openai` client: same answers as online, same cache,
validation, budget and failures; expired batches resubmitted for their unfinished
requests only; structured outputs and their fallback."""

from __future__ import annotations

import json

import pytest

from pipeline.records import FailureRecord, ResponseRecord
from pipeline.respond import batch_price_for, price_for, read_batches, respond_split
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import Answer, FakeOpenAI, Status
from tests.support.respond_samples import fast_openai_config, make_samples

KEY = "sk-test-BATCH-0123456789abcdef"
MODEL = "gpt-4o"
RKEY = f"openai--{MODEL}"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _config(server: FakeOpenAI, **kw):
    return fast_openai_config(server.base_url, MODEL, **{"batch_poll_s": 0.0, **kw})


def _rows(root, kind="refAB_sd", split="train") -> list[dict]:
    path = Store(root).responses_path(RKEY, kind, split)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip_cost(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "cost_usd"} for r in rows]


def test_whole_split_in_batch_mode_equals_online(tmp_path):
    """Same answers -> same responses files (cost apart: batch is half price); a rejected
    answer is re-asked in the next batch round; failed lines become failure records."""
    for sub in ("online", "batch"):
        recs = make_samples(tmp_path / sub, "refAB_sd", "train", 6)
    bad = [Answer("Image A is better.")]  # too short for the validator: re-asked
    with FakeOpenAI(by_image={recs[2].image_A.sha256: list(bad)}) as srv:
        s_on = respond_split(None, Store(tmp_path / "online"), "refAB_sd", "train",
                             config=_config(srv))
        online_calls = srv.chat_calls
        assert (s_on["accepted"], s_on["rejected_answers"]) == (6, 1)
        srv.by_image[recs[2].image_A.sha256].extend(bad)
        s_b = respond_split(None, Store(tmp_path / "batch"), "refAB_sd", "train",
                            config=_config(srv, mode="batch"))
        assert srv.chat_calls == online_calls  # no online call in batch mode
    assert (s_b["accepted"], s_b["failed"], s_b["remaining"]) == (6, 0, 0)
    assert s_b["rejected_answers"] == 1
    assert len(srv.batch_creates) == 2  # round 1: 6 requests; round 2: the one re-ask
    assert len(srv.file_uploads) == 2
    ids = srv.submitted_custom_ids()
    assert len(ids) == len(set(ids)) == 7
    for rec in srv.batch_creates:
        assert rec.body["completion_window"] == "24h"
        assert rec.body["endpoint"] == "/v1/chat/completions"
    assert all(f["purpose"] == "batch" for f in srv.files.values()
               if f["filename"].endswith(".input.jsonl"))
    on, ba = _rows(tmp_path / "online"), _rows(tmp_path / "batch")
    assert _strip_cost(on) == _strip_cost(ba)
    for a, b in zip(on, ba):
        assert b["cost_usd"] == pytest.approx(a["cost_usd"] / 2, abs=1e-8)
    # the answers live in the same request-hash cache, marked as batch answers
    entry = json.loads(Store(tmp_path / "batch").cache_dir.joinpath(
        ba[0]["request_hash"][:2], ba[0]["request_hash"] + ".json").read_text())
    assert entry["mode"] == "batch" and entry["text"] == ba[0]["text"]
    state = read_batches(Store(tmp_path / "batch"), RKEY)
    assert [b["status"] for b in state] == ["completed", "completed"]
    assert [b["done"] for b in state] == [6, 1]
    # the report tells batch spend from online spend (from the records in use)
    from pipeline.report import collect_stats

    by_mode = collect_stats(Store(tmp_path / "batch"))["cost_by_mode"]
    assert by_mode["online"] == 0 and by_mode["batch"] == pytest.approx(
        sum(r["cost_usd"] for r in ba))
    assert collect_stats(Store(tmp_path / "online"))["cost_by_mode"]["batch"] == 0
    # a re-run: everything from the cache, nothing submitted
    with FakeOpenAI() as srv2:
        s = respond_split(None, Store(tmp_path / "batch"), "refAB_sd", "train",
                          config=_config(srv2, mode="batch"))
        assert (s["todo"], len(srv2.requests)) == (0, 0)


def test_expired_batch_resubmits_only_unfinished_and_failed_lines(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 6)
    store = Store(tmp_path)
    # sample 0: 400 (final failure); sample 1: a 500 line (error file), answered next time
    by_image = {recs[0].image_A.sha256: [Status(400, message="bad image")],
                recs[1].image_A.sha256: [Status(500)]}
    with FakeOpenAI(by_image=by_image, batch_plan=["expire"]) as srv:
        s = respond_split(None, store, "refA_sd", "train", config=_config(srv, mode="batch"))
    assert (s["accepted"], s["failed"], s["remaining"]) == (5, 1, 0)
    first, second = (srv.files[b["input_file_id"]]["content"].decode().splitlines()
                     for b in srv.batches.values())
    assert len(first) == 6
    # expired after 3 lines (0: 400, 1: 500, 2: ok): resubmitted 1 and the 3 never run
    done_first = {json.loads(x)["custom_id"] for x in first[:3]}
    resent = {json.loads(x)["custom_id"] for x in second}
    assert len(resent) == 4 and not resent & (done_first - {json.loads(first[1])["custom_id"]})
    assert json.loads(first[1])["custom_id"] in resent
    fails = list(read_jsonl(store.failures_path("respond"), FailureRecord))
    assert [(f.item_id, f.error_type, f.status) for f in fails] == [
        (recs[0].sample_id, "bad_request", 400)]
    assert [b["status"] for b in read_batches(store, RKEY)] == ["expired", "completed"]


def test_budget_stops_a_batch_before_submission(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 4)
    store = Store(tmp_path)
    with FakeOpenAI() as srv:
        s = respond_split(None, store, "refA_sd", "train",
                          config=_config(srv, mode="batch", max_cost_usd=0.0001))
        assert (len(srv.batch_creates), len(srv.file_uploads)) == (0, 0)
        assert s["budget_reached"] and s["remaining"] == 4 and s["accepted"] == 0
        # a worst case of ~2 requests fits: one batch of 2, the rest left for later
        cfg = _config(srv, mode="batch")
        from pipeline.respond.cost import cost_usd
        from pipeline.records import Usage
        est = 3 * 765 + 200  # two images + text, conservatively above one request's worst
        one = cost_usd(Usage(prompt_tokens=est, completion_tokens=200), batch_price_for(MODEL, cfg))
        s = respond_split(None, store, "refA_sd", "train",
                          config=cfg.model_copy(update={"max_cost_usd": 2.2 * one}))
    assert len(srv.batch_creates) == 1 and len(srv.submitted_custom_ids()) == 2
    assert s["budget_reached"] and (s["accepted"], s["remaining"]) == (2, 2), json.dumps(s)


def test_batch_prices_are_half_online_by_default(tmp_path):
    on = price_for(MODEL)
    assert batch_price_for(MODEL) == (on[0] / 2, on[1] / 2)
    from pipeline.manifest import ResponderConfig
    cfg = ResponderConfig(kind="openai", batch_price_factor=0.6, price_input_per_1m=1.0,
                          price_output_per_1m=2.0)
    assert batch_price_for("whatever", cfg) == pytest.approx((0.6, 1.2))


def test_structured_output_parsed_and_text_fallback_once(tmp_path, caplog):
    """Pairs ask with a json_schema response_format; the verdict is read from the JSON and
    the text stored as with the text protocol. A server that refuses response_format gets
    one refused request, a warning, and the text protocol for the rest of the run."""
    for sub in ("text", "json", "refused"):
        make_samples(tmp_path / sub, "refAB_sd", "train", 4)
    with FakeOpenAI() as srv:
        respond_split(None, Store(tmp_path / "text"), "refAB_sd", "train", config=_config(srv))
        s = respond_split(None, Store(tmp_path / "json"), "refAB_sd", "train",
                          config=_config(srv, structured_output=True))
        assert s["accepted"] == 4 and srv.structured == 4
        sent = [r.body for r in srv.requests[-4:]]
        assert all(b["response_format"]["json_schema"]["schema"]["properties"]["verdict"]
                   == {"type": "string", "enum": ["A", "B"]} for b in sent)
    text, js = _rows(tmp_path / "text"), _rows(tmp_path / "json")
    assert [r["text"] for r in js] == [r["text"] for r in text]  # the JSON's text field
    assert [r["verdict"] for r in js] == [r["verdict"] for r in text]
    assert {r["request_hash"] for r in js}.isdisjoint(r["request_hash"] for r in text)
    with FakeOpenAI(response_format=False) as srv, caplog.at_level("WARNING"):
        s = respond_split(None, Store(tmp_path / "refused"), "refAB_sd", "train",
                          config=_config(srv, structured_output=True, concurrency=1))
        refused = [r for r in srv.requests if r.action == "response_format_refused"]
        assert s["accepted"] == 4 and len(refused) == 1 and srv.chat_calls == 5
    warnings = [r for r in caplog.records if "refused response_format" in r.getMessage()]
    assert len(warnings) == 1
    assert _strip_cost(_rows(tmp_path / "refused")) == _strip_cost(text)


def test_parse_structured_checks_the_schema():
    from pipeline.respond import COMPARISON_FORMAT, json_schema_format, parse_structured

    ok = parse_structured('{"verdict": "B", "text": "Image B is better."}', COMPARISON_FORMAT)
    assert ok == {"verdict": "B", "text": "Image B is better."}
    for bad in ('{"verdict": "C", "text": "x"}', '{"text": "x"}', "Image A is better.",
                '["A"]', '{"verdict": "A", "text": 3}'):
        assert parse_structured(bad, COMPARISON_FORMAT) is None
    levels = json_schema_format("score", {"level": {"type": "string",
                                                    "enum": ["bad", "poor", "fair"]}})
    assert parse_structured('{"level": "fair"}', levels) == {"level": "fair"}
    assert parse_structured('{"level": "great"}', levels) is None


def test_one_batch_run_per_responder_key(tmp_path):
    from pipeline.respond import BatchQueue, Budget, ResponseCache
    from pipeline.responders import make_responder

    make_samples(tmp_path, "refA_sd", "train", 2)
    store = Store(tmp_path)
    with FakeOpenAI() as srv:
        cfg = _config(srv, mode="batch")
        holder = BatchQueue(store, make_responder(cfg), cfg, Budget(), None,
                            ResponseCache(store.cache_dir))
        with pytest.raises(ValueError, match="another batch-mode respond of openai--gpt-4o"):
            respond_split(None, store, "refA_sd", "train", config=cfg)
        holder.close()
        assert respond_split(None, store, "refA_sd", "train", config=cfg)["accepted"] == 2


def test_reasks_can_go_online(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 3)
    with FakeOpenAI(by_image={recs[1].image_A.sha256: [Answer("Blur.")]}) as srv:
        s = respond_split(None, Store(tmp_path), "refA_sd", "train",
                          config=_config(srv, mode="batch", batch_reasks="online"))
        assert (s["accepted"], s["rejected_answers"], s["calls"]) == (3, 1, 1)
        assert (len(srv.batch_creates), srv.chat_calls) == (1, 1)
    rows = _rows(tmp_path, "refA_sd")
    assert [r["attempts"] for r in rows] == [1, 2, 1]
