"""Reliability promises (docs/reliability.md): whole-request deadlines, the ownership lock
of a dataset folder, output folders that overlap an input root, caps, dedup, clean errors.

Real files, real processes, the real `openai` client against a loopback server. The kill
and re-run tests of whole builds are in tests/pipeline/test_build.py."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipeline.records import FailureRecord
from pipeline.respond import ResponderAuthError, read_run_log, respond_split, run_log_path
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import FakeOpenAI, Status, Trickle
from tests.support.respond_samples import fast_openai_config, make_samples

KEY = "sk-test-SECRET-reliability-0123456789"
MODEL = "gpt-4o-test"


@pytest.fixture()
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


# --------------------------------------------------------------------------- deadlines
@pytest.mark.usefixtures("_key")
def test_timeout_bounds_the_whole_request_against_a_trickling_body(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 2)
    store = Store(tmp_path)
    # sample 0: a 200 body in 10 pieces 0.3 s apart (every read is quick, the body takes
    # 2.7 s) against timeout_s 0.5; sample 1: a body that arrives in time
    slow = {recs[0].image_A.sha256: [Trickle(pieces=10, interval_s=0.3)],
            recs[1].image_A.sha256: [Trickle(pieces=3, interval_s=0.02)]}
    with FakeOpenAI(by_image=slow) as srv:
        cfg = fast_openai_config(srv.base_url, MODEL, timeout_s=0.5, max_attempts=1)
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        ended = time.monotonic()
        [trickled] = [r for r in srv.requests if recs[0].image_A.sha256 in r.image_sha256]
    took = ended - trickled.time  # from the server's receipt to the end of the run
    assert (s["accepted"], s["failed"]) == (1, 1)
    assert s["errors"] == {"timeout": 1}
    assert took < 1.6, f"the trickled request was not cut at its deadline ({took:.2f} s)"
    fails = list(read_jsonl(store.failures_path("respond"), FailureRecord))
    assert [f.item_id for f in fails] == [recs[0].sample_id]
    assert fails[0].error_type == "timeout" and "0.5 s" in fails[0].message


# --------------------------------------------------------------------------- auth stop
@pytest.mark.usefixtures("_key")
def test_a_refused_key_stops_the_run_after_the_first_call(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 5)
    store = Store(tmp_path)
    with FakeOpenAI(queue=[Status(401, message=f"Incorrect API key provided: {KEY}")] * 5
                    ) as srv:
        cfg = fast_openai_config(srv.base_url, MODEL, concurrency=1)
        with pytest.raises(ResponderAuthError, match=r"5 sample\(s\) left to do, not sent"):
            respond_split(None, store, "refA_sd", "train", config=cfg)
        assert srv.chat_calls == 1  # the rest were not sent with a refused key
    assert store.failures("respond") == []  # not the samples' fault: all left to do
    (run,) = read_run_log(run_log_path(store, f"openai--{MODEL}"))
    assert run["status"] == "finished" and run["totals"]["calls"] == 1
    assert run["splits"][0]["auth_refused"] is True
    with FakeOpenAI() as srv:  # the key fixed: the next run answers all five
        s = respond_split(None, store, "refA_sd", "train",
                          config=fast_openai_config(srv.base_url, MODEL))
    assert (s["accepted"], s["calls"]) == (5, 5)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


# --------------------------------------------------------------------------- run log
@pytest.mark.usefixtures("_key")
def test_a_killed_respond_run_is_logged_from_the_cache_on_the_next_run(tmp_path):
    """A respond run SIGKILLed mid-way leaves its `started` line; the next run closes it
    with what it paid for, counted from the cache (no history lost, none invented)."""
    make_samples(tmp_path, "refA_sd", "train", 6)
    store = Store(tmp_path)
    with FakeOpenAI(latency_s=0.05) as srv:
        pid = os.fork()
        if pid == 0:  # the child: answer until the fourth reply is cached, then die
            import pipeline.respond.cache as cache_mod

            real_put, n = cache_mod.ResponseCache.put, [0]

            def put_then_die(self, *args, **kw):
                real_put(self, *args, **kw)
                n[0] += 1
                if n[0] == 4:
                    os.kill(os.getpid(), signal.SIGKILL)

            cache_mod.ResponseCache.put = put_then_die
            cfg = fast_openai_config(srv.base_url, MODEL, concurrency=1,
                                     price_input_per_1m=10.0, price_output_per_1m=10.0)
            respond_split(None, store, "refA_sd", "train", config=cfg)
            os._exit(0)  # not reached
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        log = run_log_path(store, f"openai--{MODEL}")
        assert [r["status"] for r in read_run_log(log)] == ["started"]
        cfg = fast_openai_config(srv.base_url, MODEL, price_input_per_1m=10.0,
                                 price_output_per_1m=10.0)
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        total_calls = srv.chat_calls
    killed, resumed = read_run_log(log)
    assert killed["status"] == "killed" and killed["repaired_from"] == "cache"
    assert killed["totals"]["calls"] == 4
    assert killed["totals"]["cost_usd"] == pytest.approx(4 * 0.011)
    assert resumed["status"] == "finished"
    assert s["cached"] == 4 and s["calls"] == 2 and s["accepted"] == 6
    assert total_calls == 6  # history matches what the server was paid for


# --------------------------------------------------------------------------- dedup
def test_identical_references_are_one_photo_in_one_split(tmp_path):
    from pipeline.ingest import ingest_references
    from pipeline.manifest import Manifest
    from pipeline.records import ReferenceRecord
    from tests.pipeline.build_fixtures import PHOTOS, make_photo

    root = tmp_path / "refs"
    root.mkdir()
    make_photo(*PHOTOS["astro.png"]).save(root / "a.png")
    (root / "copy_of_a.png").write_bytes((root / "a.png").read_bytes())  # byte-identical
    (root / "z_also_a.png").write_bytes((root / "a.png").read_bytes())
    make_photo(*PHOTOS["cat.png"]).save(root / "cat.png")
    # the copies are listed in both splits: a train/test leak unless deduplicated
    m = Manifest(name="d", resize={"short_side": 40}, references={
        "root": str(root), "splits": {"train": ["a.png", "cat.png"],
                                      "test": ["copy_of_a.png", "z_also_a.png"]}})
    store = Store(tmp_path / "out")
    summary = ingest_references(m, store)
    assert summary["references"] == 2
    refs = list(read_jsonl(store.references_index, ReferenceRecord))
    assert [r.ref_id for r in refs] == ["a", "cat"]
    assert len({r.sha256 for r in refs}) == 2
    dups = [f for f in store.failures("ingest") if f.error_type == "duplicate"]
    assert sorted(f.item_id for f in dups) == ["copy_of_a.png", "z_also_a.png"]
    assert all("duplicate of a" in f.message for f in dups)
    assert sorted(p.name for p in (store.root / "references").iterdir()) == ["a.png", "cat.png"]
    # the group's split comes from its content: the same whichever copy is listed where
    swapped = m.model_copy(update={"references": m.references.model_copy(update={
        "splits": {"train": ["copy_of_a.png", "cat.png"], "test": ["a.png", "z_also_a.png"]}})})
    other = Store(tmp_path / "out2")
    ingest_references(swapped, other)
    split_of = {r.ref_id: r.split for r in read_jsonl(other.references_index, ReferenceRecord)}
    assert split_of["a"] == {r.ref_id: r.split for r in refs}["a"]


# --------------------------------------------------------------------------- manifests
@pytest.mark.parametrize(("text", "error"), [
    ("name: x\ncounts:\n  refA_sd: {train: 4\n  test: 2}\n",
     r"m\.yaml:4:7: not valid YAML: expected ',' or '}', but got ':'"),
    ("name: x\nseed: 1\nseed: 2\n", r"m\.yaml:3:1: not valid YAML: duplicate key 'seed' "
     r"\(first at line 2\)"),
    ("name: x\ncounts:\n  refA_sd: {train: true}\n",
     r"counts: refA_sd\.train: a number is needed, got a boolean"),
    ("name: x\nresponder: {timeout_s: yes}\n",
     r"responder\.timeout_s: a number is needed, got a boolean"),
    ("name: x\ncounts:\n  refA_sd: {train: 100000000000}\n",
     r"count 100000000000 is above the limit of 10,000,000 per kind and split"),
])
def test_manifest_errors_are_one_line_with_file_line_and_column(tmp_path, text, error):
    import tracemalloc

    from pipeline.manifest import ManifestError, load_manifest

    path = tmp_path / "m.yaml"
    path.write_text(text)
    tracemalloc.start()
    with pytest.raises(ManifestError, match=error) as info:
        load_manifest(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert peak < 5_000_000  # a huge count is refused before anything is planned


def test_replay_and_jsonl_errors_name_the_file_and_line(tmp_path):
    from pipeline.responders.replay import load_answers

    bad_yaml = tmp_path / "answers.yaml"
    bad_yaml.write_text("s1: fine\ns2: [unclosed\n")
    with pytest.raises(ValueError, match=r"answers\.yaml:3:1: not valid YAML"):
        load_answers(bad_yaml)
    bad_json = tmp_path / "answers.json"
    bad_json.write_text('{"s1": "fine",\n "s2": }\n')
    with pytest.raises(ValueError, match=r"answers\.json:2:8: not valid JSON"):
        load_answers(bad_json)
    bad_jsonl = tmp_path / "answers.jsonl"
    bad_jsonl.write_text('{"sample_id": "s1", "text": "a"}\n{"sample_id": oops}\n'
                         '{"sample_id": "s3", "text": "c"}\n')
    with pytest.raises(ValueError, match=r"answers\.jsonl: line 2: Expecting value"):
        load_answers(bad_jsonl)
