"""The append-only respond run log (logs/respond/<key>.jsonl) and the report's totals
over all runs: against the real loopback server with the real `openai` client."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.manifest import Manifest, ResponderConfig
from pipeline.progress import NullProgress
from pipeline.report import collect_stats, write_history_summary, write_report
from pipeline.respond import read_run_log, respond_split, run_log_path, stage_respond
from pipeline.store import Store
from tests.support.fake_openai import Answer, FakeOpenAI, Status
from tests.support.respond_samples import fast_openai_config, make_samples

KEY = "sk-test-SECRET-runlog-0123456789"
MODEL = "gpt-4o-test"
RKEY = f"openai--{MODEL}"
BAD = "The image shows a lake with heavy grain everywhere. Quality is poor."


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _config(server: FakeOpenAI, **kw) -> ResponderConfig:
    return fast_openai_config(server.base_url, MODEL, **{"price_input_per_1m": 10.0,
                                                         "price_output_per_1m": 10.0, **kw})


def test_report_totals_rejections_and_cost_over_runs(tmp_path):
    recs = make_samples(tmp_path, "refA_sd", "train", 3)  # sample 0: blur
    store = Store(tmp_path)
    # sample 0: one rejected answer, then a good one; each call costs 1100 tokens x $10/1M
    with FakeOpenAI(by_image={recs[0].image_A.sha256: [Answer(BAD)]}) as srv:
        cfg = _config(srv)
        s1 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s1["calls"], s1["rejected"]) == (4, {"missing_distortion": 1})
        assert s1["cost_usd"] == pytest.approx(4 * 0.011)
        # the second run is all cached (the responses were lost): no call, no cost
        store.responses_path(RKEY, "refA_sd", "train").unlink()
        s2 = respond_split(None, store, "refA_sd", "train", config=cfg)
        assert (s2["calls"], s2["cached"], s2["cost_usd"], s2["accepted"]) == (0, 4, 0.0, 3)
        assert s2["rejected"] == {} and s2["rejected_cached"] == {"missing_distortion": 1}
        assert srv.chat_calls == 4

    runs = read_run_log(run_log_path(store, RKEY))
    assert [r["origin"] for r in runs] == ["respond_split", "respond_split"]
    assert runs[0]["totals"]["cost_usd"] == pytest.approx(0.044)
    assert runs[0]["key"] == RKEY and runs[0]["prompt_version"] == "v1"
    assert runs[0]["base_url"] == cfg.base_url and runs[0]["run_id"] != runs[1]["run_id"]

    result = write_report(None, store)
    stats = result["stats"]
    # the dataset's report holds what the dataset holds: the accepted answers' usage
    assert stats["usage"][RKEY]["cost_usd"] == pytest.approx(3 * 0.011)  # per responder key
    assert stats["rejections"] == {} and "respond_runs_total" not in stats
    card = (store.report_dir / "README.md").read_text()
    assert "respond (validation)" not in card and "$0.0330" in card
    # the history of the runs is in logs/respond_summary.json, outside the lock
    history = json.loads((store.logs_dir / "respond_summary.json").read_text())
    assert history["run_logs"] == [f"logs/respond/{RKEY}.jsonl"]
    t = history["totals"]
    assert (t["runs"], t["calls"], t["cached"], t["accepted"]) == (2, 4, 4, 6)
    assert (t["prompt_tokens"], t["completion_tokens"]) == (4000, 400)
    assert t["rejected"] == {"missing_distortion": 1}  # the first run's, once
    assert t["cost_usd"] == pytest.approx(0.044)
    assert t["rejected_cached"] == {"missing_distortion": 1}
    latest = history["latest"]
    assert (latest["calls"], latest["cached"], latest["cost_usd"]) == (0, 4, 0.0)
    # a build-style summary of the latest run does not count twice
    write_report(None, store, respond_summary={"totals": {"rejected": {"refusal": 9},
                                                          "cost_usd": 5.0}})
    again = json.loads((store.logs_dir / "respond_summary.json").read_text())
    assert again["totals"]["rejected"] == {"missing_distortion": 1}
    assert again["totals"]["cost_usd"] == pytest.approx(0.044)
    assert (store.report_dir / "README.md").read_text() == card  # history left it alone
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_run_log_survives_a_torn_line_and_build_and_retry_runs_are_logged(tmp_path):
    make_samples(tmp_path, "refA_sd", "train", 2)
    store = Store(tmp_path)
    m = Manifest(name="t", counts={"refA_sd": {"train": 2}})
    ctx = SimpleNamespace(manifest=m, store=store, kinds=["refA_sd"], splits=["train"],
                          progress=NullProgress())
    stage_respond(ctx)
    log = run_log_path(store, "template")
    with open(log, "a") as f:
        f.write('{"run_id": "torn", "tot')  # a killed run
    again = stage_respond(ctx)
    assert again["totals"]["done"] == 0
    runs = read_run_log(log)
    assert [r["origin"] for r in runs] == ["build", "build"]
    assert runs[0]["totals"]["accepted"] == 2 and runs[1]["totals"]["accepted"] == 0
    # the torn line was dropped, then two lines each: started, then finished
    assert log.read_text().count("\n") == 4
    assert [r["status"] for r in runs] == ["finished", "finished"]
    write_history_summary(store)
    t = json.loads((store.logs_dir / "respond_summary.json").read_text())["totals"]
    assert (t["accepted"], t["runs"]) == (2, 2)
    assert collect_stats(store, m)["responses"]["template"]["refA_sd"] == {"train": 2}


def test_cli_respond_and_retry_failures_log_their_runs(tmp_path):
    recs = make_samples(tmp_path / "ds", "refA_sd", "train", 2)
    runner = CliRunner()
    with FakeOpenAI(by_image={recs[1].image_A.sha256: [Status(400, message="bad")]}) as srv:
        data = {"name": "t", "output": str(tmp_path / "ds"), "counts": {"refA_sd": {"train": 2}},
                "responder": {"kind": "openai", "model": "gpt-4o-mini", "base_url": srv.base_url,
                              "requests_per_minute": None, "timeout_s": 2}}
        (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
        r = runner.invoke(app, ["respond", str(tmp_path / "m.yaml")])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["retry-failures", str(tmp_path / "ds")])
        assert r.exit_code == 0, r.output
        assert srv.chat_calls == 3
    runs = read_run_log(tmp_path / "ds/logs/respond/openai--gpt-4o-mini.jsonl")
    assert [x["origin"] for x in runs] == ["dqgen respond", "dqgen retry-failures"]
    assert [x["status"] for x in runs] == ["finished", "finished"]
    assert [x["totals"]["calls"] for x in runs] == [2, 1]
    assert [x["totals"]["failed"] for x in runs] == [1, 0]


def test_one_retry_failures_command_is_one_run_per_responder_key(tmp_path):
    """Failures in four responses files of one key: one retry-failures, one history line."""
    root = tmp_path / "ds"
    bad = []
    for kind in ("refA_sd", "refAB_sd"):
        for split in ("train", "test"):
            recs = make_samples(root, kind, split, 2, offset=len(bad) * 2)
            bad.append(recs[1].image_A.sha256)
    runner = CliRunner()
    with FakeOpenAI(by_image={h: [Status(400, message="bad")] for h in bad}) as srv:
        data = {"name": "t", "output": str(root),
                "counts": {k: {"train": 2, "test": 2} for k in ("refA_sd", "refAB_sd")},
                "responder": {"kind": "openai", "model": "gpt-4o-mini", "base_url": srv.base_url,
                              "requests_per_minute": None, "timeout_s": 2}}
        (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
        r = runner.invoke(app, ["respond", str(tmp_path / "m.yaml")])
        assert r.exit_code == 0, r.output
        assert len(Store(root).failures("respond")) == 4
        r = runner.invoke(app, ["retry-failures", str(root)])
        assert r.exit_code == 0, r.output
    runs = read_run_log(root / "logs/respond/openai--gpt-4o-mini.jsonl")
    assert [x["origin"] for x in runs] == ["dqgen respond", "dqgen retry-failures"]
    retry = runs[1]
    assert retry["totals"]["failed"] == 0 and retry["totals"]["accepted"] == 4
    assert sorted((s["kind"], s["split"]) for s in retry["splits"]) == [
        ("refAB_sd", "test"), ("refAB_sd", "train"), ("refA_sd", "test"), ("refA_sd", "train")]
    assert Store(root).failures("respond") == []
