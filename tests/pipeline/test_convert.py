"""Full-reference -> no-reference rewrite rules (pipeline/convert.py)."""

from __future__ import annotations

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


@pytest.mark.parametrize("text", [
    "Unlike a reference photo, this is blurry.",
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
