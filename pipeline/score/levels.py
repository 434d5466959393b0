"""Standard-guided levels: the versioned scoring prompt and the strict parser of its answers.

The prompt (`prompts/scoring/standard.<version>.yaml`) states the standard of every level
(Dog-IQA's standard-guided scoring) and asks for one integer. The number of levels is a
setting (default 7, levels `1..7`); the prompt file holds standards for 3, 5 and 7 levels,
and a manifest may bring its own list (`scoring.standards`, one sentence per level).

`parse_level(text, low, high)` accepts exactly these answers (surrounding whitespace,
quotes, Markdown emphasis and one trailing full stop are ignored):

- one integer: `"5"`, `"**5**"`, `"5."`;
- one integer after a label word: `"Score: 5"`, `"Level 5"`, `"Rating: 5"`, `"Quality = 5"`
  (the label adds nothing but cannot change the number: accepted);
- one integer out of the scale's top: `"7/7"`, `"5 / 7"`, `"5 out of 7"` (accepted only when
  the denominator is the top level; `"4/5"` on a 7-level scale is another scale: rejected);
- a JSON object `{"level": 5}` (the structured-output form), nothing else in it.

Everything else is rejected with a reason that the re-ask repeats to the model: `empty`,
`refusal` (apologies, "I can't", "as an AI"), `not_an_integer` (`"5.5"`),
`out_of_range` (`"9"`, `"0"`), `wrong_scale` (`"4/5"` with 7 levels), `not_a_single_integer`
(prose, several numbers, ranges such as `"5-6"`). A rejected answer is re-asked (up to the
responder's `max_reasks`) and then fails with the last reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from prompts import load_yaml, render

__all__ = ["LevelParse", "ScoringPrompt", "load_scoring_prompt", "parse_level"]

_STRIP = " \t\r\n\"'`*_"
_INT = r"([+-]?\d+)"
_LABEL = r"(?:score|level|rating|quality|grade|answer)"
_PLAIN = re.compile(rf"^{_INT}$")
_LABELLED = re.compile(rf"^{_LABEL}\s*(?:[:=]|is)?\s*{_INT}$", re.I)
_OUT_OF = re.compile(rf"^(?:{_LABEL}\s*(?:[:=]|is)?\s*)?{_INT}\s*(?:/|out of)\s*{_INT}$", re.I)
_DECIMAL = re.compile(r"^(?:" + _LABEL + r"\s*(?:[:=]|is)?\s*)?[+-]?\d*\.\d+$", re.I)
_REFUSAL = re.compile(
    r"\b(sorry|apologi[sz]e|i can(?:no|')t|i cannot|i am unable|i'm unable|unable to|"
    r"as an ai|i won't|i will not|not able to)\b", re.I)


@dataclass(frozen=True)
class LevelParse:
    """The outcome of parsing one answer: `level` when accepted, else `reason`."""

    level: int | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.level is not None


def _clean(text: str) -> str:
    out = text.strip(_STRIP)
    if out.endswith("."):
        out = out[:-1].strip(_STRIP)
    return out


def _in_range(value: int, low: int, high: int) -> LevelParse:
    if low <= value <= high:
        return LevelParse(value)
    return LevelParse(None, "out_of_range")


def parse_level(text: str, low: int = 1, high: int = 7) -> LevelParse:
    """Parse one scoring answer strictly (rules in the module docstring).

    Args:
        text: the model's answer.
        low: the lowest level (1).
        high: the highest level (the number of levels when `low` is 1).

    Returns:
        LevelParse with the level, or with the reason of the rejection.
    """
    raw = (text or "").strip()
    if raw.startswith("{"):  # structured output: {"level": n} and nothing else
        try:
            obj = json.loads(raw)
        except ValueError:
            return LevelParse(None, "not_a_single_integer")
        value = obj.get("level") if isinstance(obj, dict) and len(obj) == 1 else None
        if isinstance(value, bool) or not isinstance(value, int):
            return LevelParse(None, "not_a_single_integer")
        return _in_range(value, low, high)
    s = _clean(raw)
    if not s:
        return LevelParse(None, "empty")
    m = _PLAIN.match(s) or _LABELLED.match(s)
    if m:
        return _in_range(int(m.group(1)), low, high)
    m = _OUT_OF.match(s)
    if m:
        if int(m.group(2)) != high:
            return LevelParse(None, "wrong_scale")
        return _in_range(int(m.group(1)), low, high)
    if _DECIMAL.match(s):
        return LevelParse(None, "not_an_integer")
    if _REFUSAL.search(s):
        return LevelParse(None, "refusal")
    return LevelParse(None, "not_a_single_integer")


@dataclass(frozen=True)
class ScoringPrompt:
    """A loaded scoring prompt for a given scale (`low`..`high`) and list of standards."""

    prompt_id: str
    version: str
    system: str
    user_global: str
    user_region: str
    reask_template: str
    standards: tuple[str, ...]
    low: int = 1

    @property
    def high(self) -> int:
        return self.low + len(self.standards) - 1

    def user(self, region: bool) -> str:
        template = self.user_region if region else self.user_global
        return render(template, low=self.low, high=self.high, standards=list(self.standards))

    def reask(self, reason: str) -> str:
        reason_text = reason.replace("_", " ")
        return render(self.reask_template, low=self.low, high=self.high, reason=reason_text)


def load_scoring_prompt(version: str = "v1", levels: int = 7,
                        standards: list[str] | None = None) -> ScoringPrompt:
    """The scoring prompt `prompts/scoring/standard.<version>.yaml` for `levels` levels.

    Raises:
        ValueError: `standards` is given with a length other than `levels`, or the prompt
            file has no standards for that number of levels (and none were given).
    """
    data = load_yaml(f"scoring/standard.{version}.yaml")
    if standards is None:
        table = {int(k): v for k, v in data["standards"].items()}
        if levels not in table:
            msg = (f"prompts/scoring/standard.{version}.yaml has no standards for {levels} "
                   f"levels (it has {sorted(table)}); set scoring.standards in the manifest")
            raise ValueError(msg)
        standards = list(table[levels])
    if len(standards) != levels:
        msg = f"scoring.standards: {len(standards)} sentences given for {levels} levels"
        raise ValueError(msg)
    return ScoringPrompt(prompt_id=str(data["id"]), version=str(data["version"]),
                         system=str(data["system"]).strip(), user_global=data["user_global"],
                         user_region=data["user_region"], reask_template=data["reask"],
                         standards=tuple(standards))
