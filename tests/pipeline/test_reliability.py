"""Reliability promises (docs/reliability.md): whole-request deadlines, the ownership lock
of a dataset folder, output folders that overlap an input root, caps, dedup, clean errors.

Real files, real processes, the real `openai` client against a loopback server. The kill
and re-run tests of whole builds are in tests/pipeline/test_build.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipeline.records import FailureRecord
from pipeline.respond import respond_split
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import Answer, FakeOpenAI, Trickle
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
