"""The batch-mode respond flow: a real Prefect run polling a loopback Batch API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.store import Store
from tests.support.fake_openai import FakeOpenAI
from tests.support.respond_samples import make_samples


@pytest.mark.usefixtures("prefect_api")
def test_respond_batch_flow_polls_until_done(tmp_path: Path, monkeypatch) -> None:
    from flows.batch_flow import respond_batch_flow

    monkeypatch.setenv("OPENAI_API_KEY", "sk-flow-test-0123456789")
    make_samples(tmp_path / "ds", "refA_sd", "train", 3)
    with FakeOpenAI() as srv:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(yaml.safe_dump({
            "name": "bf", "output": str(tmp_path / "ds"), "counts": {"refA_sd": {"train": 3}},
            "responder": {"kind": "openai", "model": "gpt-4o", "base_url": srv.base_url,
                          "requests_per_minute": None, "batch_poll_s": 0.01}}))
        out = respond_batch_flow(str(manifest))
        assert (len(srv.batch_creates), len(srv.batch_lines)) == (1, 3)
    assert out["totals"]["remaining"] == 0 and out["rounds"] >= 2
    path = Store(tmp_path / "ds").responses_path("openai--gpt-4o", "refA_sd", "train")
    assert len(path.read_text().splitlines()) == 3
    assert json.loads(path.read_text().splitlines()[0])["cost_usd"] > 0
