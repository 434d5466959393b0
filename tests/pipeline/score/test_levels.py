"""The strict level parser and the versioned scoring prompt."""

from __future__ import annotations

import pytest

from pipeline.score.levels import load_scoring_prompt, parse_level


@pytest.mark.parametrize("text, level", [
    ("1", 1), ("7", 7), (" 4 \n", 4), ("**5**", 5), ("5.", 5), ('"3"', 3),
    ("Score: 5", 5), ("score 5", 5), ("Level: 2", 2), ("Rating = 6", 6), ("quality is 4", 4),
    ("7/7", 7), ("5 / 7", 5), ("3 out of 7", 3), ("Score: 6/7", 6), ('{"level": 3}', 3),
])
def test_accepted(text, level):
    parsed = parse_level(text, 1, 7)
    assert parsed.ok and parsed.level == level and parsed.reason is None


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("  ** ", "empty"),
    ("0", "out_of_range"), ("8", "out_of_range"), ("-1", "out_of_range"), ("8/7", "out_of_range"),
    ("4/5", "wrong_scale"), ("10/10", "wrong_scale"),
    ("5.5", "not_an_integer"), ("Score: 4.5", "not_an_integer"),
    ("I would rate it a 5.", "not_a_single_integer"),
    ("The image is sharp and well exposed, so 6 or 7.", "not_a_single_integer"),
    ("5-6", "not_a_single_integer"), ("5 and 6", "not_a_single_integer"),
    ("good", "not_a_single_integer"), ('{"level": 3, "why": "x"}', "not_a_single_integer"),
    ('{"level": "3"}', "not_a_single_integer"), ('{"level": 9}', "out_of_range"),
    ("I'm sorry, I can't help with rating this image.", "refusal"),
    ("As an AI, I am unable to judge images.", "refusal"),
])
def test_rejected_with_reason(text, reason):
    parsed = parse_level(text, 1, 7)
    assert not parsed.ok and parsed.level is None and parsed.reason == reason


def test_scale_is_a_setting():
    assert parse_level("5/5", 1, 5).level == 5
    assert parse_level("7", 1, 5).reason == "out_of_range"
    assert parse_level("7/7", 1, 5).reason == "wrong_scale"


def test_prompt_states_every_standard_and_the_reask_names_the_reason():
    p = load_scoring_prompt("v1", 7)
    text = p.user(region=False)
    assert (p.prompt_id, p.version, p.low, p.high) == ("score_standard", "v1", 1, 7)
    for i, standard in enumerate(p.standards, 1):
        assert f"{i}: {standard}" in text
    assert "one integer from 1 to 7" in text
    assert "region" in p.user(region=True) and "grey" in p.user(region=True)
    assert "out of range" in p.reask("out_of_range")
    five = load_scoring_prompt("v1", 5)
    assert five.high == 5 and "5: excellent" in five.user(region=False)
    own = load_scoring_prompt("v1", 3, ["bad", "ok", "great"])
    assert "3: great" in own.user(region=False)
    with pytest.raises(ValueError, match="2 sentences given for 3 levels"):
        load_scoring_prompt("v1", 3, ["bad", "ok"])
    with pytest.raises(ValueError, match="no standards for 4 levels"):
        load_scoring_prompt("v1", 4)
