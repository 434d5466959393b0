"""Schemas of the written task records and exports, from ../shared/spec/tasks.md.

`TrainRecord` / `TestRecord`: the DepictQA JSON record (also the JSON Lines and Parquet
rows). Train: `id`, `image_ref`, `image_A`, `image_B`, `task_type`, `conversations` (one
human turn, then one gpt turn). Test: the same with `query` and `answer` in place of
`conversations`. Extra keys are allowed (provenance). The task type fixes which images are
present: `_noref` types have no reference; `quality_compare*` types have image B, single
types do not. Image paths are relative POSIX paths inside the dataset root.

`LlavaRecord` and `ShareGPTRecord` are the two conversation exports; their `<image>`
placeholders in the user turn must match the image list one to one.

Which form a split uses: `train` is the train form; every other split (test, val, ...) the
test form (`split_form`).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "IMAGE_TOKEN",
    "TASK_TYPES",
    "LlavaRecord",
    "ShareGPTRecord",
    "TaskType",
    "TestRecord",
    "TrainRecord",
    "Turn",
    "split_form",
    "validate_task_record",
]

# The first four are the spec's; the others are the label task families of
# pipeline/label_tasks.py (docs/label-tasks.md). Every type contains "quality" (DepictQA's
# TrainDataset reads image_ref/image_A/image_B only for such types) and follows the same
# image rules: `_noref` -> no reference, `quality_compare*` -> image B.
TaskType = Literal[
    "quality_single_A", "quality_single_A_noref", "quality_compare", "quality_compare_noref",
    "quality_score_A_noref", "quality_score_A_prompt_noref", "quality_align_A_noref",
    "quality_auth_A_noref", "quality_compare_prompt_noref", "quality_compare_align_noref",
    "quality_compare_auth_noref", "quality_score_isp_noref", "quality_describe_A_noref",
]
TASK_TYPES: tuple[str, ...] = (
    "quality_single_A", "quality_single_A_noref", "quality_compare", "quality_compare_noref",
    "quality_score_A_noref", "quality_score_A_prompt_noref", "quality_align_A_noref",
    "quality_auth_A_noref", "quality_compare_prompt_noref", "quality_compare_align_noref",
    "quality_compare_auth_noref", "quality_score_isp_noref", "quality_describe_A_noref",
)
IMAGE_TOKEN = "<image>"


def split_form(split: str) -> Literal["train", "test"]:
    """Record form of a split: `train` -> conversations; anything else -> query/answer.

    A fold's split (`fold3/train`, docs/label-tasks.md) has the form of its last part.
    """
    return "train" if split.rsplit("/", 1)[-1] == "train" else "test"


def _check_rel_path(path: str | None, field: str) -> str | None:
    if path is None:
        return None
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        msg = f"{field}: {path!r} must be a relative POSIX path inside the dataset root"
        raise ValueError(msg)
    return path


class Turn(BaseModel):
    """One turn of a DepictQA / LLaVA conversation."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_: Literal["human", "gpt"] = Field(alias="from")
    value: str = Field(min_length=1)


class _TaskRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    image_ref: str | None
    image_A: str
    image_B: str | None
    task_type: TaskType

    @field_validator("image_ref", "image_A", "image_B")
    @classmethod
    def _relative(cls, v: str | None, info: Any) -> str | None:
        return _check_rel_path(v, info.field_name)

    @model_validator(mode="after")
    def _images_match_task_type(self) -> _TaskRecord:
        noref = self.task_type.endswith("_noref")
        if noref and self.image_ref is not None:
            msg = f"{self.id}: {self.task_type} must have image_ref null"
            raise ValueError(msg)
        if not noref and self.image_ref is None:
            msg = f"{self.id}: {self.task_type} needs image_ref"
            raise ValueError(msg)
        compare = self.task_type.startswith("quality_compare")
        if compare and self.image_B is None:
            msg = f"{self.id}: {self.task_type} needs image_B"
            raise ValueError(msg)
        if not compare and self.image_B is not None:
            msg = f"{self.id}: {self.task_type} must have image_B null"
            raise ValueError(msg)
        return self

    def image_paths(self) -> list[str]:
        """The record's images in the order the model sees them: reference, A, B."""
        return [p for p in (self.image_ref, self.image_A, self.image_B) if p is not None]


