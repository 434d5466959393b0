"""Assemble the DepictQA task files from sample records, judge verdicts and responses.

Reads (dataset folder, see pipeline/store.py)::

    samples/<kind>/<split>.jsonl                  SampleRecord
    responses/<responder_key>/<kind>/<split>.jsonl ResponseRecord (detail tasks)
    pairs/<source>/<split>.jsonl                   ComparisonPair (human-judged pairs, issue 7)

Writes ``tasks/<task>/<split>.json`` (one JSON list per file, one record per line) and
``tasks/summary.json`` (counts, skips and drops by reason). The fourteen task files of the
ten formats of ../shared/spec/tasks.md:

==================  =======================  =============================================
task                task_type                source
==================  =======================  =============================================
refA_brief_sd/_md   quality_single_A         refA_sd / refA_md samples (ground truth)
A_brief_sd/_md      quality_single_A_noref   the same, severity filter on by default
refA_detail_sd/_md  quality_single_A         responses to refA_sd / refA_md samples
A_detail_sd/_md     quality_single_A_noref   refA_detail converted (pipeline/convert.py)
refAB_brief         quality_compare          refAB_sd + refAB_md samples (judge verdict)
                                             + human-judged pairs from pairs/
AB_brief            quality_compare_noref    the same pairs without the reference
refAB_detail_sd/_md quality_compare          responses to refAB_sd / refAB_md samples
AB_detail_sd/_md    quality_compare_noref    refAB_detail converted
==================  =======================  =============================================

plus the task families from human labels (A_score, A_align, ..., A_score_isp), written by
pipeline/label_tasks.py from labels/<dataset>/ (docs/label-tasks.md).

Every question/answer draw of a record comes from `rng_for(seed, "task/<task>")` of the
sample's seed (a pair without a seed: a stable hash of its id), so a re-run writes
byte-identical files; ids are ``<task>:<sample id>``. Train splits get `conversations`;
other splits get `query` + `answer` with the short answer form and the count hint always.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from distortions.pairs import CATEGORY_PHRASES, IDENTIFICATION_MIN_SEVERITY
from pipeline.convert import ReferenceMentionError, mentions_reference, to_noref
from pipeline.manifest import Manifest
from pipeline.records import AppliedDistortion, ResponseRecord, SampleRecord
from pipeline.schema import split_form, validate_task_record
from pipeline.seeds import rng_for, stable_hash
from pipeline.detail import detail_subset, is_selected
from pipeline.store import (
    JsonListWriter,
    Store,
    atomic_json_list,
    atomic_write_json,
    read_jsonl,
)
from prompts import load_yaml, render

__all__ = [
    "ALL_TASKS",
    "ALL_TASK_NAMES",
    "LABEL_TASKS",
    "LABEL_TASK_NAMES",
    "TASKS",
    "TASK_NAMES",
    "ComparisonPair",
    "QuestionPools",
    "TaskSpec",
    "assemble_tasks",
    "comparison_brief_records",
    "detail_record",
    "detail_records",
    "dump_task_file",
    "ground_truth_phrase",
    "identification_record",
    "iter_task_file",
    "load_pools",
    "noref_detail_record",
    "pair_from_sample",
    "pairs_path",
    "passes_severity_filter",
    "read_task_file",
    "responder_key",
    "short_answer",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """One task file family: its name, format, task type and source sample kinds."""

    name: str
    fmt: str  # one of the ten formats: refA_brief, A_brief, ..., AB_detail
    task_type: str
    kinds: tuple[str, ...]

    @property
    def noref(self) -> bool:
        return self.task_type.endswith("_noref")

    @property
    def detail(self) -> bool:
        return "_detail" in self.fmt

    @property
    def compare(self) -> bool:
        return self.task_type.startswith("quality_compare")


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("refA_brief_sd", "refA_brief", "quality_single_A", ("refA_sd",)),
    TaskSpec("refA_brief_md", "refA_brief", "quality_single_A", ("refA_md",)),
    TaskSpec("A_brief_sd", "A_brief", "quality_single_A_noref", ("refA_sd",)),
    TaskSpec("A_brief_md", "A_brief", "quality_single_A_noref", ("refA_md",)),
    TaskSpec("refA_detail_sd", "refA_detail", "quality_single_A", ("refA_sd",)),
    TaskSpec("refA_detail_md", "refA_detail", "quality_single_A", ("refA_md",)),
    TaskSpec("A_detail_sd", "A_detail", "quality_single_A_noref", ("refA_sd",)),
    TaskSpec("A_detail_md", "A_detail", "quality_single_A_noref", ("refA_md",)),
    TaskSpec("refAB_brief", "refAB_brief", "quality_compare", ("refAB_sd", "refAB_md")),
    TaskSpec("AB_brief", "AB_brief", "quality_compare_noref", ("refAB_sd", "refAB_md")),
    TaskSpec("refAB_detail_sd", "refAB_detail", "quality_compare", ("refAB_sd",)),
    TaskSpec("refAB_detail_md", "refAB_detail", "quality_compare", ("refAB_md",)),
    TaskSpec("AB_detail_sd", "AB_detail", "quality_compare_noref", ("refAB_sd",)),
    TaskSpec("AB_detail_md", "AB_detail", "quality_compare_noref", ("refAB_md",)),
)
# Task families from human labels (pipeline/label_tasks.py, docs/label-tasks.md): no
# sample kinds; written from labels/<dataset>/ by build_label_tasks.
LABEL_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("A_score", "label", "quality_score_A_noref", ()),
    TaskSpec("A_score_prompt", "label", "quality_score_A_prompt_noref", ()),
    TaskSpec("A_align", "label", "quality_align_A_noref", ()),
    TaskSpec("A_auth", "label", "quality_auth_A_noref", ()),
    TaskSpec("AB_score_prompt", "label", "quality_compare_prompt_noref", ()),
    TaskSpec("AB_align", "label", "quality_compare_align_noref", ()),
    TaskSpec("AB_auth", "label", "quality_compare_auth_noref", ()),
    TaskSpec("A_score_isp", "label", "quality_score_isp_noref", ()),
    TaskSpec("A_describe", "label", "quality_describe_A_noref", ()),
)
LABEL_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in LABEL_TASKS)
TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)  # the spec's fourteen
ALL_TASKS: tuple[TaskSpec, ...] = TASKS + LABEL_TASKS
ALL_TASK_NAMES: tuple[str, ...] = TASK_NAMES + LABEL_TASK_NAMES
_BY_NAME = {t.name: t for t in ALL_TASKS}
_MIN_POOL = 20


# --------------------------------------------------------------------------- question pools
@dataclass(frozen=True)
class QuestionPools:
    """The question/answer pools of one version (prompts/questions/*.<version>.yaml)."""

    identify: dict[str, Any]
    compare: dict[str, Any]
    detail: dict[str, Any]
    version: str

    def tag(self, pool: str) -> str:
        return f"questions/{pool}.{self.version}"


def load_pools(version: str = "v1") -> QuestionPools:
    """Load and check the question pools of `version`.

    Raises:
        FileNotFoundError: no pool file of that version.
        ValueError: a brief or detail question pool has fewer than 20 paraphrases, or a
            no-reference pool mentions a reference.
    """
    identify = load_yaml(f"questions/identify.{version}.yaml")
    compare = load_yaml(f"questions/compare.{version}.yaml")
    detail = load_yaml(f"questions/detail.{version}.yaml")
    pools = {
        "identify.ref": identify["ref"], "identify.noref": identify["noref"],
        "compare.ref": compare["ref"], "compare.noref": compare["noref"],
        "detail.refA": detail["refA"], "detail.A": detail["A"],
        "detail.refAB": detail["refAB"], "detail.AB": detail["AB"],
    }
    for key, items in pools.items():
        if len(set(items)) < _MIN_POOL:
            n = len(set(items))
            msg = f"questions {key} ({version}): {n} distinct paraphrases, need {_MIN_POOL}"
            raise ValueError(msg)
    noref_texts = [*identify["noref"], *compare["noref"], *detail["A"], *detail["AB"],
                   *identify["short_tail"], *compare["short_tail"],
                   *identify["count_hint"]["one"], *identify["count_hint"]["two"],
                   *identify["answer_single"], *identify["answer_multi"],
                   *identify["answer_clean"], *compare["answer_sentence"]]
    bad = [t for t in noref_texts if mentions_reference(t)]
    if bad:
        msg = f"questions ({version}): no-reference texts mention a reference: {bad[:3]}"
        raise ValueError(msg)
    return QuestionPools(identify=identify, compare=compare, detail=detail, version=version)


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


# --------------------------------------------------------------------------- ground truth
def _as_distortions(items: Iterable[AppliedDistortion | dict[str, Any]]) -> list[AppliedDistortion]:
    return [d if isinstance(d, AppliedDistortion) else AppliedDistortion.model_validate(d)
            for d in items]


def ground_truth_phrase(distortions: Iterable[AppliedDistortion | dict[str, Any]]) -> str:
    """Category phrase(s) of an image's distortions, in the order applied ("" when clean).

    Two distortions join with " and ": "overly high brightness and noise".
    """
    phrases = [CATEGORY_PHRASES[d.category] for d in _as_distortions(distortions)]
    return " and ".join(phrases)


def short_answer(distortions: Iterable[AppliedDistortion | dict[str, Any]]) -> str:
    """Short-form identification answer: the phrase capitalised, or "None" when clean."""
    phrase = ground_truth_phrase(distortions)
    return phrase[:1].upper() + phrase[1:] if phrase else "None"


def passes_severity_filter(distortions: Iterable[AppliedDistortion | dict[str, Any]]) -> bool:
    """False when any distortion is below the spec's minimum severity for its category."""
    return all(d.severity >= IDENTIFICATION_MIN_SEVERITY.get(d.category, 1)
               for d in _as_distortions(distortions))


def _distortion_dicts(items: list[AppliedDistortion] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [d.model_dump() for d in items]


# --------------------------------------------------------------------------- record builders
def _make_record(*, rid: str, split: str, image_ref: str | None, image_A: str,
                 image_B: str | None, task_type: str, question: str, answer: str,
                 provenance: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": rid, "image_ref": image_ref, "image_A": image_A,
                           "image_B": image_B, "task_type": task_type}
    if split_form(split) == "train":
        rec["conversations"] = [{"from": "human", "value": question},
                                {"from": "gpt", "value": answer}]
    else:
        rec["query"] = question
        rec["answer"] = answer
    rec.update(provenance)
    return rec


def _sample_provenance(sample: SampleRecord) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "kind": sample.kind,
        "split": sample.split,
        "seed": sample.seed,
        "distortions": {
            "A": _distortion_dicts(sample.image_A.distortions),
            "B": _distortion_dicts(sample.image_B.distortions) if sample.image_B else None,
        },
    }


def identification_record(sample: SampleRecord, task: str, pools: QuestionPools, *,
                          sentence_probability: float = 0.5,
                          count_hint_probability: float = 0.5) -> dict[str, Any]:
    """A refA_brief / A_brief record of one refA sample (ground truth, no MLLM).

    Draw order (fixed, every draw made whatever the branch, so changing a probability
    does not shift later draws): question, form, hint, tail, sentence template, hint text.
    """
    spec = _BY_NAME[task]
    rng = rng_for(sample.seed, f"task/{task}")
    pool = pools.identify["noref" if spec.noref else "ref"]
    question = _pick(rng, pool)
    train = split_form(sample.split) == "train"
    u_form, u_hint = float(rng.random()), float(rng.random())
    tail = _pick(rng, pools.identify["short_tail"])
    distortions = sample.image_A.distortions
    n = max(1, len(distortions))
    hint_text = _pick(rng, pools.identify["count_hint"]["two" if n == 2 else "one"])
    if not distortions:
        sentence = _pick(rng, pools.identify["answer_clean"])
    elif len(distortions) == 1:
        sentence = render(_pick(rng, pools.identify["answer_single"]),
                          phrase=ground_truth_phrase(distortions))
    else:
        sentence = render(_pick(rng, pools.identify["answer_multi"]),
                          phrases=ground_truth_phrase(distortions))
    short = (not train) or u_form >= sentence_probability
    # a clean image has no distortion to count: "Name ONE distortion." would contradict
    # the answer "None", so clean samples never get the hint
    hint = bool(distortions) and ((not train) or u_hint < count_hint_probability)
    parts = [question]
    if hint:
        parts.append(hint_text)
    if short:
        parts.append(tail)
    answer = short_answer(distortions) if short else sentence
    prov = _sample_provenance(sample)
    prov.update({"provenance": "ground_truth", "answer_form": "short" if short else "sentence",
                 "count_hint": "TWO" if hint and n == 2 else ("ONE" if hint else None),
                 "question_version": pools.tag("identify")})
    return _make_record(rid=f"{task}:{sample.sample_id}", split=sample.split,
                        image_ref=None if spec.noref else sample.image_ref,
                        image_A=sample.image_A.path, image_B=None,
                        task_type=spec.task_type, question=" ".join(parts), answer=answer,
                        provenance=prov)


class ComparisonPair(BaseModel):
    """A pair with a verdict, the input of the brief comparison tasks.

    Synthetic refAB samples become one through `pair_from_sample`; human-judged pairs
    (BAPPS, PIPAL, KADID-10k, ...) are written as JSON Lines to pairs/<source>/<split>.jsonl
    and joined into refAB_brief / AB_brief by `assemble_tasks`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pair_id: str  # unique within the dataset; record ids are <task>:<pair_id>
    split: str
    image_ref: str | None  # None: only the AB_brief record is made
    image_A: str
    image_B: str
    A_better_B: bool
    provenance: str = "judge"  # "judge" (synthetic) or "human"
    judge: str  # judge name, or the human label ("human:kadid10k")
    score_A: float | None = None
    score_B: float | None = None
    seed: int | None = None  # None: derived from pair_id
    source: str = "synthetic"
    extra: dict[str, Any] = {}


def pair_from_sample(sample: SampleRecord) -> ComparisonPair:
    """The comparison pair of a judged refAB sample.

    Raises:
        ValueError: the sample has no image B or no judge verdict.
    """
    if sample.image_B is None or sample.judge is None:
        msg = f"{sample.sample_id}: a comparison needs image B and a judge verdict"
        raise ValueError(msg)
    return ComparisonPair(
        pair_id=sample.sample_id, split=sample.split, image_ref=sample.image_ref,
        image_A=sample.image_A.path, image_B=sample.image_B.path,
        A_better_B=sample.judge.A_better_B, provenance="judge", judge=sample.judge.judge,
        score_A=sample.judge.score_A, score_B=sample.judge.score_B, seed=sample.seed,
        extra={"kind": sample.kind,
               "distortions": {"A": _distortion_dicts(sample.image_A.distortions),
                               "B": _distortion_dicts(sample.image_B.distortions)}},
    )


def comparison_brief_records(pair: ComparisonPair, pools: QuestionPools, *,
                             sentence_probability: float = 0.5) -> dict[str, dict[str, Any]]:
    """refAB_brief and AB_brief records of one pair with a verdict.

    Returns:
        {"refAB_brief": record, "AB_brief": record}; without a reference image only
        "AB_brief".
    """
    seed = pair.seed if pair.seed is not None else int(stable_hash("pair", pair.pair_id)[:15], 16)
    better, other = ("Image A", "Image B") if pair.A_better_B else ("Image B", "Image A")
    train = split_form(pair.split) == "train"
    out: dict[str, dict[str, Any]] = {}
    for task in ("refAB_brief", "AB_brief"):
        spec = _BY_NAME[task]
        if not spec.noref and pair.image_ref is None:
            continue
        rng = rng_for(seed, f"task/{task}")
        question = _pick(rng, pools.compare["noref" if spec.noref else "ref"])
        u_form = float(rng.random())
        tail = _pick(rng, pools.compare["short_tail"])
        sentence = render(_pick(rng, pools.compare["answer_sentence"]), image=better, other=other)
        short = (not train) or u_form >= sentence_probability
        prov: dict[str, Any] = {"sample_id": pair.pair_id, "split": pair.split, "seed": seed}
        prov.update(pair.extra)
        prov.update({"provenance": pair.provenance, "judge": pair.judge,
                     "A_better_B": pair.A_better_B, "score_A": pair.score_A,
                     "score_B": pair.score_B, "source": pair.source,
                     "answer_form": "short" if short else "sentence",
                     "question_version": pools.tag("compare")})
        out[task] = _make_record(
            rid=f"{task}:{pair.pair_id}", split=pair.split,
            image_ref=None if spec.noref else pair.image_ref, image_A=pair.image_A,
            image_B=pair.image_B, task_type=spec.task_type,
            question=f"{question} {tail}" if short else question,
            answer=better if short else sentence, provenance=prov)
    return out


def _detail_tasks(kind: str) -> tuple[str, str]:
    pair = kind.startswith("refAB")
    suffix = kind.rsplit("_", 1)[1]
    prefix = "refAB" if pair else "refA"
    return f"{prefix}_detail_{suffix}", f"{prefix[3:]}_detail_{suffix}"


def detail_record(sample: SampleRecord, response: ResponseRecord, pools: QuestionPools,
                  ) -> dict[str, Any]:
    """The full-reference detail record (refA_detail / refAB_detail) of one response."""
    ref_task, _ = _detail_tasks(sample.kind)
    pair = sample.kind.startswith("refAB")
    question = _pick(rng_for(sample.seed, f"task/{ref_task}"),
                     pools.detail["refAB" if pair else "refA"])
    prov = _sample_provenance(sample)
    if sample.judge is not None:
        prov.update({"judge": sample.judge.judge, "A_better_B": sample.judge.A_better_B})
    prov.update({"provenance": "responder", "responder": response.responder,
                 "model": response.model, "prompt_id": response.prompt_id,
                 "prompt_version": response.prompt_version,
                 "response_verdict": response.verdict, "flags": list(response.flags),
                 "question_version": pools.tag("detail")})
    return _make_record(rid=f"{ref_task}:{sample.sample_id}", split=sample.split,
                        image_ref=sample.image_ref, image_A=sample.image_A.path,
                        image_B=sample.image_B.path if sample.image_B else None,
                        task_type=_BY_NAME[ref_task].task_type, question=question,
                        answer=response.text.strip(), provenance=prov)


def noref_detail_record(record: dict[str, Any], sample: SampleRecord, pools: QuestionPools,
                        ) -> dict[str, Any]:
    """The no-reference twin (A_detail / AB_detail) of a full-reference detail record.

    The question is drawn from the no-reference pool; the answer goes through
    pipeline.convert.rewrite_noref.

    Raises:
        ReferenceMentionError: the rewritten answer still mentions a reference (the caller
            keeps the full-reference record, drops this one and counts it).
    """
    _, noref_task = _detail_tasks(sample.kind)
    pair = sample.kind.startswith("refAB")
    question = _pick(rng_for(sample.seed, f"task/{noref_task}"),
                     pools.detail["AB" if pair else "A"])
    return to_noref(record, task=noref_task, question=question)


def detail_records(sample: SampleRecord, response: ResponseRecord, pools: QuestionPools,
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full-reference detail record of one response and its no-reference twin.

    Raises:
        ReferenceMentionError: as `noref_detail_record`.
    """
    rec = detail_record(sample, response, pools)
    return rec, noref_detail_record(rec, sample, pools)


# --------------------------------------------------------------------------- files
def dump_task_file(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write one DepictQA task file atomically: a JSON list, one record per line (streamed:
    `records` may be a generator)."""
    with atomic_json_list(path) as w:
        for r in records:
            w.add(r)


def read_task_file(path: Path) -> list[dict[str, Any]]:
    """Records of a task file (a JSON list)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        msg = f"{path}: a task file must hold a JSON list, got {type(data).__name__}"
        raise ValueError(msg)
    return data


def iter_task_file(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a task file one at a time, without holding the file: the layout
    `dump_task_file` writes (``[``, one record per line, ``]``) is read line by line; any
    other JSON list is read whole (`read_task_file`)."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if first.strip() == "[]" and not f.read().strip():
            return
        if first != "[\n":
            yield from read_task_file(path)
            return
        for line in f:
            line = line.rstrip("\n")
            if line == "]":
                return
            yield json.loads(line.removesuffix(","))


def pairs_path(store: Store, source: str, split: str) -> Path:
    """Where human-judged pairs of one source and split live: pairs/<source>/<split>.jsonl."""
    return store.root / "pairs" / source / f"{split}.jsonl"


def responder_key(manifest: Manifest, store: Store | None = None) -> str:
    """The responses/<key>/ folder that feeds the detail tasks.

    `tasks.responder_key` when set; else the key the respond stage writes for the
    manifest's responder ("template", "replay", "openai--<model>"). `store` is accepted for
    callers that want to check the folder; the key never depends on what is on disk.
    """
    del store
    if manifest.tasks.responder_key:
        return manifest.tasks.responder_key
    from pipeline.responders.base import responder_key as _key

    kind, model = manifest.responder.kind, manifest.responder.model
    if kind == "openai" and not model:
        import os

        from pipeline.responders.openai import MODEL_ENV

        model = os.environ.get(MODEL_ENV, "").strip()
        if not model:  # no silent default: say which answers to use
            msg = ("responder.kind is openai but no model name is given: set responder.model "
                   f"in the manifest, pass --model, set {MODEL_ENV}, or choose the answers "
                   "with tasks.responder_key / --responder-key")
            raise ValueError(msg)
    return _key(kind, model)


class _ResponseIndex:
    """The latest response of each sample of a responses file, by file offset: the
    records stay on disk and are read when asked for, through one open file (a context
    manager: the assemble stage closes it with the split's task files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets: dict[str, int] = {}
        self._file: Any = None
        if not path.exists():
            return
        self._file = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        offset = 0
        for line in self._file:
            start, offset = offset, offset + len(line)
            try:
                sid = json.loads(line)["sample_id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line (read_jsonl skips it too)
            self._offsets[sid] = start  # a later line (re-ask, retry) wins

    def __enter__(self) -> _ResponseIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def get(self, sample_id: str) -> ResponseRecord | None:
        start = self._offsets.get(sample_id)
        if start is None:
            return None
        self._file.seek(start)
        return ResponseRecord.model_validate_json(self._file.readline())


def _samples(store: Store, kind: str, split: str) -> Iterator[SampleRecord]:
    yield from read_jsonl(store.samples_path(kind, split), SampleRecord)


def _pair_sources(manifest: Manifest, store: Store, wanted: list[str] | None) -> list[str]:
    """The pairs/<source>/ folders that feed the brief comparison tasks.

    Default: the manifest's own `sources`, so a dataset dropped from the manifest stops
    contributing even though its folder is still in the dataset.
    """
    root = store.root / "pairs"
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if wanted is None:
        wanted = [src.dataset for src in manifest.sources]
    return [s for s in present if s in wanted]


def _images_exist(store: Store, rec: dict[str, Any]) -> bool:
    return all(store.abs(p).is_file()
               for p in (rec["image_ref"], rec["image_A"], rec["image_B"]) if p is not None)


def assemble_tasks(manifest: Manifest, store: Store, *, kinds: list[str] | None = None,
                   splits: list[str] | None = None, tasks: list[str] | None = None,
                   validate: bool = True) -> dict[str, Any]:
    """Write tasks/<task>/<split>.json for the requested kinds and splits (idempotent).

    A task file is written when at least one of its source kinds is requested (for the
    brief comparison tasks: or when human-judged pairs exist for that split); a file with
    nothing in it is an empty list. Re-running rewrites the same bytes.

    Args:
        manifest: the build manifest (tasks settings, responder, kinds and splits).
        store: the dataset folder.
        kinds: sample kinds to read (default: the manifest's).
        splits: splits to write (default: the manifest's, plus splits of pair files).
        tasks: restrict to these task names (default: all, label tasks included).
        validate: check every record against pipeline.schema before writing.

    Returns:
        Summary: {"tasks": {task: {split: n}}, "skipped": {reason: n},
        "dropped": {reason: n}, "filtered": {task: n}, "responder_key": key}.

    Raises:
        ValueError: an unknown task name.
    """
    cfg = manifest.tasks
    pools = load_pools(cfg.questions_version)
    kinds = list(kinds) if kinds is not None else manifest.kinds()
    wanted_tasks = list(tasks) if tasks is not None else list(ALL_TASK_NAMES)
    unknown = [t for t in wanted_tasks if t not in _BY_NAME]
    if unknown:
        msg = f"unknown task(s) {unknown}; known: {', '.join(ALL_TASK_NAMES)}"
        raise ValueError(msg)
    pair_sources = _pair_sources(manifest, store, cfg.pair_sources)
    requested_splits = list(splits) if splits is not None else None
    if splits is None:
        splits = list(manifest.splits())
        for source in pair_sources:
            for f in sorted((store.root / "pairs" / source).glob("*.jsonl")):
                if f.stem not in splits:
                    splits.append(f.stem)
    key = responder_key(manifest, store)
    counts: dict[str, dict[str, int]] = {}
    skipped: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    filtered: Counter[str] = Counter()

    for split in splits:
        names = [t for t in wanted_tasks
                 if any(k in kinds for k in _BY_NAME[t].kinds)
                 or (_BY_NAME[t].fmt in ("refAB_brief", "AB_brief") and pair_sources)]
        # Each task file is streamed to disk as its records are made (memory flat in the
        # split's size); an error leaves the previous files in place (atomic writers).
        with ExitStack() as stack:
            out: dict[str, _TaskSink] = {
                t: _TaskSink(t, split, stack.enter_context(
                    atomic_json_list(store.task_path(t, split))), validate)
                for t in names}
            for kind in kinds:
                if not store.samples_path(kind, split).exists():
                    continue
                subset = detail_subset(manifest, kind, split,
                                       (s.sample_id for s in _samples(store, kind, split)))
                responses = stack.enter_context(
                    _ResponseIndex(store.responses_path(key, kind, split)))
                for sample in _samples(store, kind, split):
                    _add_sample(sample, responses.get(sample.sample_id), pools, cfg, out,
                                skipped, dropped, filtered, store,
                                detail=is_selected(subset, sample.sample_id))
            for source in pair_sources:
                for pair in read_jsonl(pairs_path(store, source, split), ComparisonPair):
                    for task, rec in comparison_brief_records(
                            pair, pools, sentence_probability=cfg.sentence_probability).items():
                        if task not in out:
                            continue
                        if not _images_exist(store, rec):
                            skipped["missing_image"] += 1
                            continue
                        out[task].append(rec)
        for task, sink in out.items():
            counts.setdefault(task, {})[split] = sink.count

    label_tasks = [t for t in wanted_tasks if t in LABEL_TASK_NAMES]
    folds: dict[str, dict[str, int]] = {}
    if label_tasks and manifest.sources:
        from pipeline.label_tasks import build_label_tasks

        labelled = build_label_tasks(manifest, store, tasks=label_tasks,
                                     splits=requested_splits, validate=validate)
        counts.update(labelled["tasks"])
        folds = labelled["folds"]
        skipped.update({f"labels:{k}": n for k, n in labelled["skipped"].items()})
    summary = {"tasks": counts, "skipped": dict(skipped), "dropped": dict(dropped),
               "filtered": dict(filtered), "responder_key": key,
               "questions_version": cfg.questions_version,
               "severity_filter_noref": cfg.severity_filter_noref,
               "pair_sources": pair_sources, "folds": folds}
    previous = _read_summary(store)
    merged = _merge_summary(previous, summary)
    atomic_write_json(store.root / "tasks" / "summary.json", merged)
    log.info("assembled %d task files", sum(len(v) for v in counts.values()))
    return summary


class _TaskSink:
    """One task file being written: validates each record, refuses a duplicate id (kept
    as 8-byte digests, not strings) and streams the record to the file."""

    def __init__(self, task: str, split: str, writer: JsonListWriter, validate: bool) -> None:
        self.task, self.split, self.writer, self.validate = task, split, writer, validate
        self._ids: set[bytes] = set()

    @property
    def count(self) -> int:
        return self.writer.count

    def append(self, rec: dict[str, Any]) -> None:
        if self.validate:
            validate_task_record(rec, self.split)
        digest = hashlib.blake2b(rec["id"].encode(), digest_size=8).digest()
        if digest in self._ids:
            msg = f"{self.task}/{self.split}: duplicate record id {rec['id']!r}"
            raise ValueError(msg)
        self._ids.add(digest)
        self.writer.add(rec)


def _add_sample(sample: SampleRecord, response: ResponseRecord | None, pools: QuestionPools,
                cfg: Any, out: dict[str, Any], skipped: Counter[str],
                dropped: Counter[str], filtered: Counter[str], store: Store, *,
                detail: bool = True) -> None:
    suffix = sample.kind.rsplit("_", 1)[1]
    images = [sample.image_ref, sample.image_A.path,
              *([sample.image_B.path] if sample.image_B else [])]
    if not all(store.abs(p).is_file() for p in images):
        skipped["missing_image"] += 1
        log.warning("%s: an image file is missing; sample skipped", sample.sample_id)
        return
    if sample.kind.startswith("refA_"):
        for task in (f"refA_brief_{suffix}", f"A_brief_{suffix}"):
            if task not in out:
                continue
            if (task.startswith("A_") and cfg.severity_filter_noref
                    and not passes_severity_filter(sample.image_A.distortions)):
                filtered[task] += 1
                continue
            out[task].append(identification_record(
                sample, task, pools, sentence_probability=cfg.sentence_probability,
                count_hint_probability=cfg.count_hint_probability))
    elif sample.tie:  # the judge could not separate A and B: no comparison task at all
        skipped["tie"] += 1
        return
    else:
        if sample.judge is None or sample.image_B is None:
            skipped["no_judge_verdict"] += 1
        else:
            for task, rec in comparison_brief_records(
                    pair_from_sample(sample), pools,
                    sentence_probability=cfg.sentence_probability).items():
                if task in out:
                    out[task].append(rec)
    ref_task, noref_task = _detail_tasks(sample.kind)
    if not detail or (ref_task not in out and noref_task not in out):
        return  # not among the manifest's detail_counts samples (pipeline/detail.py)
    if response is None:
        skipped[f"no_response:{sample.kind}"] += 1
        return
    rec = detail_record(sample, response, pools)
    if ref_task in out:
        out[ref_task].append(rec)
    if noref_task in out:
        try:
            out[noref_task].append(noref_detail_record(rec, sample, pools))
        except ReferenceMentionError:
            dropped[f"mentions_reference:{noref_task}"] += 1


def _read_summary(store: Store) -> dict[str, Any]:
    path = store.root / "tasks" / "summary.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def _merge_summary(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    # A partial re-run (one kind or split) updates its files' counts and keeps the others';
    # skip/drop counters describe the latest run.
    tasks = {t: dict(v) for t, v in old.get("tasks", {}).items()}
    for t, per_split in new["tasks"].items():
        tasks.setdefault(t, {}).update(per_split)
    merged = dict(new)
    merged["tasks"] = {t: tasks[t] for t in ALL_TASK_NAMES if t in tasks}
    return merged
