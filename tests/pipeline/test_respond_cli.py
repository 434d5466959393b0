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


def test_replay_file_option_then_assemble_from_that_responder(tmp_path):
    recs = make_samples(tmp_path / "ds", "refA_sd", "train", 3)
    m = _manifest(tmp_path)
    r = runner.invoke(app, ["respond", str(m), "--kinds", "refA_sd"])
    assert r.exit_code == 0, r.output
    template = Store(tmp_path / "ds").responses_path("template", "refA_sd", "train")
    texts = {x.sample_id: x.text for x in read_jsonl(template, ResponseRecord)}
    # another build's answers replayed into this dataset: no responder is called
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({sid: f"{t} (replayed)" for sid, t in texts.items()}))
    r = runner.invoke(app, ["respond", str(m), "--kinds", "refA_sd", "--replay-file",
                            str(answers)])
    assert r.exit_code == 0, r.output
    store = Store(tmp_path / "ds")
    replayed = list(read_jsonl(store.responses_path("replay", "refA_sd", "train"),
                               ResponseRecord))
    assert {x.sample_id: x.text for x in replayed} == {
        sid: f"{t} (replayed)" for sid, t in texts.items()}
    bad = runner.invoke(app, ["respond", str(m), "--replay-file", str(answers),
                              "--responder", "openai"])
    assert bad.exit_code == 2 and "--replay-file goes with --responder replay" in bad.output
    # assemble reads whichever responder the option names
    for key, suffix in (("template", ""), ("replay", " (replayed)")):
        r = runner.invoke(app, ["assemble", str(m), "--kinds", "refA_sd", "--responder-key", key])
        assert r.exit_code == 0, r.output
        rows = json.loads((tmp_path / "ds/tasks/refA_detail_sd/train.json").read_text())
        got = {row["sample_id"]: row["conversations"][1]["value"] for row in rows}
        assert got == {rec.sample_id: texts[rec.sample_id] + suffix for rec in recs}
    r = runner.invoke(app, ["assemble", str(m), "--responder-key", "openai--nope"])
    assert r.exit_code == 2 and "present: replay, template" in " ".join(r.output.split())
