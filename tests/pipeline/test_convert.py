"""Full-reference -> no-reference rewrite rules (pipeline/convert.py)."""

from __future__ import annotations

import re

import pytest

from pipeline.convert import (
    ReferenceMentionError,
    mentions_reference,
    rewrite_noref,
    to_noref,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Compared to the reference image, the evaluated image is much blurrier.",
         "The evaluated image is much blurrier."),
        ("compared with the reference, noise is visible.", "Noise is visible."),
        ("The sky is clear. In comparison with the reference image, fine detail is lost.",
         "The sky is clear. Fine detail is lost."),
        ("The image is blurrier than the reference image, and colours are dull.",
         "The image is blurrier, and colours are dull."),
        ("It is stronger than in the reference.", "It is stronger."),
        ("The image, compared with the reference, is darker.", "The image is darker."),
        ("The details of the reference are lost.", "The details are lost."),
        ("It differs from the reference image noticeably.", "It differs noticeably."),
        ("Edges in the reference picture are sharp, here they are soft.",
         "Edges are sharp, here they are soft."),
        ("The evaluated image looks worse compared to the reference.",
         "The evaluated image looks worse."),
        ("Image B is closer to the reference image.", "Image B is closer to a high-quality image."),
        ("The reference image is sharp. This one is not.",
         "A high-quality image is sharp. This one is not."),
        ("Blur hides texture.\nIn the reference, the sky is blue.",
         "Blur hides texture.\nThe sky is blue."),
        ("No mention at all here.", "No mention at all here."),
    ],
)
def test_rewrite_rules(text: str, expected: str) -> None:
    out = rewrite_noref(text)
    assert out == expected
    assert not mentions_reference(out)


def _assert_tidy(out: str) -> None:
    """No debris of a removal: doubled spaces, space before punctuation, lowercase starts."""
    assert "  " not in out
    assert not re.search(r"\s[,.;:!?)]|\(\s|,[.;:!?]|,\s*,|\(\s*\)", out), out
    for sentence in re.split(r"(?<![vV]s\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+|\n", out):
        sentence = sentence.lstrip("-* ")
        assert not sentence or not sentence[0].islower(), (sentence, out)


# Bugs: the optional noun ("image") must not be split off when a colon, semicolon or dash
# follows it, and "vs." must not be read as the end of a sentence.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Relative to the reference image: Image A is darker.", "Image A is darker."),
        ("Relative to the reference image; Image A is darker.", "Image A is darker."),
        ("Relative to the reference image - Image A is darker.", "Image A is darker."),
        ("Relative to the reference image \u2014 Image A is darker.", "Image A is darker."),
        ("Compared with the reference picture: the colours are dull.", "The colours are dull."),
        ("Relative to the reference: image A is darker.", "Image A is darker."),
        ("Image A (vs. the reference) is noisy.", "Image A is noisy."),
        ("Image A (vs the reference image) is noisy.", "Image A is noisy."),
        ("Image A is noisy (compared with the reference image).", "Image A is noisy."),
        ("Image A is blurry (e.g. the reference is sharper).",
         "Image A is blurry (e.g. a high-quality image is sharper)."),
        ("Image A vs. the reference: darker and noisier.", "Image A: darker and noisier."),
    ],
)
def test_rewrite_separators_and_abbreviations(text: str, expected: str) -> None:
    out = rewrite_noref(text)
    assert out == expected
    assert not mentions_reference(out)
    _assert_tidy(out)


