"""Instructions (prompts/instructions/<kind>.<version>.yaml) and request building.

`load_instruction(kind, version)` reads and checks one instruction file;
`build_request(...)` renders it for a sample: the ground truth with grade words (single:
slight .. catastrophic; multi: slight, obvious, serious), the judge's verdict as a hint for
pairs, the word limit (the clean limit when every image is clean), and the images in the
order reference, A, B with their sha256.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distortions.pairs import CATEGORY_PHRASES, grade_word
from pipeline.records import AppliedDistortion, SampleRecord
from pipeline.responders.base import ImageInput, ResponderError, ResponseRequest
from pipeline.store import Store
from prompts import load_yaml, render

__all__ = ["Instruction", "build_request", "describe_distortions", "load_instruction",
           "reask_text"]

_REQUIRED = ("id", "version", "kind", "system", "user", "reask", "word_limit", "max_tokens",
             "temperature")


@dataclass(frozen=True)
class Instruction:
    """One versioned instruction file."""

    id: str
    version: str
    kind: str
    system: str
    user: str
    reask: str
    word_limit: int
    word_limit_clean: int
    max_tokens: int
    temperature: float


@functools.lru_cache(maxsize=32)
def load_instruction(kind: str, version: str = "v1") -> Instruction:
    """The instruction for sample `kind` at `version` (prompts/instructions/<kind>.<version>.yaml).

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: a required field is missing or the file's kind/version disagree.
    """
    rel = f"instructions/{kind}.{version}.yaml"
    data: dict[str, Any] = load_yaml(rel)
    missing = [k for k in _REQUIRED if k not in (data or {})]
    if missing:
        msg = f"prompts/{rel}: missing field(s) {', '.join(missing)}"
        raise ValueError(msg)
    if data["kind"] != kind or str(data["version"]) != version:
        msg = f"prompts/{rel}: declares kind={data['kind']!r} version={data['version']!r}"
        raise ValueError(msg)
    return Instruction(
        id=str(data["id"]), version=str(data["version"]), kind=kind, system=data["system"],
        user=data["user"], reask=data["reask"], word_limit=int(data["word_limit"]),
        word_limit_clean=int(data.get("word_limit_clean", data["word_limit"])),
        max_tokens=int(data["max_tokens"]), temperature=float(data["temperature"]),
    )


def describe_distortions(dists: Sequence[AppliedDistortion], *, multi: bool) -> str:
    """Ground truth in words: "blur at a moderate level", or two joined by ", then "."""
    parts = []
    for d in dists:
        phrase = CATEGORY_PHRASES.get(d.category, d.category.replace("_", " "))
        parts.append(f"{phrase} at {_article(grade_word(d.severity, multi=multi))} level")
    return ", then ".join(parts)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def reask_text(instruction: Instruction, reasons: Sequence[str]) -> str:
    """The note appended to a re-ask, saying why the previous answer was rejected."""
    table: dict[str, str] = load_yaml("instructions/reask_reasons.yaml")
    said = [table.get(r, r.replace("_", " ")) for r in reasons] or ["it did not follow the rules"]
    joined = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    return render(instruction.reask, reasons=joined)


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _image(store: Store, role: str, rel_path: str, sample_id: str) -> ImageInput:
    path = store.abs(rel_path)
    try:
        st = path.stat()
    except OSError as err:
        msg = f"sample {sample_id}: image {role} not readable: {path} ({err.strerror})"
        raise ResponderError(msg, kind="missing_image") from None
    return ImageInput(role=role, path=path,
                      sha256=_file_sha256(str(path), st.st_mtime_ns, st.st_size))


def build_request(
    sample: SampleRecord,
    store: Store,
    instruction: Instruction,
    *,
    reask: int = 0,
    reasons: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
    image_detail: str = "auto",
) -> ResponseRequest:
    """Render the instruction for one sample (attempt `reask`, after rejections `reasons`).

    Raises:
        ResponderError: (kind "missing_image") an image file of the sample is missing.
    """
    pair = sample.image_B is not None
    A = sample.image_A.distortions
    B = sample.image_B.distortions if sample.image_B is not None else []
    better = None
    if pair and sample.judge is not None:
        better = "A" if sample.judge.A_better_B else "B"
    all_clean = not A and (not pair or not B)
    word_limit = instruction.word_limit_clean if all_clean else instruction.word_limit
    user = render(
        instruction.user,
        A_clean=not A, A_desc=describe_distortions(A, multi=len(A) > 1),
        B_clean=not B, B_desc=describe_distortions(B, multi=len(B) > 1),
        better=better, word_limit=word_limit,
    )
    images = [_image(store, "reference", sample.image_ref, sample.sample_id),
              _image(store, "A", sample.image_A.path, sample.sample_id)]
    if sample.image_B is not None:
        images.append(_image(store, "B", sample.image_B.path, sample.sample_id))
    return ResponseRequest(
        sample=sample, prompt_id=instruction.id, prompt_version=instruction.version,
        system=render(instruction.system), user=user, images=tuple(images),
        max_tokens=instruction.max_tokens, temperature=instruction.temperature,
        word_limit=word_limit, reask=reask,
        reask_text=reask_text(instruction, reasons) if reask else "",
        extra=dict(extra or {}), image_detail=image_detail,
    )
