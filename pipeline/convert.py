"""Full-reference -> no-reference conversion of task records (../shared/spec/tasks.md).

`rewrite_noref(text)` applies the spec's rewrite rules to a detail answer:

1. Phrases that only situate a statement against the reference are removed: "compared
   to/with the reference (image)", "in comparison to/with ...", "relative to ...",
   "than / in / of / from / against the reference (image)". When a sentence began with such a
   phrase, the next word is capitalised and a dangling comma goes.
2. A remaining "the reference (image)" becomes "a high-quality image" ("A high-quality image"
   at a sentence start).
3. Whitespace and punctuation left behind (" ,", ", .", double spaces) are tidied.

`mentions_reference(text)` is the word-level, case-insensitive check ("reference",
"references", "referenced", ...) used after rewriting: a record whose answer still mentions
a reference is dropped and counted by the caller, never written.

`to_noref(record, question)` turns a refA/refAB task record (train or test form) into its
no-reference twin; the question is passed in because no-ref questions come from their own
pool (a full-reference question cannot be "converted" honestly).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "NOREF_TASK_TYPES",
    "ReferenceMentionError",
    "mentions_reference",
    "rewrite_noref",
    "to_noref",
]

NOREF_TASK_TYPES: dict[str, str] = {
    "quality_single_A": "quality_single_A_noref",
    "quality_compare": "quality_compare_noref",
}

_ADJ = r"(?:original\s+|pristine\s+|clean\s+)?"
_NOUN = r"(?:\s+(?:image|picture|photo|version))?"
_REF = rf"(?:the|its|their|this|that)\s+{_ADJ}reference{_NOUN}"
_LEAD = (
    r"(?:compared\s+(?:to|with)|in\s+comparison\s+(?:to|with)|relative\s+to|with\s+respect\s+to"
    r"|when\s+compared\s+(?:to|with)|as\s+compared\s+(?:to|with)|versus|against)"
)
_TAIL = r"(?:than(?:\s+(?:in|of|on|from|that\s+of|those\s+of))?|in|of|on|from|against)"

# A sentence that starts with a situating phrase: "Compared to the reference image, the ..."
_SENTENCE_START = re.compile(
    rf"(^|[.!?]\s+|\n\s*)(?:{_LEAD}|{_TAIL})\s+{_REF}\s*,?\s*(\w)", re.IGNORECASE
)
# The same phrase mid-sentence, with the commas that fence it: ", compared to the reference,"
_MID_LEAD = re.compile(rf"\s*,?\s*\b(?:{_LEAD})\s+{_REF}\b\s*(,)?", re.IGNORECASE)
# "than the reference (image)", "in the reference", "of the reference image", ...
_MID_TAIL = re.compile(rf"\s*\b{_TAIL}\s+{_REF}\b", re.IGNORECASE)
# What is left: "the reference (image)" -> "a high-quality image".
_REMAINING = re.compile(
    rf"\bthe\s+{_ADJ}reference{_NOUN}\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\breferenc\w*", re.IGNORECASE)


class ReferenceMentionError(ValueError):
    """An answer still mentions a reference after the rewrite (the record must be dropped)."""


def mentions_reference(text: str) -> bool:
    """True when `text` contains a word starting with "referenc" (any case)."""
    return _WORD.search(text) is not None


def _start_sub(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2).upper()


def _mid_lead_sub(match: re.Match[str]) -> str:
    # ", compared to the reference, it is" -> " it is"; "blurry compared to the reference." ->
    # "blurry ." (tidied later): the fencing commas go with the phrase.
    return " "


def _remaining_sub(match: re.Match[str]) -> str:
    start = match.start()
    before = match.string[:start].rstrip()
    at_sentence_start = not before or before[-1] in ".!?\n"
    return "A high-quality image" if at_sentence_start else "a high-quality image"


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(r",[ \t]*([.;:!?])", r"\1", text)
    text = re.sub(r",[ \t]*,", ",", text)
    text = re.sub(r"(^|[.!?]\s+|\n\s*),[ \t]*", r"\1", text)  # a comma left at a sentence start
    # Sentence starts that lost their first word to a removal: capitalise.
    text = re.sub(r"(^\s*)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text.strip()


def rewrite_noref(text: str) -> str:
    """Rewrite a full-reference answer so that it does not refer to a reference.

    The result may still mention a reference in a form the rules do not cover; check it
    with `mentions_reference` (or use `to_noref`, which raises).

    Args:
        text: the answer of a refA_detail / refAB_detail record.

    Returns:
        The rewritten text.
    """
    out = _SENTENCE_START.sub(_start_sub, text)
    out = _MID_LEAD.sub(_mid_lead_sub, out)
    out = _MID_TAIL.sub("", out)
    out = _REMAINING.sub(_remaining_sub, out)
    return _tidy(out)


def to_noref(record: dict[str, Any], *, task: str, question: str) -> dict[str, Any]:
    """The no-reference twin of a refA/refAB detail record (train or test form).

    Args:
        record: a task record with task_type quality_single_A or quality_compare.
        task: the no-ref task name (e.g. "A_detail_sd"); goes into the new id.
        question: the no-reference question to use (drawn by the caller from its pool).

    Returns:
        A new record: image_ref None, `_noref` task type, rewritten answer, new id.

    Raises:
        ValueError: the record's task type has no no-reference form.
        ReferenceMentionError: the rewritten answer still mentions a reference.
    """
    task_type = record["task_type"]
    if task_type not in NOREF_TASK_TYPES:
        msg = f"task_type {task_type!r} has no no-reference form"
        raise ValueError(msg)
    out = dict(record)
    sample_id = record.get("sample_id", record["id"])
    out["id"] = f"{task}:{sample_id}"
    out["image_ref"] = None
    out["task_type"] = NOREF_TASK_TYPES[task_type]
    if "conversations" in record:
        answer = record["conversations"][1]["value"]
    else:
        answer = record["answer"]
    new_answer = rewrite_noref(answer)
    if mentions_reference(new_answer) or mentions_reference(question):
        msg = f"{out['id']}: answer still mentions a reference after rewriting"
        raise ReferenceMentionError(msg)
    if "conversations" in record:
        out["conversations"] = [
            {"from": "human", "value": question},
            {"from": "gpt", "value": new_answer},
        ]
    else:
        out["query"] = question
        out["answer"] = new_answer
    out["converted_from"] = record["id"]
    return out
