"""Validation of detail answers: every rejection reason, verdict parsing, synonym table."""

from __future__ import annotations

import pytest

from distortions.pairs import CATEGORY_PHRASES
from distortions.registry import CATEGORY_ORDER
from pipeline.records import AppliedDistortion
from pipeline.validate import mentions_category, parse_verdict, validate_answer, word_count

BLUR = [AppliedDistortion(name="blur_gaussian", category="blur", severity=2)]
NOISE = [AppliedDistortion(name="noise_gaussian_RGB", category="noise", severity=3)]
GOOD = "The image shows a dog on grass. A moderate blur softens the fur. Overall, quality is fair."


def test_good_answer_passes():
    v = validate_answer(GOOD, word_limit=100, A=BLUR)
    assert v.ok and v.reasons == () and v.words == word_count(GOOD)


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that request.",
    "Sorry, I cannot assess images. The blur is there.",
    "As an AI, I am unable to view images with blur.",
])
def test_refusals_rejected(text):
    assert "refusal" in validate_answer(text, word_limit=100, A=BLUR).reasons


def test_word_limit_tolerance_is_20_percent():
    body = "blur " + "word " * 118  # 119 words
    assert validate_answer(body + "x", word_limit=100, A=BLUR).ok  # 120 = limit * 1.2
    v = validate_answer(body + "x y", word_limit=100, A=BLUR)
    assert v.reasons == ("too_long",)


@pytest.mark.parametrize("text,bad", [
    ("Compared to the reference, the blur is obvious.", True),
    ("Unlike the pristine image, this one has blur.", True),
    ("The referenced blur is visible.", True),
    ("The preference for blur-free photos is clear; this one has blur.", False),
])
def test_reference_mentions_are_word_level(text, bad):
    reasons = validate_answer(text, word_limit=100, A=BLUR).reasons
    assert ("mentions_reference" in reasons) is bad


def test_wrong_distortion_rejected_and_clean_needs_none():
    v = validate_answer("The image is full of grainy noise. Quality is poor.", word_limit=100,
                        A=BLUR)
    assert v.reasons == ("missing_distortion",) and v.missing == ("blur",)
    assert validate_answer("A clean, sharp photo of a cat.", word_limit=100, A=[]).ok


def test_multi_distortion_needs_both_categories():
    both = BLUR + NOISE
    assert validate_answer("It is blurry and noisy.", word_limit=100, A=both).ok
    assert validate_answer("It is blurry.", word_limit=100, A=both).missing == ("noise",)


def test_pairs_need_a_verdict_and_contradiction_is_flagged():
    base = "Image A has blur and Image B has noise."
    v = validate_answer(base, word_limit=150, A=BLUR, B=NOISE, judge_A_better=True)
    assert v.reasons == ("no_verdict",)
    v = validate_answer(base + " Overall, Image A is better than Image B.", word_limit=150,
                        A=BLUR, B=NOISE, judge_A_better=True)
    assert v.ok and v.verdict == "A" and v.flags == ()
    v = validate_answer(base + " Image B is of higher quality.", word_limit=150, A=BLUR,
                        B=NOISE, judge_A_better=True)
    assert v.ok and v.verdict == "B" and v.flags == ("verdict_contradicts_judge",)


@pytest.mark.parametrize("text,expected", [
    ("Overall, Image A is better than Image B.", "A"),
    ("Image A is blurry, but Image B is better.", "B"),
    ("Image A is clearly worse than Image B.", "B"),
    ("The better image is Image B.", "B"),
    ("In conclusion, I prefer Image A.", "A"),
    ("Image B (with slight noise) offers superior quality overall.", "B"),
    ("Image A, despite its noise, is the better one.", "A"),
    ("Image A is sharper.", None),
    ("Both are equally bad.", None),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("category", CATEGORY_ORDER)
def test_every_brief_phrase_names_its_category(category):
    phrase = CATEGORY_PHRASES[category]
    assert mentions_category(f"It shows {phrase}.", category)
    assert mentions_category(f"{phrase.capitalize()} is visible.", category)


def test_synonyms_are_word_bounded_and_flexible():
    assert mentions_category("The photo is out-of-focus.", "blur")
    assert mentions_category("the contrast is much too low", "contrast_weaken")
    assert not mentions_category("nonblurry edges", "blur")
    with pytest.raises(KeyError, match="no synonyms"):
        mentions_category("x", "sparkle")
