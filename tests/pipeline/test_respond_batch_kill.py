"""A batch-mode respond killed with SIGKILL between submission and completion resumes
polling the same batch: the server's request log shows one upload and one batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.manifest import load_manifest
from pipeline.respond import batch_state_path, respond_split
from pipeline.store import Store, atomic_write_json
from tests.support.fake_openai import FakeOpenAI
from tests.support.respond_samples import fast_openai_config, make_samples

N = 4
KEY = "sk-kill-batch-0123456789"
RKEY = "openai--gpt-4o-mini"


def _manifest(root, base_url: str) -> str:
    data = {"name": "k", "output": str(root / "ds"), "counts": {"refA_sd": {"train": N}},
            "responder": {"kind": "openai", "model": "gpt-4o-mini", "base_url": base_url,
                          "requests_per_minute": None, "timeout_s": 5, "mode": "batch",
                          "batch_poll_s": 0.05, "batch_poll_max_s": 0.1}}
    path = root / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _respond(manifest: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    code = "from pipeline.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "respond", manifest, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _lines(root) -> list[dict]:
    path = Store(root / "ds").responses_path(RKEY, "refA_sd", "train")
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_sigkill_between_submit_and_completion_then_resume(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    make_samples(tmp_path / "ds", "refA_sd", "train", N)
    with FakeOpenAI(batch_plan=["hold"]) as srv:
        manifest = _manifest(tmp_path, srv.base_url)
        proc = _respond(manifest, "--wait")
        deadline = time.monotonic() + 60
        # submitted, and polled at least twice (in_progress, held)
        while time.monotonic() < deadline and not (
                srv.batches and next(iter(srv.batches.values()))["_polls"] >= 2):
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        state = json.loads(batch_state_path(Store(tmp_path / "ds"), RKEY).read_text())
        assert [b["status"] for b in state["batches"]] == ["in_progress"]
        # resume (a new process would do the same) without waiting: polls the same batch,
        # still held, and submits nothing
        store = Store(tmp_path / "ds")
        cfg = load_manifest(manifest).responder
        s = respond_split(None, store, "refA_sd", "train", config=cfg, wait=False)
        assert s["batch"]["open"] == ["batch_0001"] and s["batch"]["submitted"] == []
        srv.release()
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s["accepted"], s["remaining"], s["batch_answers"]) == (N, 0, N)
        assert (len(srv.batch_creates), len(srv.file_uploads)) == (1, 1)
        assert len(srv.submitted_custom_ids()) == N
        assert len(srv.batch_lines) == N  # every request answered once
    rows = _lines(tmp_path)
    assert len(rows) == len({r["sample_id"] for r in rows}) == N
    result = CliRunner().invoke(app, ["batches", str(tmp_path / "ds")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "batch_0001" in result.output and "completed" in result.output


def test_a_batch_created_but_not_recorded_is_found_not_created_again(tmp_path, monkeypatch):
    """Killed after batches.create returned but before its id was written: the resumed
    run finds the batch by its metadata (batches.list) instead of creating a second."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    make_samples(tmp_path, "refA_sd", "train", 3)
    store = Store(tmp_path)
    with FakeOpenAI(batch_plan=["hold"]) as srv:
        cfg = fast_openai_config(srv.base_url, "gpt-4o-mini", mode="batch", batch_poll_s=0.0)
        s = respond_split(None, store, "refA_sd", "train", config=cfg, wait=False)
        assert s["batch"]["submitted"] == ["batch_0001"] and s["remaining"] == 3
        path = batch_state_path(store, RKEY)
        state = json.loads(path.read_text())
        state["batches"][0].update(batch_id=None, status="uploaded")  # the lost write
        atomic_write_json(path, state)
        srv.release()
        s = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s["accepted"], s["remaining"]) == (3, 0)
        assert (len(srv.batch_creates), len(srv.file_uploads)) == (1, 1)
