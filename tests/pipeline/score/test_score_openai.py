"""`dqgen score` + `dqgen evaluate` end to end on the KonIQ-10k and AGIQA-3k fixtures, through
the real openai client against a loopback "model" whose level is a known function of the
image it is sent (its mean brightness): the evaluation must recover the correlation this test
computes on its own from the image files; re-asks, failures, resume and the cost estimate."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from pipeline.build import run_build
from pipeline.cli import app
from pipeline.labels.build import build_labels
from pipeline.manifest import load_manifest
from pipeline.records import FailureRecord
from pipeline.store import Store, read_jsonl
from tests.pipeline.labels.fixtures import make_agiqa3k, make_koniq10k
from tests.support.fake_openai import Answer
from tests.support.fake_scorer import FakeScorer, brightness_level

runner = CliRunner()
KEY = "openai--fake-scorer"
W = 0.4  # scoring.global_weight


def _paint(path: Path, quality: float, rng: np.random.Generator) -> None:
    """A 24x16 image whose brightness follows `quality` (plus noise); quadrants differ."""
    base = 30 + 190 * quality + rng.normal(0, 12)
    arr = np.full((16, 24, 3), base)
    arr[:, :12] += 25
    arr[8:, :] -= 20
    arr += rng.normal(0, 4, arr.shape)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)


def _expected(path: Path) -> tuple[float, int]:
    """The final score computed here, independently: levels of the image and of its 2x1
    grid (row bounds 0, round(h / 2), h), w * global + (1 - w) * area-weighted mean."""
    with Image.open(path) as im:
        px = np.asarray(im.convert("RGB"))
    h, w = px.shape[:2]
    ys = [0, round(h / 2), h]
    local = [(brightness_level(px[ys[r]:ys[r + 1]]), (ys[r + 1] - ys[r]) / h) for r in range(2)]
    g = brightness_level(px)
    return W * g + (1 - W) * sum(s * a for s, a in local) / sum(a for _, a in local), g


def _png_sha(path: Path) -> str:
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG", compress_level=1)
    return hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(0)
    koniq, agiqa = tmp / "data" / "koniq", tmp / "data" / "agiqa"
    k_info, a_info = make_koniq10k(koniq), make_agiqa3k(agiqa)
    mos = {}
    for name, (m, _) in sorted(k_info["good"].items()):
        _paint(koniq / "1024x768" / name, m / 100, rng)
        mos[("koniq10k", name)] = (m, koniq / "1024x768" / name)
    for name, (m, _) in sorted(a_info["good"].items()):
        _paint(agiqa / "AGIQA-3K" / name, m / 5, rng)
        mos[("agiqa3k", name)] = (m, agiqa / "AGIQA-3K" / name)
    manifest = tmp / "m.yaml"
    manifest.write_text(f"""name: scoring
seed: 5
output: {tmp / 'out'}
sources:
  - {{dataset: koniq10k, root: {koniq}}}
  - {{dataset: agiqa3k, root: {agiqa}, split: prompt, repeats: 3}}
responder:
  kind: openai
  model: fake-scorer
  backoff_initial_s: 0
  max_reasks: 1
  concurrency: 4
  requests_per_minute: null
  price_input_per_1m: 2.5
  price_output_per_1m: 10
scoring:
  regions: grid
  grid: [2, 1]
  global_weight: {W}
