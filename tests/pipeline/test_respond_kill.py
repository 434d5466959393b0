"""A respond run killed with SIGKILL mid-way loses at most the calls in flight.

`dqgen respond` runs as a subprocess against the loopback chat-completions server with the
real `openai` client; the test kills it once some answers have arrived, runs it again, and
checks the paid calls (each answer is cached the moment it arrives) and the responses file
against an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.records import ResponseRecord
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import FakeOpenAI
from tests.support.respond_samples import make_samples

N, CONCURRENCY = 12, 2
KEY = "sk-kill-test-0123456789"


def _manifest(root, base_url: str) -> str:
    data = {"name": "k", "output": str(root / "ds"), "counts": {"refA_sd": {"train": N}},
            "responder": {"kind": "openai", "model": "gpt-4o-mini", "base_url": base_url,
                          "requests_per_minute": None, "concurrency": CONCURRENCY,
                          "timeout_s": 5, "backoff_initial_s": 0.01}}
    path = root / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _respond(manifest: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    code = "from pipeline.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "respond", manifest],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _answers(root) -> list[tuple[str, str]]:
    path = Store(root / "ds").responses_path("openai--gpt-4o-mini", "refA_sd", "train")
    return [(r.sample_id, r.text) for r in read_jsonl(path, ResponseRecord)]


@pytest.mark.slow
def test_sigkill_mid_respond_loses_only_calls_in_flight(tmp_path) -> None:
    for sub in ("killed", "whole"):
        make_samples(tmp_path / sub / "ds", "refA_sd", "train", N)
    with FakeOpenAI() as srv:
        whole = _respond(_manifest(tmp_path / "whole", srv.base_url))
        assert whole.wait(timeout=120) == 0, whole.stdout.read().decode()
        assert srv.chat_calls == N
        reference = _answers(tmp_path / "whole")

        calls_before = srv.chat_calls
        srv.latency_s = 0.25  # slow answers for the run to kill: it dies mid-way
        proc = _respond(_manifest(tmp_path / "killed", srv.base_url))
        deadline = time.monotonic() + 60
        while srv.chat_calls - calls_before < N // 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        asked = srv.chat_calls - calls_before
        # every answer is in the request-hash cache the moment it arrives
        saved = len(list(Store(tmp_path / "killed" / "ds").cache_dir.rglob("*.json")))
        assert 0 < saved < N  # killed mid-way, with answers on disk

        srv.latency_s = 0.0
        rerun = _respond(_manifest(tmp_path / "killed", srv.base_url))
        assert rerun.wait(timeout=120) == 0, rerun.stdout.read().decode()
        paid = srv.chat_calls - calls_before
    # every saved answer was reused; only the calls in flight at the kill were paid twice
    assert paid == N + (asked - saved)
    assert asked - saved <= CONCURRENCY
    answers = _answers(tmp_path / "killed")
    assert len({sid for sid, _ in answers}) == len(answers) == N  # no duplicates
    assert sorted(answers) == sorted(reference)
