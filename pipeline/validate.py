"""Validation of MLLM detail answers before they enter the dataset.

An answer is rejected (and, within a bounded number of re-asks, asked again) when it:

- `empty`: has no words;
- `refusal`: declines the task ("I'm sorry", "I can't help", "as an AI ...");
- `too_long`: has more words than the kind's limit times (1 + tolerance), 20% by default;
- `mentions_reference`: mentions a reference (word-level: reference, references, ground
  truth, pristine image, ...), which a no-reference task could not know about;
- `missing_distortion`: does not name every distorted category of A (and B) with a word
  from the synonym table `prompts/synonyms.yaml`;
- `no_verdict`: (pairs) does not say explicitly which of Image A and Image B is better;
- `level_mismatch`: (MOS-grounded descriptions, `validate_mos_answer`) does not use the
  level word of the image's human score bin, or uses another level word.

A pair verdict that contradicts the judge is kept and flagged `verdict_contradicts_judge`.
All functions here are pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pipeline.records import AppliedDistortion

__all__ = [
    "REASONS",
    "Validation",
    "category_pattern",
    "mentions_category",
    "parse_verdict",
    "validate_answer",
    "validate_mos_answer",
    "word_count",
]

REASONS: tuple[str, ...] = ("empty", "refusal", "too_long", "mentions_reference",
                            "missing_distortion", "no_verdict", "level_mismatch")
_LEVEL = re.compile(r"\b(excellent|good|fair|poor|bad)\b", re.IGNORECASE)

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*")

_REFUSAL = re.compile(
    r"\b(?:sorry|apologi[sz]e)\b"
    r"|\bI\s*(?:can(?:no|['’])t|can\s+not|am\s+unable|['’]m\s+unable|am\s+not\s+able"
    r"|['’]m\s+not\s+able|won['’]t|will\s+not|do\s+not\s+have\s+the\s+ability)\b"
    r"|\bas\s+an\s+ai\b"
    r"|\bunable\s+to\s+(?:assist|help|comply|view|see|process|analy[sz]e|evaluate)\b",
    re.IGNORECASE,
)

_REFERENCE = re.compile(
    r"\breferen(?:ce|ces|ced)\b|\bground[\s\-]+truth\b"
    r"|\bpristine\s+(?:image|photo|version|picture)s?\b"
    r"|\boriginal\s+(?:image|photo|version|picture)s?\b",
    re.IGNORECASE,
)

# Verdicts: "Image A is better", "Image B has higher quality", "Image A is worse", "I prefer
# Image B", "the better image is Image A". The last verdict in the text wins (conclusions
# come last); a sentence like "Image A is sharper" alone is not a verdict.
_IMG = r"image\s*([AB])\b"
_GAP = r"(?:(?!image\s*[AB]\b)[^.;:!?]){0,60}?"  # never across another image name
_GOOD = (r"(?:better|superior|preferable|preferred|higher[\s\-]+quality|(?:the\s+)?winner"
         r"|more\s+(?:pleasing|appealing|acceptable)|higher\s+(?:overall\s+)?quality"
         r"|(?:much|far|clearly|significantly)\s+better|outperforms|wins)")
_BAD = (r"(?:worse|inferior|lower[\s\-]+quality|poorer|less\s+(?:pleasing|appealing|acceptable)"
        r"|lower\s+(?:overall\s+)?quality|loses)")
_VERB = (r"(?:is|has|was|shows|offers|exhibits|retains|maintains|provides|appears|looks|remains"
         r"|seems|delivers|comes\s+out|stands\s+out|emerges)")
_VERDICT_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = (
    # subject first: "Image A ... is ... better"  -> A good
    (re.compile(_IMG + r"\s*(?:\([^)]*\)\s*)?,?\s*" + _GAP + r"\b" + _VERB + r"\b" + _GAP + _GOOD,
                re.IGNORECASE), True),
    (re.compile(_IMG + r"\s*(?:\([^)]*\)\s*)?,?\s*" + _GAP + r"\b" + _VERB + r"\b" + _GAP + _BAD,
                re.IGNORECASE), False),
    (re.compile(_IMG + r"\s+(?:outperforms|wins|is\s+preferred|is\s+preferable)",
                re.IGNORECASE), True),
    # object last: "the better image is Image A", "I prefer Image B", "verdict: Image A"
    (re.compile(r"\b(?:better|superior|preferred|preferable|higher[\s\-]+quality|winning)"
                r"\s+(?:one|image|choice|option|picture)?\s*(?:overall\s+)?(?:is|would\s+be|:)\s*"
                r"(?:clearly\s+|therefore\s+|thus\s+)?" + _IMG, re.IGNORECASE), True),
    (re.compile(r"\b(?:prefer|choose|pick|favou?r|recommend)\s+" + _IMG, re.IGNORECASE), True),
    (re.compile(r"\bverdict\s*(?:is)?\s*[:\-]?\s*" + _IMG, re.IGNORECASE), True),
    (re.compile(r"\b(?:worse|inferior|lower[\s\-]+quality)\s+(?:one|image|picture)?\s*(?:is|:)\s*"
                + _IMG, re.IGNORECASE), False),
)


@dataclass(frozen=True)
class Validation:
    """Outcome of validating one answer."""

    ok: bool
    reasons: tuple[str, ...] = ()  # rejection reasons (subset of REASONS), empty when ok
    flags: tuple[str, ...] = ()  # kept-but-noted findings, e.g. verdict_contradicts_judge
    verdict: Literal["A", "B"] | None = None
    words: int = 0
    missing: tuple[str, ...] = field(default=())  # categories not named


def word_count(text: str) -> int:
    """Number of words (letters/digits, with inner apostrophes or hyphens)."""
    return len(_WORD.findall(text))


@functools.lru_cache(maxsize=1)
def _synonyms() -> dict[str, dict[str, list[str]]]:
    from prompts import load_yaml

    table = load_yaml("synonyms.yaml")
    if not isinstance(table, dict):
        msg = "prompts/synonyms.yaml must map category -> {phrases, patterns}"
        raise ValueError(msg)
    return table


@functools.lru_cache(maxsize=64)
def category_pattern(category: str) -> re.Pattern[str]:
    """Compiled regex matching any synonym of `category` (from prompts/synonyms.yaml)."""
    table = _synonyms()
    if category not in table:
        msg = f"no synonyms for distortion category {category!r} in prompts/synonyms.yaml"
        raise KeyError(msg)
    entry = table[category]
    alts = []
    for phrase in entry.get("phrases", []):
        words = [re.escape(w) for w in re.split(r"[\s\-]+", str(phrase).strip()) if w]
        alts.append(r"(?<![A-Za-z0-9])" + r"[\s\-]+".join(words) + r"(?![A-Za-z0-9])")
    alts += [f"(?:{p})" for p in entry.get("patterns", [])]
    return re.compile("|".join(alts), re.IGNORECASE)


def mentions_category(text: str, category: str) -> bool:
    """Whether `text` names distortion `category` with a word from the synonym table."""
    return category_pattern(category).search(text) is not None


def parse_verdict(text: str) -> Literal["A", "B"] | None:
    """Which image an answer says is better ("A" / "B"), or None without an explicit verdict."""
    best: tuple[int, str] | None = None
    for pattern, good in _VERDICT_PATTERNS:
        for m in pattern.finditer(text):
            who = m.group(1).upper()
            winner = who if good else ("B" if who == "A" else "A")
            if best is None or m.end() > best[0]:
                best = (m.end(), winner)
    return None if best is None else best[1]  # type: ignore[return-value]


def _categories(dists: Iterable[AppliedDistortion] | None) -> list[str]:
    return [d.category for d in dists or ()]


def validate_answer(
    text: str,
    *,
    word_limit: int,
    A: Sequence[AppliedDistortion],
    B: Sequence[AppliedDistortion] | None = None,
    judge_A_better: bool | None = None,
    tolerance: float = 0.2,
) -> Validation:
    """Check one detail answer against the rules in this module's docstring.

    Args:
        text: the answer.
        word_limit: the kind's word limit (the prompt's limit for this sample).
        A: distortions of image A in the order applied (empty: clean).
        B: distortions of image B for pairs; None for single-image kinds.
        judge_A_better: the judge's verdict for pairs (None: no judge, nothing flagged).
        tolerance: allowed overshoot of the word limit as a fraction (0.2 = 20%).

    Returns:
        A `Validation` with the rejection reasons (empty when ok), flags and the verdict.
    """
    reasons: list[str] = []
    flags: list[str] = []
    words = word_count(text)
    if words == 0:
        return Validation(ok=False, reasons=("empty",))
    if _REFUSAL.search(text):
        reasons.append("refusal")
    if words > word_limit * (1.0 + tolerance):
        reasons.append("too_long")
    if _REFERENCE.search(text):
        reasons.append("mentions_reference")
    wanted = list(dict.fromkeys(_categories(A) + _categories(B)))
    missing = tuple(c for c in wanted if not mentions_category(text, c))
    if missing:
        reasons.append("missing_distortion")
    verdict = None
    if B is not None:
        verdict = parse_verdict(text)
        if verdict is None:
            reasons.append("no_verdict")
        elif judge_A_better is not None and (verdict == "A") != judge_A_better:
            flags.append("verdict_contradicts_judge")
    return Validation(ok=not reasons, reasons=tuple(reasons), flags=tuple(flags),
                      verdict=verdict, words=words, missing=missing)


def validate_mos_answer(text: str, *, level: str, word_limit: int,
                        tolerance: float = 0.2) -> Validation:
    """Check one MOS-grounded description: the rules of `validate_answer` for one clean
    image (empty, refusal, too_long, mentions_reference), plus `level_mismatch` when the
    text does not name `level` (excellent, good, fair, poor, bad: the bin of the human
    score) or names any other of the five level words.
    """
    base = validate_answer(text, word_limit=word_limit, A=(), tolerance=tolerance)
    if base.reasons == ("empty",):
        return base
    found = {m.lower() for m in _LEVEL.findall(text)}
    reasons = list(base.reasons)
    if level.lower() not in found or found - {level.lower()}:
        reasons.append("level_mismatch")
    return Validation(ok=not reasons, reasons=tuple(reasons), flags=base.flags,
                      words=word_count(text))