""")
    m = load_manifest(manifest)
    store = Store(m.output_dir())
    build_labels(m, store)
    # one image answers in prose, then a level (re-asked once); another refuses twice (fails)
    reasked, refused = sorted(k_info["good"])[2], sorted(k_info["good"])[5]
    by_image = {_png_sha(koniq / "1024x768" / reasked): [Answer("I would rate it a 5.")],
                _png_sha(koniq / "1024x768" / refused): [Answer("Sorry, I can't rate this."),
                                                         Answer("Sorry, I can't rate this.")]}
    with pytest.MonkeyPatch.context() as mp, FakeScorer(by_image=by_image) as server:
        mp.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
        args = ["score", str(manifest), "--base-url", server.base_url]
        first = runner.invoke(app, args)
        calls_first = server.chat_calls
        failures_first = list(read_jsonl(store.failures_path("score"), FailureRecord))
        second = runner.invoke(app, args)  # retries the failed image only
        calls_second = server.chat_calls - calls_first
        scores_bytes = {p.name: p.read_bytes() for p in (store.root / "scores" / KEY).glob("*.jsonl")}
        third = runner.invoke(app, args)  # nothing left: zero calls, same bytes
        calls_third = server.chat_calls - calls_first - calls_second
        # the build's score stage (scoring.enabled) over the same folder: all done already
        enabled = m.model_copy(update={
            "responder": m.responder.model_copy(update={"base_url": server.base_url}),
            "scoring": m.scoring.model_copy(update={"enabled": True})})
        stage = run_build(enabled, stages=["score"])["score"]
        calls_stage = server.chat_calls - calls_first - calls_second - calls_third
        requests = list(server.requests)
    ev = runner.invoke(app, ["evaluate", str(store.root), "--scores", KEY, "--bootstrap", "200",
                             "--seed", "1"])
    return dict(store=store, mos=mos, stage=stage, calls_stage=calls_stage, first=first, second=second, third=third, ev=ev,
                calls=(calls_first, calls_second, calls_third), failures_first=failures_first,
                scores_bytes=scores_bytes, requests=requests, refused=refused, reasked=reasked)


def test_cost_estimate_and_calls_per_image(world):
    first = world["first"]
    assert first.exit_code == 0, first.output
    out = " ".join(first.output.split())  # the console wraps long lines
    n = len(world["mos"])  # 12 KonIQ + 18 AGIQA images, 1 + 2 grid regions each
    assert f"estimate: {n} images x (1 + up to 2 regions) = {n * 3} calls" in out
    per_call = int(out.split("calls, ~")[1].split()[0]) // (n * 3)
    usd = (n * 3) * (per_call * 2.5 + 16 * 10) / 1e6  # manifest prices, max_tokens 16
    assert f"${usd:.4f}" in out
    # one image failed on its global ask after one re-ask: 1 + 1 calls, no region asked;
    # the re-asked image cost one more call
    assert world["calls"][0] == (n - 1) * 3 + 2 + 1


def test_records_keep_every_sub_score(world):
    store, mos = world["store"], world["mos"]
    rows = {(r["dataset"], r["image_id"]): r
            for ds in ("koniq10k", "agiqa3k")
            for r in read_jsonl(store.root / "scores" / KEY / f"{ds}.jsonl")}
    assert set(rows) == set(mos)
    for key, r in rows.items():
        final, g = _expected(mos[key][1])
        assert r["global_level"] == g
        assert [p["name"] for p in r["regions"]] == ["grid_r0c0", "grid_r1c0"]
        assert sum(p["area"] for p in r["regions"]) == pytest.approx(1.0)
        assert all(len(p["request_hash"]) == 64 and 1 <= p["level"] <= 7 for p in r["regions"])
        assert r["final"] == pytest.approx(final, abs=1e-6)
        assert r["norm"] == pytest.approx((final - 1) / 6, abs=1e-6)
        assert r["prompt_id"] == "score_standard" and r["prompt_version"] == "v1"
    assert rows[("koniq10k", world["reasked"])]["usage"]["prompt_tokens"] > 0


def test_requests_carry_the_standards_and_the_reask_reason(world):
    reqs = world["requests"]
    assert all(len(r.image_sha256) == 1 for r in reqs)
    assert all("7: excellent" in r.user_text for r in reqs)
    reasks = [r for r in reqs if "could not be used" in r.user_text]
    assert {("not a single integer" in r.user_text) or ("refusal" in r.user_text)
            for r in reasks} == {True}
    assert sum("region of a larger photograph" in r.user_text for r in reqs) > len(reqs) // 2


def test_failure_then_retry_then_nothing_to_do(world):
    f = world["failures_first"]
    assert [(x.item_id, x.error_type) for x in f] == [(f"koniq10k/{world['refused']}", "rejected")]
    assert "global: answer rejected after 2 ask(s): refusal" in f[0].message
    assert "Sorry" in f[0].raw_output
    assert world["second"].exit_code == 0, world["second"].output
    assert world["calls"][1] == 3  # the failed image: its cached refusals asked anew + regions
    assert world["calls"][2] == 0  # a re-run pays nothing
    store = world["store"]
    assert list(read_jsonl(store.failures_path("score"))) == []
    assert world["scores_bytes"] == {p.name: p.read_bytes()
                                     for p in (store.root / "scores" / KEY).glob("*.jsonl")}
    log = list(read_jsonl(store.root / "logs" / "score" / f"{KEY}.jsonl"))
    assert [r["calls"] for r in log] == [*world["calls"], world["calls_stage"]]


def test_evaluate_recovers_the_independent_correlation(world):
    ev, store, mos = world["ev"], world["store"], world["mos"]
    assert ev.exit_code == 0, ev.output
    doc = json.loads((store.root / "eval" / KEY / "metrics.json").read_text())
    for ds in ("koniq10k", "agiqa3k"):
        keys = sorted(k for k in mos if k[0] == ds)
        pred = np.array([_expected(mos[k][1])[0] for k in keys])
        human = np.array([mos[k][0] for k in keys])
        m = doc["datasets"][ds]["all"]
        assert m["n"] == len(keys)
        assert m["srcc"] == pytest.approx(stats.spearmanr(pred, human).statistic, abs=1e-9)
        assert m["plcc"] == pytest.approx(stats.pearsonr(pred, human).statistic, abs=1e-6)
        assert m["krcc"] == pytest.approx(stats.kendalltau(pred, human).statistic, abs=1e-9)
        assert m["srcc"] > 0.8  # brightness was painted from the MOS
        lo, hi = m["ci95"]["srcc"]
        assert lo <= m["srcc"] <= hi
        assert (store.root / "eval" / KEY / f"{ds}.png").exists()
    k = doc["datasets"]["koniq10k"]
    assert set(k["splits"]) == {"train", "val", "test"}
    folds = doc["datasets"]["agiqa3k"]["folds"]
    assert folds["repeats"] == 3 and folds["srcc"]["std"] >= 0
    assert "SRCC [95% CI]" in ev.output and "koniq10k" in ev.output


def test_report_section(world):
    from pipeline.evaluate import evaluation_section

    lines = evaluation_section(world["store"])
    text = "\n".join(lines)
    assert lines[0] == "## Agreement with human labels"
    assert f"| {KEY} | koniq10k | 12 |" in text and f"](../eval/{KEY}/agiqa3k.png)" in text


def test_build_stage_runs_when_enabled(world):
    stage = world["stage"]
    assert world["calls_stage"] == 0 and stage["calls"] == 0 and stage["scored"] == 0
    assert stage["datasets"]["koniq10k"]["already_done"] == 12
    assert stage["datasets"]["agiqa3k"]["already_done"] == 18
