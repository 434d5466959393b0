"""Full-reference -> no-reference conversion of task records (../shared/spec/tasks.md).

`rewrite_noref(text)` applies the spec's rewrite rules to a detail answer:

1. Phrases that only situate a statement against the reference are removed: "compared
   to/with the reference (image)", "in comparison/contrast to/with ...", "relative to ...",
   "vs. ...", "than / in / of / from / against the reference (image)", also in parentheses
   ("(vs. the reference)") or fenced by commas or dashes. "the reference" may carry
   "original"/"pristine"/... and "image"/"picture"/"photo"/"version". When a sentence began
   with such a phrase, its separator (, : ; or a dash) goes and the next word is capitalised;
   "vs.", "e.g." and "i.e." do not end a sentence.
   Not removed (rule 2 applies instead), since removal would break the sentence: a possessive
   ("of the reference's detail"), a reference followed by a relative clause ("than the
   reference, which is sharp") or one that is the subject of a "than" clause ("than the
   reference does").
2. A remaining "the reference (image)" becomes "a high-quality image" ("A high-quality image"
   at a sentence start; "the reference images" becomes "high-quality images").
3. Whitespace and punctuation left behind (" ,", ", .", "( )", double spaces) are tidied.

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

_ADJ = r"(?:(?:original|pristine|clean|undistorted|given)\s+)?"
# The optional noun either is taken or is absent (a lookahead, so the regex cannot backtrack
# to "the reference" + the word "image"): "the reference image: ..." is one phrase.
_NOUN_WORDS = r"(?:image|picture|photo|photograph|version)"
_NOUNS = rf"{_NOUN_WORDS}s?\b"
_REF_NOUN = rf"(?:\s+{_NOUNS}|(?!\s+{_NOUNS}))"
_NOUN = rf"(?:\s+{_NOUN_WORDS}(?P<plural>s)?\b|(?!\s+{_NOUNS}))"
# A removable phrase never ends in a possessive ("the reference's detail"), a compound
# ("reference-based") or the antecedent of a relative clause ("the reference, which is
# sharp"): those keep their phrase, and "the reference" is substituted instead.
_REF_END = r"(?!['\u2019]s\b)(?!-)(?!\s*,?\s*(?:which|who|whose|where)\b)"
_REF = rf"\b(?:the|its|their|this|that)\s+{_ADJ}reference{_REF_NOUN}\b{_REF_END}"
_LEAD = (
    r"(?:(?:when\s+|as\s+)?compared\s+(?:to|with)|in\s+comparison\s+(?:to|with)"
    r"|in\s+contrast\s+(?:to|with)|relative\s+to|with\s+respect\s+to"
    r"|(?:when\s+|as\s+)?(?:checked|measured|judged|set|held|seen|viewed)\s+against"
    r"|versus|vs\b\.?|against)"
)
_TAIL = (
    r"(?:than(?:\s+(?:in|of|on|from|that\s+(?:of|in)|those\s+(?:of|in)))?"
    r"|in|of|on|from|against)"
)
# "than the reference does": the reference is the subject of a clause and stays (substituted).
_CLAUSE_VERB = re.compile(
    r"\s+(?:does|do|did|is|was|are|were|has|had|have|shows|looks|appears|seems|can|would)\b",
    re.IGNORECASE,
)
_DASH = r"(?:[\u2014\u2013]|--?(?=\s))"
_CONJUNCTIONS = r"(?:and|but|or|so|yet|while|whereas)\b"
_CONJUNCTION = re.compile(rf"\s*{_CONJUNCTIONS}", re.IGNORECASE)
# An abbreviation whose full stop does not end a sentence ("Image A (vs. the reference)").
_ABBREVIATION = re.compile(r"(?:^|\W)(?:vs|e\.g|i\.e|cf|approx|resp|incl|esp)\.$", re.IGNORECASE)
_BULLET = re.compile(r"\s*(?:[-*\u2022]|\d+[.)])\s*")

# "(vs. the reference)", "(compared with the reference image)": the whole parenthesis goes.
_PAREN = re.compile(rf"[ \t]*\(\s*(?:{_LEAD}|{_TAIL})\s+{_REF}\s*\)", re.IGNORECASE)
# A phrase that may start a sentence: "Compared to the reference image, the ...",
# "Relative to the reference image: Image A ..." (separator , : ; or a dash).
_SENTENCE_START = re.compile(
    rf"\b(?:{_LEAD}|{_TAIL})\s+{_REF}\s*(?:[,:;]|{_DASH})?\s*(\w)", re.IGNORECASE
)
# The same phrase mid-sentence, with the commas or dashes that fence it:
# ", compared to the reference," / " - relative to the reference - ".
_MID_LEAD = re.compile(
    rf"(?P<open>\s*,|[ \t]+{_DASH})?\s*\b(?:{_LEAD})\s+{_REF}(?P<close>\s*,|[ \t]+{_DASH})?",
    re.IGNORECASE,
)
# "than the reference (image)", "in the reference", "of the reference image", ...
_MID_TAIL = re.compile(
    rf"(?P<open>\s*,)?\s*\b(?P<tail>{_TAIL})\s+{_REF}(?P<close>\s*,)?", re.IGNORECASE
)
_ENDS_WITH_CONJUNCTION = re.compile(rf"\b{_CONJUNCTIONS}$", re.IGNORECASE)
# What is left: "the reference (image)" -> "a high-quality image".
_REMAINING = re.compile(rf"\bthe\s+{_ADJ}reference{_NOUN}(?!-)", re.IGNORECASE)
_WORD = re.compile(r"\breferenc\w*", re.IGNORECASE)


class ReferenceMentionError(ValueError):
    """An answer still mentions a reference after the rewrite (the record must be dropped)."""


def mentions_reference(text: str) -> bool:
    """True when `text` contains a word starting with "referenc" (any case)."""
    return _WORD.search(text) is not None


def _starts_sentence(text: str, pos: int) -> bool:
    """True when `pos` is the first word of a sentence, a line or a list item."""
    before = text[:pos]
    stripped = before.rstrip()
    if not stripped or "\n" in before[len(stripped):]:
        return True
    line = stripped.rsplit("\n", 1)[-1]
    if _BULLET.fullmatch(line):
        return True
    end = stripped.rstrip("\"')\u201d\u2019")
    return bool(end) and end[-1] in ".!?" and not _ABBREVIATION.search(end)


def _start_sub(match: re.Match[str]) -> str:
    # Removed only where it starts a sentence (or was written capitalised, as after a
    # colon); elsewhere the mid-sentence rules below handle it.
    if _starts_sentence(match.string, match.start()) or match.group(0)[0].isupper():
        return match.group(1).upper()
    return match.group(0)


def _mid_lead_sub(match: re.Match[str]) -> str:
    # ", compared to the reference, it is" -> " it is"; "blurry compared to the reference." ->
    # "blurry ." (tidied later): the fencing commas go with the phrase, except that a
    # following conjunction keeps its comma ("blurry, compared with the reference, but ...").
    opened, closed = match.group("open"), match.group("close")
    if (opened and closed and "," in opened and "," in closed
            and _CONJUNCTION.match(match.string, match.end())):
        return ", "
    return " "


def _mid_tail_sub(match: re.Match[str]) -> str:
    # "than the reference does" stays (substituted later). Fencing commas: ", in the
    # reference," goes whole; "but in the reference, the sky" loses its comma; otherwise a
    # comma that separated clauses stays ("darker than the reference, and noisier").
    opened, closed = match.group("open"), match.group("close")
    end = match.end() - len(closed or "")
    if match.group("tail").lower().startswith("than") and _CLAUSE_VERB.match(match.string, end):
        return match.group(0)
    if opened and closed:
        return ", " if _CONJUNCTION.match(match.string, match.end()) else " "
    if closed:
        before = match.string[:match.start()].rstrip()
        return " " if _ENDS_WITH_CONJUNCTION.search(before) else ","
    return "," if opened else ""


def _remaining_sub(match: re.Match[str]) -> str:
    capital = _starts_sentence(match.string, match.start()) or match.group(0)[0].isupper()
    if match.group("plural"):
        return "High-quality images" if capital else "high-quality images"
    return "A high-quality image" if capital else "a high-quality image"


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\([ \t]*\)", "", text)
    text = re.sub(r"\([ \t]+", "(", text)
    text = re.sub(r"[ \t]+\)", ")", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(rf"[ \t]+{_DASH}(?=[.;:!?])", "", text)  # a dash left before a full stop
    text = re.sub(r",[ \t]*([.;:!?])", r"\1", text)
    text = re.sub(r",[ \t]*,", ",", text)
    text = re.sub(r"(^|[.!?]\s+|\n\s*),[ \t]*", r"\1", text)  # a comma left at a sentence start
    text = re.sub(r"[ \t]+", " ", text)
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
    out = _PAREN.sub("", text)
    out = _SENTENCE_START.sub(_start_sub, out)
    out = _MID_LEAD.sub(_mid_lead_sub, out)
    out = _MID_TAIL.sub(_mid_tail_sub, out)
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
