"""Pseudo-labels: a model's scores of unlabelled references become a labelled source
(provenance mllm_score) with pairs for the comparison tasks and its agreement beside it."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from pipeline.assemble import ComparisonPair
from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.manifest import Manifest, ResponderConfig, ScoringConfig
from pipeline.records import ReferenceRecord
from pipeline.score.pseudo import write_pseudo_labels
from pipeline.score.run import REFERENCES, reference_items, score_items
from pipeline.store import Store, read_jsonl
from tests.support.fake_scorer import FakeScorer, brightness_level


def test_scored_references_become_a_labelled_source(tmp_path, monkeypatch):
    store = Store(tmp_path / "out")
    refs = []
    for i, grey in enumerate((20, 60, 110, 150, 200, 240)):
        rel = f"references/r{i}.png"
        path = store.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 16, 3), grey, np.uint8)).save(path)
        refs.append(ReferenceRecord(ref_id=f"r{i}", source=f"r{i}.jpg", split="train" if i < 4
                                    else "test", path=rel, sha256="0" * 64, width=16, height=12,
                                    orig_width=16, orig_height=12, orig_mode="RGB"))
    store.references_index.write_text("".join(r.model_dump_json() + "\n" for r in refs))
    (store.root / "eval" / "openai--fake-scorer").mkdir(parents=True)
    (store.root / "eval" / "openai--fake-scorer" / "metrics.json").write_text(json.dumps(
        {"datasets": {"koniq10k": {"all": {"n": 12, "srcc": 0.9, "plcc": 0.8,
                                           "plcc_fitted": 0.85}}}}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    cfg = ScoringConfig(regions="none", references=True)
    with FakeScorer() as server:
        config = ResponderConfig(kind="openai", model="fake-scorer", base_url=server.base_url,
                                 requests_per_minute=None)
        summary = score_items(store, {REFERENCES: reference_items(store)}, config=config,
                              cfg=cfg)
        assert server.chat_calls == 6 and summary["scored"] == 6
    m = Manifest(name="p", seed=3, scoring=cfg)
    s = write_pseudo_labels(m, store, "openai--fake-scorer")
    images = list(read_jsonl(store.root / "labels" / "mllm_score" / "images.jsonl", LabelledImage))
    assert [im.image_id for im in images] == [f"r{i}" for i in range(6)]
    for im, grey in zip(images, (20, 60, 110, 150, 200, 240), strict=True):
        level = brightness_level(np.full((12, 16, 3), grey, np.uint8))
        assert im.labels["mllm_score"] == level and abs(im.score - (level - 1) / 6) < 1e-6
        assert im.attributes["provenance"] == "mllm_score" and im.attributes["model"] == "fake-scorer"
        assert (store.root / "labels" / "mllm_score" / "src" / im.path).is_file()
    pairs = list(read_jsonl(store.root / "labels" / "mllm_score" / "pairs.jsonl", HumanPair))
    assert pairs and all(p.difference > 0.1 and p.split in ("train", "test") for p in pairs)
    rows = [ComparisonPair.model_validate(r) for split in ("train", "test")
            for r in read_jsonl(store.root / "pairs" / "mllm_score" / f"{split}.jsonl")]
    assert len(rows) == len(pairs)
    assert all((store.root / r.image_A).is_file() and (store.root / r.image_B).is_file()
               for r in rows)
    assert s["agreement"] == {"koniq10k": {"n": 12, "srcc": 0.9, "plcc": 0.8,
                                           "plcc_fitted": 0.85}}
    assert json.loads((store.root / "labels" / "mllm_score" / "summary.json").read_text())[
        "provenance"] == "mllm_score"


def test_synthetic_samples_are_scored_image_by_image(tmp_path, monkeypatch):
    from pipeline.score.run import SAMPLES, sample_items
    from tests.support.respond_samples import make_samples

    make_samples(tmp_path, "refAB_sd", "train", 3)
    store = Store(tmp_path)
    items = sample_items(store, ["refA_sd", "refAB_sd"], ["train", "test"])
    assert len(items) == 6 and {i.image_id[-2:] for i in items} == {"/A", "/B"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with FakeScorer() as server:
        config = ResponderConfig(kind="openai", model="fake-scorer", base_url=server.base_url,
                                 requests_per_minute=None)
        summary = score_items(store, {SAMPLES: items}, config=config,
                              cfg=ScoringConfig(regions="none"))
        assert server.chat_calls == 6
    rows = list(read_jsonl(store.root / "scores" / "openai--fake-scorer" / "samples.jsonl"))
    assert summary["scored"] == 6 and [r["image_id"] for r in rows] == [i.image_id for i in items]
    for r, it in zip(rows, items, strict=True):
        px = np.asarray(Image.open(it.path).convert("RGB"))
        assert r["global_level"] == brightness_level(px) and r["regions"] == []


def _refa_samples(tmp_path, monkeypatch, n: int):
    """n refA_sd train samples in `tmp_path`: the store, its scoring items, and a scoring
    config without regions (a fake key set in the environment)."""
    from pipeline.score.run import sample_items
    from tests.support.respond_samples import make_samples

    make_samples(tmp_path, "refA_sd", "train", n)
    store = Store(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    return store, sample_items(store, ["refA_sd"], ["train"]), ScoringConfig(regions="none")


def test_budget_stops_new_calls_and_a_rerun_continues(tmp_path, monkeypatch):
    from pipeline.score.run import SAMPLES

    store, items, cfg = _refa_samples(tmp_path, monkeypatch, 5)
    with FakeScorer() as server:
        config = ResponderConfig(kind="openai", model="fake-scorer", base_url=server.base_url,
                                 requests_per_minute=None, concurrency=1,
                                 price_input_per_1m=2.5, price_output_per_1m=10.0,
                                 max_cost_usd=0.007)  # room for two worst-case calls
        capped = score_items(store, {SAMPLES: items}, config=config, cfg=cfg)
        assert capped["budget_reached"] is True and server.chat_calls == 2
        assert capped["scored"] == 2 and capped["cost_usd"] <= 0.007
        rest = score_items(store, {SAMPLES: items}, config=config.model_copy(
            update={"max_cost_usd": None}), cfg=cfg)
        assert rest["scored"] == 3 and server.chat_calls == 5 and not rest["budget_reached"]
    assert len(list(read_jsonl(store.root / "scores" / "openai--fake-scorer" / "samples.jsonl"))) == 5


def test_structured_level_and_the_text_fallback(tmp_path, monkeypatch):
    from pipeline.score.run import SAMPLES

    store, items, cfg = _refa_samples(tmp_path, monkeypatch, 3)
    expected = [brightness_level(np.asarray(Image.open(i.path).convert("RGB"))) for i in items]
    with FakeScorer(fmt='{{"level": {level}}}') as server:  # answers the schema's JSON
        config = ResponderConfig(kind="openai", model="fake-scorer", base_url=server.base_url,
                                 requests_per_minute=None, concurrency=1, structured_output=True)
        score_items(store, {SAMPLES: items}, config=config, cfg=cfg)
        formats = [r.body["response_format"] for r in server.requests]
    assert all(f["json_schema"]["schema"]["properties"]["level"]["enum"] == list(range(1, 8))
               for f in formats) and len(formats) == 3
    key = store.root / "scores" / "openai--fake-scorer" / "samples.jsonl"
    assert [r["global_level"] for r in read_jsonl(key)] == expected
    other, other_items, _ = _refa_samples(tmp_path / "other", monkeypatch, 3)
    with FakeScorer(response_format=False) as server:  # refuses response_format: text
        config = ResponderConfig(kind="openai", model="fake-scorer", base_url=server.base_url,
                                 requests_per_minute=None, concurrency=1, structured_output=True)
        summary = score_items(other, {SAMPLES: other_items}, config=config, cfg=cfg)
        actions = [r.action for r in server.requests]
    assert actions[0] == "response_format_refused" and actions.count("response_format_refused") == 1
    assert summary["scored"] == 3 and len(actions) == 4
