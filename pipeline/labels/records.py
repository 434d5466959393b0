"""Records of the human-labelled datasets: one image with its human labels, one judged pair.

`LabelledImage` is what every adapter yields for an image of a MOS/DMOS/ELO dataset (one row
of its label file); `HumanPair` is a pair of images whose better member was decided by human
labels (BAPPS 2AFC judgements as published, or two images of one reference / one prompt whose
scores differ by more than a margin). Both are frozen and refuse unknown fields, like the
records of `pipeline.records`. Paths are POSIX paths relative to the dataset's root folder
(the folder a user downloaded), never absolute.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from pipeline.records import JudgeVerdict, Record

__all__ = ["HumanPair", "LabelledImage", "Scale", "normalise"]


class Scale(Record):
    """The native scale of a dataset's main label."""

    min: float
    max: float
    higher_is_better: bool = True

    def contains(self, value: float) -> bool:
        """Whether `value` lies on the scale (bounds included)."""
        return self.min <= value <= self.max


def normalise(value: float, scale: Scale) -> float:
    """`value` mapped linearly from `scale` to [0, 1], 1 = best quality.

    Raises:
        ValueError: `value` is NaN or outside the scale, or the scale is empty.
    """
    if math.isnan(value):
        msg = "value: NaN cannot be normalised"
        raise ValueError(msg)
    if not scale.max > scale.min:
        msg = f"scale: max must exceed min, got [{scale.min}, {scale.max}]"
        raise ValueError(msg)
    if not scale.contains(value):
        msg = f"value {value} outside the native scale [{scale.min}, {scale.max}]"
        raise ValueError(msg)
    x = (value - scale.min) / (scale.max - scale.min)
    return x if scale.higher_is_better else 1.0 - x


class LabelledImage(Record):
    """One image of a human-labelled dataset with every label the dataset publishes for it.

    Attributes:
        dataset: registry name of the adapter (`kadid10k`, ...).
        image_id: unique within the dataset (the file name as published, without folder).
        path: image file relative to the dataset root folder, with the real on-disk case.
        ref_id: reference id for full-reference datasets (`I01`, `A0001`), else None.
        ref_path: reference image relative to the dataset root folder, or None.
        split: the dataset's official split (`train`, `val`, `test`) when it has one; the
            labels stage overwrites it with the split it assigns.
        labels: every numeric label of the row, native values (`mos`, `dmos`, `var`, `sd`,
            `elo`, `mos_align`, `brightness`, ...).
        label: the key of `labels` that `score` is derived from.
        scale: native scale of `label`.
        score: `labels[label]` normalised to [0, 1], 1 = best.
        rule: how `score` was computed, in words (`(dmos - 1) / 4`).
        prompt: the text prompt of an AI-generated image.
        attributes: non-numeric metadata (distortion type and level, style, model, ...).
        label_file: the label file this row came from, relative to the dataset root.
        row: 1-based row (line) number in `label_file`, for provenance.
    """

    dataset: str
    image_id: str
    path: str
    ref_id: str | None = None
    ref_path: str | None = None
    split: str | None = None
    labels: dict[str, float]
    label: str
    scale: Scale
    score: float = Field(ge=0.0, le=1.0)
    rule: str
    prompt: str | None = None
    attributes: dict[str, str] = {}
    label_file: str
    row: int

    @field_validator("labels")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        for key, value in v.items():
            if not math.isfinite(value):
                msg = f"labels.{key}: must be a finite number, got {value}"
                raise ValueError(msg)
        return v

    def group(self, by: str) -> str:
        """The grouping key used for splits and pairs: `ref`, `prompt` or `image`."""
        if by == "ref":
            return self.ref_id or self.image_id
        if by == "prompt":
            return self.prompt if self.prompt is not None else self.image_id
        return self.image_id


class HumanPair(Record):
    """Two images whose better member was decided by human labels.

    Image A and B paths (and the reference's, for full-reference pairs) are relative to the
    dataset root folder. `score_A`/`score_B` are the native labels that decided (for BAPPS the
    fraction of judges preferring A and B), `norm_A`/`norm_B` the normalised ones;
    `difference` = |norm_A - norm_B| and `margin` the threshold it had to exceed.
    """

    dataset: str
    pair_id: str
    split: str
    ref_id: str | None = None
    ref_path: str | None = None
    A_id: str
    B_id: str
    A_path: str
    B_path: str
    label: str  # "human:<dataset>:<label>"
    score_A: float
    score_B: float
    norm_A: float
    norm_B: float
    difference: float
    margin: float
    A_better_B: bool
    prompt: str | None = None
    attributes: dict[str, str] = {}  # e.g. BAPPS category

    def verdict(self) -> JudgeVerdict:
        """The pair's decision as the judge record the synthetic pairs carry."""
        return JudgeVerdict(
            judge=self.label,
            score_A=self.score_A,
            score_B=self.score_B,
            A_better_B=self.A_better_B,
        )