class TrainRecord(_TaskRecord):
    """Train-split record: `conversations` = [human question, gpt answer]."""

    conversations: list[Turn] = Field(min_length=2, max_length=2)

    @model_validator(mode="after")
    def _turns(self) -> TrainRecord:
        if [t.from_ for t in self.conversations] != ["human", "gpt"]:
            msg = f"{self.id}: conversations must be one human turn then one gpt turn"
            raise ValueError(msg)
        extra = self.model_extra or {}
        if "query" in extra or "answer" in extra:
            msg = f"{self.id}: a train record has conversations, not query/answer"
            raise ValueError(msg)
        return self

    @property
    def question(self) -> str:
        return self.conversations[0].value

    @property
    def answer_text(self) -> str:
        return self.conversations[1].value


class TestRecord(_TaskRecord):
    """Test-split record: `query` and `answer` in place of conversations."""

    __test__ = False  # not a pytest test class

    query: str = Field(min_length=1)
    answer: str = Field(min_length=1)

    @model_validator(mode="after")
    def _no_conversations(self) -> TestRecord:
        if "conversations" in (self.model_extra or {}):
            msg = f"{self.id}: a test record has query/answer, not conversations"
            raise ValueError(msg)
        return self

    @property
    def question(self) -> str:
        return self.query

    @property
    def answer_text(self) -> str:
        return self.answer


def validate_task_record(obj: dict[str, Any], split: str) -> TrainRecord | TestRecord:
    """Validate one DepictQA record of `split` (train form for `train`, test form otherwise).

    Raises:
        pydantic.ValidationError: the record does not follow the spec.
    """
    if split_form(split) == "train":
        return TrainRecord.model_validate(obj)
    return TestRecord.model_validate(obj)


class LlavaRecord(BaseModel):
    """LLaVA-OneVision record: `image` list, one `<image>` per image in the human turn."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    image: list[str] = Field(min_length=1, max_length=16)  # A_score_isp: K + 1
    conversations: list[Turn] = Field(min_length=2)

    @field_validator("image")
    @classmethod
    def _relative(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_rel_path(p, "image")
        return v

    @model_validator(mode="after")
    def _placeholders(self) -> LlavaRecord:
        human = [t for t in self.conversations if t.from_ == "human"]
        gpt = [t for t in self.conversations if t.from_ == "gpt"]
        if not human or not gpt:
            msg = f"{self.id}: needs a human and a gpt turn"
            raise ValueError(msg)
        n = sum(t.value.count(IMAGE_TOKEN) for t in human)
        if n != len(self.image):
            msg = f"{self.id}: {n} {IMAGE_TOKEN} placeholders for {len(self.image)} images"
            raise ValueError(msg)
        if any(IMAGE_TOKEN in t.value for t in gpt):
            msg = f"{self.id}: {IMAGE_TOKEN} in a gpt turn"
            raise ValueError(msg)
        return self


class ShareGPTMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant", "system"]
    content: str = Field(min_length=1)


class ShareGPTRecord(BaseModel):
    """ShareGPT record as LLaMA-Factory reads it: `messages` + `images`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    messages: list[ShareGPTMessage] = Field(min_length=2)
    images: list[str] = Field(min_length=1, max_length=16)

    @field_validator("images")
    @classmethod
    def _relative(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_rel_path(p, "images")
        return v

    @model_validator(mode="after")
    def _placeholders(self) -> ShareGPTRecord:
        roles = [m.role for m in self.messages if m.role != "system"]
        if roles[:2] != ["user", "assistant"]:
            msg = "messages must start with a user turn then an assistant turn"
            raise ValueError(msg)
        n = sum(m.content.count(IMAGE_TOKEN) for m in self.messages if m.role == "user")
        if n != len(self.images):
            msg = f"{n} {IMAGE_TOKEN} placeholders for {len(self.images)} images"
            raise ValueError(msg)
        if any(IMAGE_TOKEN in m.content for m in self.messages if m.role != "user"):
            msg = f"{IMAGE_TOKEN} outside a user turn"
            raise ValueError(msg)
        return self