# Realistic full-reference phrasings (as an MLLM writes them), at the start of an answer,
# at the start of a later sentence and mid-sentence.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # start of the answer
        ("Compared with the reference, the image is blurry.", "The image is blurry."),
        ("When compared with the reference picture, Image A loses detail.",
         "Image A loses detail."),
        ("As compared to the reference photo, noise dominates.", "Noise dominates."),
        ("In comparison to the reference photo, Image B holds up better.",
         "Image B holds up better."),
        ("In contrast to the reference, the colours are washed out.",
         "The colours are washed out."),
        ("Relative to the original reference, the noise is strong.", "The noise is strong."),
        ("Relative to the pristine reference image, Image A is soft.", "Image A is soft."),
        ("With respect to the reference, Image A has lost fine texture; Image B has not.",
         "Image A has lost fine texture; Image B has not."),
        ("Against the reference, Image B holds up better.", "Image B holds up better."),
        ("Checked against the reference, Image A is worse.", "Image A is worse."),
        ("Versus the reference image, both images are darker.", "Both images are darker."),
        ("Compared to the reference image Image A loses detail.", "Image A loses detail."),
        # start of a later sentence, a line or a list item
        ("Image A is noisy. Compared to the reference, it also lacks contrast.",
         "Image A is noisy. It also lacks contrast."),
        ("Image A is noisy. Vs. the reference, it is also darker.",
         "Image A is noisy. It is also darker."),
        ("Blur is strong!\nRelative to the reference image: edges are soft.",
         "Blur is strong!\nEdges are soft."),
        ("- Compared to the reference, Image A is darker.\n- Image B is fine.",
         "- Image A is darker.\n- Image B is fine."),
        ("Verdict: compared to the reference, Image B is better.", "Verdict: Image B is better."),
        # mid-sentence
        ("Image A is blurrier than the reference image.", "Image A is blurrier."),
        ("Image A is blurrier than the reference image and noisier.",
         "Image A is blurrier and noisier."),
        ("Image A is darker than the reference, and noisier.", "Image A is darker, and noisier."),
        ("Image A's colours are duller than those of the reference.",
         "Image A's colours are duller."),
        ("The noise is heavier than in the original reference.", "The noise is heavier."),
        ("Image A, relative to the original reference, is noisy.", "Image A is noisy."),
        ("Image A is, compared with the reference, darker.", "Image A is darker."),
        ("Image A is blurry, compared with the reference, but Image B is sharp.",
         "Image A is blurry, but Image B is sharp."),
        ("Image A is blurry, and compared to the reference, it is darker.",
         "Image A is blurry, and it is darker."),
        ("Image A is darker \u2014 relative to the reference \u2014 and noisier.",
         "Image A is darker and noisier."),
        ("Image A is darker - relative to the reference - and noisier.",
         "Image A is darker and noisier."),
        ("Image A is darker \u2014 relative to the reference.", "Image A is darker."),
        ("The contrast in Image A is lower relative to that reference.",
         "The contrast in Image A is lower."),
        ('Image A looks "washed out" compared to the reference.', 'Image A looks "washed out".'),
        ("Image A is grey, but in the reference, the sky is blue.",
         "Image A is grey, but the sky is blue."),
        ("The sky, in the reference, is blue.", "The sky is blue."),
        ("Both images are darker than the reference images.", "Both images are darker."),
        # "the reference (image)" that stays in the sentence -> "a high-quality image"
        ("Image A is blurry, while the reference image is sharper.",
         "Image A is blurry, while a high-quality image is sharper."),
        ("The reference image is sharper than Image A.",
         "A high-quality image is sharper than Image A."),
        ("Unlike the reference image, Image A is blurry.",
         "Unlike a high-quality image, Image A is blurry."),
        ("The reference images are sharper.", "High-quality images are sharper."),
        # possessives, relative clauses, "than the reference does": substituted, not removed
        ("Image A keeps most of the reference's detail.",
         "Image A keeps most of a high-quality image's detail."),
        ("The reference\u2019s colours are richer.",
         "A high-quality image\u2019s colours are richer."),
        ("Compared with the reference image's colours, Image A's are dull.",
         "Compared with a high-quality image's colours, Image A's are dull."),
        ("Image A is blurrier than the reference, which is sharp.",
         "Image A is blurrier than a high-quality image, which is sharp."),
        ("Image A is noisy (vs. the reference image, which is clean).",
         "Image A is noisy (vs. a high-quality image, which is clean)."),
        ("Image A shows more noise than the reference does.",
         "Image A shows more noise than a high-quality image does."),
        ("Image A is darker than in the reference image, where the sky is blue.",
         "Image A is darker than in a high-quality image, where the sky is blue."),
    ],
)
def test_rewrite_realistic_phrasings(text: str, expected: str) -> None:
    out = rewrite_noref(text)
    assert out == expected
    assert not mentions_reference(out)
    _assert_tidy(out)


def test_rewrite_a_whole_answer() -> None:
    text = ("Compared to the reference image, Image A shows a dim street scene. Its edges are "
            "softer than the reference (vs. the reference, fine texture is gone) and the noise "
            "is stronger than in the reference picture. Relative to the reference image: "
            "Image A is worse than Image B, which keeps the reference's colours.")
    assert rewrite_noref(text) == (
        "Image A shows a dim street scene. Its edges are softer (fine texture is gone)"
        " and the noise is stronger. Image A is worse than Image B, which keeps a"
        " high-quality image's colours.")


@pytest.mark.parametrize("text", [
    "Unlike a reference photo, this is blurry.",
    "Image A has lost the reference-level sharpness.",
    "Compared to its reference's colours, these are dull.",
    "The two references differ.",
    "Reference quality is not reached.",
    "Without references it is hard to say.",
    "It was referenced against a clean copy.",
])
def test_unhandled_mentions_are_detected(text: str) -> None:
    assert mentions_reference(rewrite_noref(text))


def test_word_level_check_ignores_other_words() -> None:
    assert not mentions_reference("The preferences of viewers differ; a referee decides.")
    assert mentions_reference("REFERENCE")


def _train_record(answer: str) -> dict:
    return {"id": "refA_detail_sd:s1", "sample_id": "s1", "image_ref": "references/r.png",
            "image_A": "images/a.png", "image_B": None, "task_type": "quality_single_A",
            "conversations": [{"from": "human", "value": "Compared with the reference, how is it?"},
                              {"from": "gpt", "value": answer}]}


def test_to_noref_train_and_test_forms() -> None:
    rec = _train_record("Compared to the reference image, it is blurry.")
    out = to_noref(rec, task="A_detail_sd", question="How is this image?")
    assert out["id"] == "A_detail_sd:s1"
    assert out["image_ref"] is None
    assert out["task_type"] == "quality_single_A_noref"
    assert out["conversations"] == [{"from": "human", "value": "How is this image?"},
                                    {"from": "gpt", "value": "It is blurry."}]
    assert out["converted_from"] == "refA_detail_sd:s1"
    assert rec["image_ref"] == "references/r.png"  # input untouched

    test_rec = {k: v for k, v in rec.items() if k != "conversations"}
    test_rec.update(query="q", answer="Image A is darker than the reference.",
                    task_type="quality_compare", image_B="images/b.png")
    out = to_noref(test_rec, task="AB_detail_sd", question="Which is better?")
    assert out["task_type"] == "quality_compare_noref"
    assert out["query"] == "Which is better?"
    assert out["answer"] == "Image A is darker."
    assert "conversations" not in out


def test_to_noref_refuses_what_it_cannot_fix() -> None:
    with pytest.raises(ReferenceMentionError, match="A_detail_sd:s1"):
        to_noref(_train_record("Unlike a reference photo, it is blurry."),
                 task="A_detail_sd", question="How is this image?")
    with pytest.raises(ValueError, match="no-reference form"):
        to_noref({**_train_record("x"), "task_type": "quality_single_A_noref"},
                 task="A_detail_sd", question="q")
