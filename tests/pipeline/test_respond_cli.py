"""`dqgen respond` and `dqgen retry-failures` end to end on small real datasets."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.records import ResponseRecord
from pipeline.store import Store, read_jsonl
from tests.support.fake_openai import FakeOpenAI, Status
from tests.support.respond_samples import make_samples

runner = CliRunner()


def _manifest(tmp_path, **responder):
    data = {"name": "t", "output": str(tmp_path / "ds"),
            "counts": {"refA_sd": {"train": 3}, "refAB_md": {"train": 2}},
            "responder": responder or {"kind": "template"}}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_respond_template_then_rerun_is_a_no_op(tmp_path):
    make_samples(tmp_path / "ds", "refA_sd", "train", 3)
    make_samples(tmp_path / "ds", "refAB_md", "train", 2)
    m = _manifest(tmp_path)
    r = runner.invoke(app, ["respond", str(m)])
    assert r.exit_code == 0, r.output
    assert "refA_sd/train" in r.output and "refAB_md/train" in r.output
    path = Store(tmp_path / "ds").responses_path("template", "refA_sd", "train")
    first = path.read_bytes()
    recs = list(read_jsonl(path, ResponseRecord))
    assert len(recs) == 3 and all(x.model == "template-v1" and x.responder == "template"
                                  for x in recs)
    r = runner.invoke(app, ["respond", str(m), "--kinds", "refA_sd"])
    assert r.exit_code == 0 and path.read_bytes() == first


def test_respond_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    m = _manifest(tmp_path)
    r = runner.invoke(app, ["respond", str(m)])
    assert r.exit_code == 2 and "run `dqgen build" in r.output
    make_samples(tmp_path / "ds", "refA_sd", "train", 1)
    r = runner.invoke(app, ["respond", str(m), "--responder", "openai"])
    assert r.exit_code == 2 and "OPENAI_API_KEY" in r.output
    r = runner.invoke(app, ["respond", str(m), "--kinds", "refX"])
    assert r.exit_code == 2 and "unknown sample kind" in r.output


def test_openai_via_manifest_url_then_retry_failures(tmp_path, monkeypatch):
    key = "sk-cli-test-key-987654321"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    recs = make_samples(tmp_path / "ds", "refA_sd", "train", 3)
    with FakeOpenAI(by_image={recs[1].image_A.sha256: [Status(400, message="bad")]}) as srv:
        m = _manifest(tmp_path, kind="openai", model="gpt-4o-mini", base_url=srv.base_url,
                      requests_per_minute=None, backoff_initial_s=0.01, timeout_s=2)
        r = runner.invoke(app, ["respond", str(m), "--kinds", "refA_sd"])
        assert r.exit_code == 0, r.output
        assert srv.chat_calls == 3 and "retry-failures" in r.output
        r = runner.invoke(app, ["retry-failures", str(tmp_path / "ds")])
        assert r.exit_code == 0, r.output
        assert srv.chat_calls == 4 and "retried 1 sample(s); 0 still failing" in r.output
        r = runner.invoke(app, ["retry-failures", str(tmp_path / "ds")])
        assert "no open respond failures" in r.output and srv.chat_calls == 4
        url = srv.base_url
    store = Store(tmp_path / "ds")
    out = list(read_jsonl(store.responses_path("openai--gpt-4o-mini", "refA_sd", "train")))
    assert len(out) == 3
    info = json.loads((tmp_path / "ds/responses/openai--gpt-4o-mini/responder.json").read_text())
    assert info["config"]["base_url"] == url
    assert not [p for p in (tmp_path / "ds").rglob("*") if p.is_file()
                and key.encode() in p.read_bytes()]
