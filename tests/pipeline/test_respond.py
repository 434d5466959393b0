"""The respond stage with the offline responders: determinism, resume, replay, build hook."""

from __future__ import annotations

import json
from types import SimpleNamespace

from pipeline.manifest import Manifest, ResponderConfig
from pipeline.progress import NullProgress
from pipeline.records import ResponseRecord
from pipeline.respond import ResponseCache, price_for, respond, respond_split, stage_respond
from pipeline.store import Store, read_jsonl
from tests.support.respond_samples import make_samples

M = Manifest(name="t", counts={"refA_sd": {"train": 4}, "refAB_sd": {"train": 3}})


def _lines(root, kind="refA_sd"):
    return Store(root).responses_path("template", kind, "train").read_bytes()


def test_template_stage_is_byte_identical_across_folders(tmp_path):
    for d in ("a", "b"):
        make_samples(tmp_path / d, "refA_sd", "train", 4, clean_every=4)
        make_samples(tmp_path / d, "refAB_sd", "train", 3)
        r = respond(M, Store(tmp_path / d))
        assert r["totals"]["accepted"] == 7 and r["totals"]["failed"] == 0
        assert r["totals"]["calls"] == 0  # the template makes no call
    assert _lines(tmp_path / "a") == _lines(tmp_path / "b")
    assert _lines(tmp_path / "a", "refAB_sd") == _lines(tmp_path / "b", "refAB_sd")
    recs = list(read_jsonl(Store(tmp_path / "a").responses_path("template", "refA_sd", "train"),
                           ResponseRecord))
    assert [r.prompt_id for r in recs] == ["refA_sd"] * 4
    assert all(r.request_hash and r.prompt_version == "v1" for r in recs)
    assert not (tmp_path / "a" / "cache").exists()  # nothing paid, nothing cached


def test_resume_after_a_torn_write_and_no_duplicates(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 4)
    store = Store(tmp_path)
    respond_split(M, store, "refA_sd", "train")
    full = _lines(tmp_path)
    path = store.responses_path("template", "refA_sd", "train")
    lines = full.decode().splitlines(keepends=True)
    path.write_text(lines[2] + lines[0] + lines[0] + lines[1][:30])  # killed mid-append
    s = respond_split(M, store, "refA_sd", "train")
    assert (s["already_done"], s["accepted"]) == (2, 2)
    assert _lines(tmp_path) == full  # sample order, each once
    assert [json.loads(x)["sample_id"] for x in full.decode().splitlines()] == \
        [r.sample_id for r in recs]


def test_replay_stage_and_missing_answers_fail(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 3)
    store = Store(tmp_path)
    respond_split(M, store, "refA_sd", "train")
    src = store.responses_path("template", "refA_sd", "train")
    rows = src.read_text().splitlines()
    (tmp_path / "answers.jsonl").write_text("\n".join(rows[:2]) + "\n")
    cfg = ResponderConfig(kind="replay", replay_file=str(tmp_path / "answers.jsonl"))
    s = respond_split(None, store, "refA_sd", "train", config=cfg)
    assert (s["accepted"], s["failed"]) == (2, 1)
    out = list(read_jsonl(store.responses_path("replay", "refA_sd", "train"), ResponseRecord))
    assert [r.text for r in out] == [json.loads(x)["text"] for x in rows[:2]]
    assert out[0].responder == "replay" and out[0].model == "template-v1"
    (f,) = store.failures("respond")
    assert (f.item_id, f.error_type) == (recs[2].sample_id, "replay_missing")


def test_build_stage_hook_reports_per_split(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 4)
    make_samples(tmp_path, "refAB_sd", "train", 3)
    ctx = SimpleNamespace(manifest=M, store=Store(tmp_path), kinds=["refA_sd", "refAB_sd"],
                          splits=["train"], progress=NullProgress())
    out = stage_respond(ctx)
    assert out["refA_sd/train"]["done"] == 4 and out["refAB_sd/train"]["done"] == 3
    assert out["totals"]["done"] == 7 and out["totals"]["rejected"] == {}
    again = stage_respond(ctx)
    assert again["refA_sd/train"]["skipped"] == 4 and again["totals"]["done"] == 0


def test_prices_by_prefix_and_override():
    assert price_for("gpt-4o-2024-08-06") == (2.5, 10.0)
    assert price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.6)
    assert price_for("llava-local") is None
    cfg = ResponderConfig(price_input_per_1m=1.0, price_output_per_1m=2.0)
    assert price_for("gpt-4o", cfg) == (1.0, 2.0)


def test_damaged_cache_entry_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    p = cache.path("ab" + "0" * 62)
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    assert cache.get("ab" + "0" * 62) is None


def test_concurrent_chunks_of_one_split_lose_nothing(tmp_path):
    # what a Prefect flow does: chunks of one split in parallel threads
    from concurrent.futures import ThreadPoolExecutor

    recs = make_samples(tmp_path, "refA_sd", "train", 12)
    store = Store(tmp_path)
    ids = [r.sample_id for r in recs]
    chunks = [ids[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda c: respond_split(M, store, "refA_sd", "train", only_ids=c), chunks))
    out = [json.loads(x)["sample_id"] for x in _lines(tmp_path).decode().splitlines()]
    assert out == ids
