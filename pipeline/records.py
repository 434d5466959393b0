"""Pydantic records passed between stages and written as JSON Lines in the dataset folder.

Every record is frozen and refuses unknown fields, so a typo in a stage fails loudly.
Paths inside records are POSIX paths relative to the dataset root.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KINDS",
    "SPLITS",
    "AppliedDistortion",
    "FailureRecord",
    "ImageInfo",
    "JudgeVerdict",
    "Kind",
    "Record",
    "ReferenceRecord",
    "RejectedDraw",
    "ResponseRecord",
    "SamplePlan",
    "SampleRecord",
    "Usage",
]

Kind = Literal["refA_sd", "refA_md", "refAB_sd", "refAB_md"]
KINDS: tuple[str, ...] = ("refA_sd", "refA_md", "refAB_sd", "refAB_md")
SPLITS: tuple[str, ...] = ("train", "test")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceRecord(Record):
    """A validated, resized reference image (written by ingest to references.jsonl)."""

    ref_id: str  # stable id: file stem, made unique and filesystem-safe
    source: str  # path of the original file relative to the source root
    split: str
    path: str  # references/<ref_id>.png, relative to the dataset root
    sha256: str  # of the written PNG
    width: int
    height: int
    orig_width: int
    orig_height: int
    orig_mode: str
    # What the reference allows (pipeline/effect.py): Hasler-Suesstrunk colourfulness and
    # the grey flag (no colour-only distortion is planned for a grey reference).
    colourfulness: float | None = None
    grey: bool = False


class AppliedDistortion(Record):
    """One distortion as applied (or planned): severity 1..5; category from the registry."""

    name: str
    category: str
    severity: int = Field(ge=1, le=5)


class SamplePlan(Record):
    """What one sample will be: decided before any pixel is touched (plans/<kind>/<split>.jsonl).

    `A` and `B` list the distortions in the order applied; an empty list is a clean image
    (severity 0). `B` is None for refA kinds.
    """

    sample_id: str
    kind: Kind
    split: str
    ref_id: str
    index: int  # per-reference sample index
    seed: int  # derived from (manifest seed, kind, split, ref_id, index)
    A: list[AppliedDistortion]
    B: list[AppliedDistortion] | None = None


class RejectedDraw(Record):
    """A draw the render-time effect check (or the tie rule) rejected, and why."""

    distortions: list[AppliedDistortion]
    reason: str
    notes: list[str] = []  # what the distortion functions reported (e.g. a flat channel)


class ImageInfo(Record):
    """A synthesised (or reused clean) image of a sample.

    `distortions` are the ones actually applied; when the effect check or the tie rule
    rejected the planned draw, `redraws` lists the rejected draws in order (the plan holds
    the first of them).
    """

    path: str
    sha256: str
    distortions: list[AppliedDistortion]
    notes: list[str] = []  # graceful degradations reported by the distortion functions
    redraws: list[RejectedDraw] = []


class JudgeVerdict(Record):
    """Which of A and B is better, and who decided."""

    judge: str  # e.g. "ms_ssim_v1", "predictions:<file name>", "human:kadid10k"
    score_A: float | None = None
    score_B: float | None = None
    A_better_B: bool


class SampleRecord(Record):
    """A synthesised sample (samples/<kind>/<split>.jsonl)."""

    sample_id: str
    kind: Kind
    split: str
    ref_id: str
    seed: int
    width: int
    height: int
    image_ref: str
    image_A: ImageInfo
    image_B: ImageInfo | None = None
    judge: JudgeVerdict | None = None
    # The judge could not separate A and B (pipeline/effect.py TIE_MARGIN) even after
    # redrawing B: no verdict (judge None); left out of the comparison tasks and counted.
    tie: bool = False


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ResponseRecord(Record):
    """One accepted MLLM (or template) answer for a sample."""

    sample_id: str
    # a sample kind, or "mos/<dataset>": an image of a human-labelled source described
    # with its human score (pipeline/respond/mos.py)
    kind: Kind | Annotated[str, Field(pattern=r"^mos/[a-z0-9]+$")]
    split: str
    responder: str  # "template", "openai", "replay"
    model: str
    prompt_id: str
    prompt_version: str
    request_hash: str
    text: str
    usage: Usage = Usage()
    cost_usd: float = 0.0
    attempts: int = 1
    flags: list[str] = []  # e.g. "verdict_contradicts_judge"
    verdict: Literal["A", "B"] | None = None  # pairs: which image the answer says is better


class FailureRecord(Record):
    """A failed item, appended to failures/<stage>.jsonl. Never holds a secret."""

    stage: str
    item_id: str  # sample id, reference source path, ...
    error_type: str
    message: str
    path: str | None = None
    status: int | None = None
    attempts: int = 1
    raw_output: str | None = None
    time: str | None = None
