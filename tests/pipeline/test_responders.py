"""Responders and request building: instructions, template, replay, openai settings."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json

import pytest

from distortions.registry import CATEGORY_ORDER
from pipeline.manifest import ResponderConfig
from pipeline.records import KINDS, ResponseRecord
from pipeline.responders import ResponderError, make_responder, responder_key
from pipeline.responders.openai import parse_retry_after
from pipeline.responders.prompting import build_request, load_instruction
from pipeline.responders.replay import ReplayResponder
from pipeline.responders.template import TemplateResponder
from pipeline.store import Store
from pipeline.validate import validate_answer
from tests.support.respond_samples import make_samples


@pytest.mark.parametrize("kind,limit,clean,max_tokens", [
    ("refA_sd", 100, 100, 200), ("refA_md", 120, 100, 200),
    ("refAB_sd", 150, 150, 200), ("refAB_md", 170, 170, 230)])
def test_instruction_facts(kind, limit, clean, max_tokens):
    ins = load_instruction(kind, "v1")
    assert (ins.word_limit, ins.word_limit_clean, ins.max_tokens, ins.temperature) == (
        limit, clean, max_tokens, 0.5)
    assert ins.id == kind and ins.version == "v1"


def test_request_states_ground_truth_hint_and_image_order(tmp_path):
    (s,) = make_samples(tmp_path, "refAB_md", "train", 1)
    req = build_request(s, Store(tmp_path), load_instruction("refAB_md"))
    d = s.image_A.distortions[0]
    from distortions.pairs import CATEGORY_PHRASES, grade_word
    assert f"{CATEGORY_PHRASES[d.category]} at" in req.user
    assert grade_word(d.severity, multi=True) in req.user
    better = "A" if s.judge.A_better_B else "B"
    assert f"found Image {better} to be the better" in req.user
    assert "disregard it if it is obviously wrong" in req.user
    assert [i.role for i in req.images] == ["reference", "A", "B"]
    assert [i.sha256 for i in req.images][1:] == [s.image_A.sha256, s.image_B.sha256]
    assert "170 words" in req.user
    # the hash ignores pixels but not the re-ask
    h = req.hash_for("m")
    assert h == build_request(s, Store(tmp_path), load_instruction("refAB_md")).hash_for("m")
    again = build_request(s, Store(tmp_path), load_instruction("refAB_md"), reask=1,
                          reasons=("no_verdict",))
    assert again.hash_for("m") != h and "which image, A or B, is better" in again.reask_text
    assert h != req.hash_for("other-model")


def test_clean_single_gets_clean_limit(tmp_path):
    recs = make_samples(tmp_path, "refA_md", "train", 2, clean_every=2)
    req = build_request(recs[1], Store(tmp_path), load_instruction("refA_md"))
    assert recs[1].image_A.distortions == [] and req.word_limit == 100
    assert "no added distortion" in req.user


def test_missing_image_is_a_clear_error(tmp_path):
    (s,) = make_samples(tmp_path, "refA_sd", "train", 1)
    (tmp_path / s.image_A.path).unlink()
    with pytest.raises(ResponderError, match="image A not readable") as err:
        build_request(s, Store(tmp_path), load_instruction("refA_sd"))
    assert err.value.kind == "missing_image"


@pytest.mark.parametrize("kind", KINDS)
def test_template_is_deterministic_and_names_every_category(tmp_path, kind):
    # 12 samples cover every category as the first distortion (sd: the only one); 13th clean
    a = make_samples(tmp_path / "a", kind, "train", 13, clean_every=13)
    make_samples(tmp_path / "b", kind, "train", 13, clean_every=13)
    t = TemplateResponder()
    ins = load_instruction(kind)
    seen = set()
    for s in a:
        req_a = build_request(s, Store(tmp_path / "a"), ins)
        req_b = build_request(s, Store(tmp_path / "b"), ins)
        text = asyncio.run(t.arespond(req_a)).text
        assert text == t.answer(req_b)  # same sample, another folder: same words
        B = s.image_B.distortions if s.image_B else None
        v = validate_answer(text, word_limit=req_a.word_limit, A=s.image_A.distortions, B=B,
                            judge_A_better=s.judge.A_better_B if s.judge else None)
        assert v.ok, (text, v)
        assert v.flags == ()  # the verdict follows the judge
        seen.update(d.category for d in s.image_A.distortions)
    assert seen == set(CATEGORY_ORDER)
    assert t.model == "template-v1" and t.key == "template"


@pytest.mark.parametrize("colourfulness,colour,expected", [
    (5.0, "red", "nearly colourless scene with a faint red cast"),
    (5.0, "neutral grey", "nearly colourless scene of neutral grey tones"),
    (40.0, "blue", "colourful scene dominated by blue tones"),
    (80.0, "neutral grey", "vivid scene of neutral grey tones"),
])
def test_template_scene_words_agree(colourfulness, colour, expected):
    """A nearly colourless scene is never 'dominated by red tones'."""
    import numpy as np

    from pipeline.responders.template import _content

    stats = {"brightness": 0.5, "colourfulness": colourfulness, "colour": colour, "edges": 0.1}
    text = _content(stats, np.random.default_rng(0))
    assert expected in text and text.count("tones") <= 1


def test_replay_from_records_and_from_a_map(tmp_path):
    (s,) = make_samples(tmp_path, "refA_sd", "train", 1)
    req = build_request(s, Store(tmp_path), load_instruction("refA_sd"))
    rec = ResponseRecord(sample_id=s.sample_id, kind="refA_sd", split="train", responder="openai",
                         model="gpt-4o", prompt_id="refA_sd", prompt_version="v1",
                         request_hash="x", text="Blurry photo.")
    (tmp_path / "r.jsonl").write_text(rec.model_dump_json() + "\n")
    r = ReplayResponder(tmp_path / "r.jsonl")
    reply = asyncio.run(r.arespond(req))
    assert (reply.text, reply.model, r.model) == ("Blurry photo.", "gpt-4o", "gpt-4o")
    (tmp_path / "m.json").write_text(json.dumps({s.sample_id: "Noisy."}))
    cfg = ResponderConfig(kind="replay", replay_file="m.json")
    m = make_responder(cfg, base_dir=tmp_path)
    assert asyncio.run(m.arespond(req)).text == "Noisy."
    (tmp_path / "m.json").write_text(json.dumps({"other": "x"}))
    with pytest.raises(ResponderError, match="no answer in replay file") as err:
        asyncio.run(make_responder(cfg, base_dir=tmp_path).arespond(req))
    assert err.value.kind == "replay_missing" and not err.value.retryable
    with pytest.raises(FileNotFoundError, match="replay file not found"):
        ReplayResponder(tmp_path / "nope.jsonl")


def test_openai_needs_key_from_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_responder(ResponderConfig(kind="openai", model="gpt-4o"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-abcdefgh")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    r = make_responder(ResponderConfig(kind="openai", model="gpt-4o-2024-08-06"))
    assert r.base_url == "http://127.0.0.1:9/v1"  # env when the manifest has none
    assert r.key == "openai--gpt-4o-2024-08-06" and "sk-secret" not in repr(r)
    monkeypatch.setenv("OPENAI_MODEL", "llama3.2-vision")
    r2 = make_responder(ResponderConfig(kind="openai", base_url="http://localhost:11434/v1"))
    assert r2.base_url == "http://localhost:11434/v1" and r2.model == "llama3.2-vision"
    assert r2.key == "openai--llama3.2-vision"


def test_openai_without_a_model_name_is_an_error_naming_the_three_places(monkeypatch):
    """No silent gpt-4o: a local model's answers would be filed and priced as gpt-4o."""
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ValueError, match="model name") as err:
        make_responder(ResponderConfig(kind="openai", base_url="http://127.0.0.1:9/v1"))
    text = str(err.value)
    assert "responder.model" in text and "--model" in text and "OPENAI_MODEL" in text
    monkeypatch.setenv("OPENAI_MODEL", "  ")  # blank is not a name
    with pytest.raises(ValueError, match="model name"):
        make_responder(ResponderConfig(kind="openai"))


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    date = email.utils.format_datetime(now + dt.timedelta(seconds=7), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 7.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_responder_keys_are_folder_safe():
    assert responder_key("template", "template-v1") == "template"
    assert responder_key("openai", "org/model:7b") == "openai--org_model_7b"
