"""Task families from human labels: scoring, AIGC quality/alignment/authenticity, k-fold
sets and in-context scoring records (docs/label-tasks.md).

Reads what the labels stage wrote (pipeline/labels/build.py)::

    labels/<dataset>/images.jsonl   LabelledImage with its split (repeat 0)
    labels/<dataset>/splits.json    every repeat's image ids (the folds)

and writes ``tasks/<task>/<split>.json`` (and, with `tasks.labels.folds: K`,
``tasks/<task>/fold<k>/{train,test}.json``) in the DepictQA record layout:

================  ============================  ==================================================
task              task_type                     from
================  ============================  ==================================================
A_score           quality_score_A_noref         every MOS source: level word of the score
A_score_prompt    quality_score_A_prompt_noref  AIGC sources: quality level, prompt in question
A_align           quality_align_A_noref         AGIQA-3k mos_align, AIGCIQA2023 correspondence
A_auth            quality_auth_A_noref          AIGCIQA2023 authenticity
AB_score_prompt   quality_compare_prompt_noref  pairs of one prompt by quality (margin rule)
AB_align          quality_compare_align_noref   pairs of one prompt by alignment
AB_auth           quality_compare_auth_noref    pairs of one prompt by authenticity
A_score_isp       quality_score_isp_noref       K scored examples of the split, then the target
A_describe        quality_describe_A_noref      MOS-grounded descriptions (pipeline/respond/mos.py)
================  ============================  ==================================================

Level words: five equal bins of the normalised [0, 1] score (`LEVEL_RULE`), lower edge
inclusive, 1.0 in the top bin. Every draw of a record (question, form, ISP examples and
augmentations) comes from `rng_for(derive_seed(seed, "label_task", dataset, image id, 0),
"task/<task>")`, so re-runs write the same bytes; a fold's records differ from repeat 0's
only in their split.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.assemble import dump_task_file
from pipeline.labels import get_adapter
from pipeline.labels.build import labels_dir, resolve_cap
from pipeline.labels.pairs import pairs_from_images
from pipeline.labels.records import HumanPair, LabelledImage, normalise
from pipeline.manifest import LabelSourceConfig, Manifest
from pipeline.records import ResponseRecord
from pipeline.schema import split_form, validate_task_record
from pipeline.seeds import derive_seed, rng_for
from pipeline.store import Store, read_jsonl
from prompts import load_yaml, render

__all__ = [
    "AIGC_TARGETS",
    "LABEL_TASK_TYPES",
    "LEVELS",
    "LEVEL_RULE",
    "Target",
    "build_label_tasks",
    "describe_record",
    "isp_record",
    "level_word",
    "load_score_pools",
    "pair_record",
    "quote_prompt",
    "single_record",
]

log = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = ("bad", "poor", "fair", "good", "excellent")
LEVEL_RULE = ("level = (bad, poor, fair, good, excellent)[min(4, floor(5 * s))] of the "
              "normalised score s in [0, 1]: [0, 0.2) bad, [0.2, 0.4) poor, [0.4, 0.6) fair, "
              "[0.6, 0.8) good, [0.8, 1] excellent")
LABEL_TASK_TYPES: dict[str, str] = {
    "A_score": "quality_score_A_noref",
    "A_score_prompt": "quality_score_A_prompt_noref",
    "A_align": "quality_align_A_noref",
    "A_auth": "quality_auth_A_noref",
    "AB_score_prompt": "quality_compare_prompt_noref",
    "AB_align": "quality_compare_align_noref",
    "AB_auth": "quality_compare_auth_noref",
    "A_score_isp": "quality_score_isp_noref",
    "A_describe": "quality_describe_A_noref",
}
_MIN_POOL = 20
# Single-image task -> (target, question pool, sentence pool); pair task -> (target, pool).
_SINGLE = {"A_score": ("quality", "score", "answer_score"),
           "A_score_prompt": ("quality", "score_prompt", "answer_score"),
           "A_align": ("align", "align", "answer_align"),
           "A_auth": ("auth", "auth", "answer_auth")}
_PAIR = {"AB_score_prompt": ("quality", "compare_score_prompt"),
         "AB_align": ("align", "compare_align"), "AB_auth": ("auth", "compare_auth")}


@dataclass(frozen=True)
class Target:
    """One human label of an AI-generated image used as a task target."""

    name: str  # quality, align, auth
    label: str  # key of LabelledImage.labels
    std: str | None  # key of its standard deviation, if published


AIGC_TARGETS: dict[str, tuple[Target, ...]] = {
    "agiqa1k": (Target("quality", "mos", None),),
    "agiqa3k": (Target("quality", "mos_quality", "std_quality"),
                Target("align", "mos_align", "std_align")),
    "aigciqa2023": (Target("quality", "quality_mos", "quality_std"),
                    Target("auth", "authenticity_mos", "authenticity_std"),
                    Target("align", "correspondence_mos", "correspondence_std")),
}


# --------------------------------------------------------------------------- helpers
def level_word(score: float) -> str:
    """The level word of a normalised score (`LEVEL_RULE`).

    Raises:
        ValueError: `score` is NaN or outside [0, 1].
    """
    if not 0.0 <= score <= 1.0:  # NaN fails this too
        msg = f"score must be in [0, 1], got {score}"
        raise ValueError(msg)
    # round first: 0.6 * 5 may land a hair below 3 after a normalisation
    return LEVELS[min(4, math.floor(round(5.0 * score, 9)))]


def quote_prompt(text: str, max_chars: int = 200) -> str:
    """A generation prompt as it enters a question: one line, cut, in double quotes.

    Line breaks, tabs and other control characters become spaces and runs of spaces one
    (Unicode NFC, every other character kept: accents, CJK, emoji); double quotes become
    single quotes, so the quoting stays unambiguous; a prompt longer than `max_chars` is
    cut at the last space before the limit (or at the limit) and ends with "...". JSON
    escaping is left to the JSON writer, which never breaks on any text.
    """
    t = unicodedata.normalize("NFC", text)
    t = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in t)
    t = " ".join(t.split()).replace('"', "'")
    if len(t) > max_chars:
        cut = t[: max_chars - 3]
        space = cut.rfind(" ")
        if space >= max_chars // 2:
            cut = cut[:space]
        t = cut.rstrip(" ,;:") + "..."
    return f'"{t}"'


def load_score_pools(version: str = "v1") -> dict[str, Any]:
    """The question pools of prompts/questions/score.<version>.yaml, checked.

    Raises:
        ValueError: a question pool with fewer than 20 distinct paraphrases.
    """
    pools = load_yaml(f"questions/score.{version}.yaml")
    for key in ("score", "score_prompt", "align", "auth", "compare_score_prompt",
                "compare_align", "compare_auth", "isp_question", "describe", "describe_prompt"):
        n = len(set(pools[key]))
        if n < _MIN_POOL:
            msg = f"questions score.{key} ({version}): {n} distinct paraphrases, need {_MIN_POOL}"
            raise ValueError(msg)
    return pools


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _seed(seed: int, dataset: str, item: str) -> int:
    return derive_seed(seed, "label_task", dataset, item, 0)


def _targets(dataset: str, im: LabelledImage) -> tuple[Target, ...]:
    if dataset in AIGC_TARGETS:
        return AIGC_TARGETS[dataset]
    std = next((k for k in ("std", "sd", "var") if k in im.labels), None)
    return (Target("quality", im.label, std),)


def _target_score(im: LabelledImage, target: Target) -> tuple[float, float | None] | None:
    """(normalised score, normalised std) of one target, or None when it is absent."""
    if target.label not in im.labels:
        return None
    score = im.score if target.label == im.label else normalise(im.labels[target.label], im.scale)
    std = im.labels.get(target.std) if target.std else None
    if std is not None and target.std == "var":
        std = math.sqrt(std)
    std_norm = None if std is None else std / (im.scale.max - im.scale.min)
    return score, std_norm


def _record(*, rid: str, split: str, image_A: str, image_B: str | None, task: str,
            question: str, answer: str, provenance: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": rid, "image_ref": None, "image_A": image_A,
                           "image_B": image_B, "task_type": LABEL_TASK_TYPES[task]}
    if split_form(split) == "train":
        rec["conversations"] = [{"from": "human", "value": question},
                                {"from": "gpt", "value": answer}]
    else:
        rec["query"], rec["answer"] = question, answer
    rec.update(provenance)
    return rec


# --------------------------------------------------------------------------- records
def single_record(task: str, im: LabelledImage, target: Target, pools: dict[str, Any], *,
                  split: str, seed: int, prefix: str, sentence_probability: float = 0.5,
                  prompt_max_chars: int = 200, version: str = "v1") -> dict[str, Any] | None:
    """An A_score / A_score_prompt / A_align / A_auth record of one image (None: no label).

    Draw order (every draw made whatever the branch): question, form, tail, sentence.
    """
    got = _target_score(im, target)
    if got is None:
        return None
    score, std_norm = got
    _, pool, answers = _SINGLE[task]
    level = level_word(score)
    rng = rng_for(_seed(seed, im.dataset, im.image_id), f"task/{task}")
    template = _pick(rng, pools[pool])
    u_form = float(rng.random())
    tail = _pick(rng, pools["short_tail"])
    sentence = render(_pick(rng, pools[answers]), level=level)
    question = render(template, prompt=quote_prompt(im.prompt or "", prompt_max_chars))
    short = split_form(split) == "test" or u_form >= sentence_probability
    prov: dict[str, Any] = {
        "sample_id": f"{im.dataset}:{im.image_id}", "dataset": im.dataset,
        "image_id": im.image_id, "split": split, "seed": _seed(seed, im.dataset, im.image_id),
        "provenance": "human", "target": target.name, "label": target.label,
        "mos": im.labels[target.label], "std": im.labels.get(target.std) if target.std else None,
        "score": score, "score_std": std_norm, "scale": im.scale.model_dump(),
        "score_rule": im.rule if target.label == im.label else
        f"{target.label} on the scale of {im.label} ({im.rule})",
        "level": level, "level_rule": LEVEL_RULE, "prompt": im.prompt,
        "answer_form": "short" if short else "sentence",
        "question_version": f"questions/score.{version}"}
    return _record(rid=f"{task}:{im.dataset}_{im.image_id}", split=split,
                   image_A=prefix + im.path, image_B=None, task=task,
                   question=f"{question} {tail}" if short else question,
                   answer=level.capitalize() if short else sentence, provenance=prov)


def pair_record(task: str, pair: HumanPair, target: Target, pools: dict[str, Any],
                compare: dict[str, Any], *, seed: int, prefix: str,
                sentence_probability: float = 0.5, prompt_max_chars: int = 200,
                version: str = "v1") -> dict[str, Any]:
    """An AB_score_prompt / AB_align / AB_auth record of one pair of one prompt.

    Answers as the brief comparisons: "Image A" / "Image B", or a sentence of
    prompts/questions/compare.<version>.yaml.
    """
    _, pool = _PAIR[task]
    better, other = ("Image A", "Image B") if pair.A_better_B else ("Image B", "Image A")
    pseed = _seed(seed, pair.dataset, pair.pair_id)
    rng = rng_for(pseed, f"task/{task}")
    template = _pick(rng, pools[pool])
    u_form = float(rng.random())
    tail = _pick(rng, compare["short_tail"])
    sentence = render(_pick(rng, compare["answer_sentence"]), image=better, other=other)
    question = render(template, prompt=quote_prompt(pair.prompt or "", prompt_max_chars))
    short = split_form(pair.split) == "test" or u_form >= sentence_probability
    prov: dict[str, Any] = {
        "sample_id": pair.pair_id, "dataset": pair.dataset, "split": pair.split, "seed": pseed,
        "provenance": "human", "judge": pair.label, "target": target.name,
        "label": target.label, "A_id": pair.A_id, "B_id": pair.B_id,
        "A_better_B": pair.A_better_B, "score_A": pair.score_A, "score_B": pair.score_B,
        "norm_A": pair.norm_A, "norm_B": pair.norm_B, "difference": pair.difference,
        "margin": pair.margin, "prompt": pair.prompt,
        "answer_form": "short" if short else "sentence",
        "question_version": f"questions/score.{version}"}
    return _record(rid=f"{task}:{pair.pair_id}", split=pair.split,
                   image_A=prefix + pair.A_path, image_B=prefix + pair.B_path, task=task,
                   question=f"{question} {tail}" if short else question,
                   answer=better if short else sentence, provenance=prov)


def isp_record(target: LabelledImage, pool: Sequence[LabelledImage], pools: dict[str, Any],
               cfg: Any, *, split: str, seed: int, prefix: str, index: int = 0,
               version: str = "v1", position: int | None = None) -> dict[str, Any] | None:
    """An A_score_isp record: `cfg.k` scored examples of `pool` (never the target), then it.

    `pool` is every image of the target's source and split. Scores are the normalised
    quality scores, shown with two decimals. Draw order (all draws made whatever the
    branch): examples, scale coin, gamma, flip coin, intro, question, tail. Train records
    (others only with `cfg.augment_test`) are scaled by s -> s ** gamma with probability
    `cfg.scale_probability` and flipped to 1 - s with `cfg.flip_probability`; a flipped
    question says "lower is better". None when the split has no other image.

    `position`: `pool` is already sorted by image id and the target is `pool[position]`
    (what the stage passes, so a split of n images costs O(n), not O(n^2 log n)).
    """
    members: Sequence[LabelledImage] = pool
    if position is None:
        members = sorted(pool, key=lambda im: im.image_id)
        position = next((i for i, im in enumerate(members) if im.image_id == target.image_id),
                        None)
    n_others = len(members) - (0 if position is None else 1)
    if n_others < 1:
        return None
    tseed = _seed(seed, target.dataset, target.image_id)
    rng = rng_for(tseed, f"task/A_score_isp/{index}")
    k = min(cfg.k, n_others)
    # index i of the pool without the target: skip over the target's position
    examples = [members[int(i) + (1 if position is not None and i >= position else 0)]
                for i in rng.choice(n_others, size=k, replace=False)]
    u_scale, log_gamma = float(rng.random()), float(rng.uniform(-1.0, 1.0))
    u_flip = float(rng.random())
    augment = split_form(split) == "train" or cfg.augment_test
    scaled = augment and u_scale < cfg.scale_probability
    flipped = augment and u_flip < cfg.flip_probability
    gamma = math.exp(log_gamma * math.log(cfg.gamma_max)) if scaled else 1.0

    def shown(s: float) -> float:
        v = s ** gamma
        return round(1.0 - v if flipped else v, 2)

    raw = [im.score for im in examples]
    scores = [shown(s) for s in raw]
    listing = " ".join(f"Example {i + 1}: {s:.2f}." for i, s in enumerate(scores))
    intro = render(_pick(rng, pools["isp_intro"]), n=k, examples=listing,
                   direction="lower" if flipped else "higher")
    question = f"{intro} {_pick(rng, pools['isp_question'])} {_pick(rng, pools['isp_tail'])}"
    answer = f"{shown(target.score):.2f}"
    prov: dict[str, Any] = {
        "sample_id": f"{target.dataset}:{target.image_id}", "dataset": target.dataset,
        "image_id": target.image_id, "split": split, "seed": tseed, "provenance": "human",
        "target": "quality", "label": target.label, "score": target.score,
        "isp_images": [prefix + im.path for im in examples],
        "isp_ids": [im.image_id for im in examples], "isp_scores": scores,
        "isp_scores_raw": raw, "isp_k": k, "isp_gamma": gamma, "isp_flipped": flipped,
        "answer_score": float(answer), "question_version": f"questions/score.{version}"}
    return _record(rid=f"A_score_isp:{target.dataset}_{target.image_id}_{index}", split=split,
                   image_A=prefix + target.path, image_B=None, task="A_score_isp",
                   question=question, answer=answer, provenance=prov)


def describe_record(im: LabelledImage, response: ResponseRecord, pools: dict[str, Any], *,
                    split: str, seed: int, prefix: str, prompt_max_chars: int = 200,
                    version: str = "v1") -> dict[str, Any]:
    """An A_describe record: an open quality question (with the prompt for AI-generated
    images) answered by the accepted MOS-grounded description of the image."""
    rng = rng_for(_seed(seed, im.dataset, im.image_id), "task/A_describe")
    template = _pick(rng, pools["describe_prompt" if im.prompt else "describe"])
    question = render(template, prompt=quote_prompt(im.prompt or "", prompt_max_chars))
    prov: dict[str, Any] = {
        "sample_id": f"{im.dataset}:{im.image_id}", "dataset": im.dataset,
        "image_id": im.image_id, "split": split, "seed": _seed(seed, im.dataset, im.image_id),
        "provenance": "responder", "target": "quality", "label": im.label, "score": im.score,
        "level": level_word(im.score), "level_rule": LEVEL_RULE, "prompt": im.prompt,
        "responder": response.responder, "model": response.model,
        "prompt_id": response.prompt_id, "prompt_version": response.prompt_version,
        "flags": list(response.flags), "question_version": f"questions/score.{version}"}
    return _record(rid=f"A_describe:{im.dataset}_{im.image_id}", split=split,
                   image_A=prefix + im.path, image_B=None, task="A_describe",
                   question=question, answer=response.text.strip(), provenance=prov)


def _descriptions(manifest: Manifest, store: Store, dataset: str) -> dict[str, ResponseRecord]:
    """Accepted MOS-grounded answers of one source, by sample id (every split's file)."""
    from pipeline.assemble import responder_key

    folder = store.root / "responses" / responder_key(manifest) / "mos" / dataset
    version = manifest.tasks.labels.describe_version
    out: dict[str, ResponseRecord] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for r in read_jsonl(path, ResponseRecord):
            if r.prompt_version == version:
                out.setdefault(r.sample_id, r)
    return out


# --------------------------------------------------------------------------- the stage
def _fold_splits(store: Store, dataset: str) -> list[dict[str, str]]:
    path = labels_dir(store, dataset) / "splits.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("rule") != "prompt":
        return []
    return [{i: s for s, ids in rep.items() for i in ids} for rep in doc.get("repeats", [])]


def _source_records(manifest: Manifest, store: Store, src: LabelSourceConfig,
                    images: list[LabelledImage], tasks: Sequence[str], pools: dict[str, Any],
                    compare: dict[str, Any], skipped: Counter[str],
                    described: dict[str, ResponseRecord] | None = None,
                    memo: dict[tuple[str, ...], dict[str, Any] | None] | None = None,
                    ) -> dict[str, list[dict[str, Any]]]:
    """Every record of one source for one split assignment (`images` carry the split).

    `memo`: records already built for (task, item, split), shared by the folds: a record
    depends only on its item and split, so a fold reuses every one it has in common.
    """
    memo = {} if memo is None else memo
    cfg = manifest.tasks
    lcfg = cfg.labels
    spec = get_adapter(src.dataset)
    prefix = f"labels/{spec.name}/src/"
    aigc = spec.name in AIGC_TARGETS and lcfg.aigc
    kw = {"seed": manifest.seed, "prefix": prefix, "version": cfg.questions_version,
          "sentence_probability": cfg.sentence_probability,
          "prompt_max_chars": lcfg.prompt_max_chars}
    out: dict[str, list[dict[str, Any]]] = {}
    present = [im for im in images if (store.root / prefix / im.path).is_file()]
    skipped["missing_image"] += len(images) - len(present)
    for task, (tname, _, _) in _SINGLE.items():
        if task not in tasks or (task == "A_score" and not lcfg.score) or \
                (task != "A_score" and not aigc):
            continue
        for im in present:
            target = next((t for t in _targets(spec.name, im) if t.name == tname), None)
            if target is None:
                continue
            key = (task, spec.name, im.image_id, im.split or "train")
            try:
                if key not in memo:
                    memo[key] = single_record(task, im, target, pools,
                                              split=im.split or "train", **kw)
                rec = memo[key]
            except ValueError as err:  # a secondary label outside the scale
                log.warning("%s %s: %s", task, im.image_id, err)
                skipped[f"out_of_range:{task}"] += 1
                continue
            if rec is None:
                skipped[f"no_label:{task}"] += 1
            else:
                out.setdefault(task, []).append(rec)
    margin = src.margin if src.margin is not None else spec.margin
    for task, (tname, _) in _PAIR.items():
        target = next((t for t in AIGC_TARGETS.get(spec.name, ()) if t.name == tname), None)
        if task not in tasks or not aigc or target is None:
            continue
        rescored = []
        for im in present:
            got = None
            try:
                got = _target_score(im, target)
            except ValueError:
                skipped[f"out_of_range:{task}"] += 1
            if got is not None:
                rescored.append(im.model_copy(update={"label": target.label, "score": got[0]}))
        pairs = pairs_from_images(rescored, dataset=spec.name, group_by="prompt", margin=margin,
                                  cap=resolve_cap(src, spec, len(rescored)), seed=manifest.seed)
        recs = out.setdefault(task, [])
        for p in pairs:
            key = (task, p.pair_id, p.split, p.A_id)
            if key not in memo:
                memo[key] = pair_record(task, p, target, pools, compare, **kw)
            recs.append(memo[key])  # type: ignore[arg-type]
    if "A_describe" in tasks and lcfg.describe and described is not None:
        recs = out.setdefault("A_describe", [])
        for im in present:
            response = described.get(f"{spec.name}:{im.image_id}")
            if response is None:
                skipped["no_description"] += 1
                continue
            key = ("A_describe", spec.name, im.image_id, im.split or "train")
            if key not in memo:
                memo[key] = describe_record(im, response, pools, split=im.split or "train",
                                            seed=manifest.seed, prefix=prefix,
                                            prompt_max_chars=lcfg.prompt_max_chars,
                                            version=cfg.questions_version)
            recs.append(memo[key])  # type: ignore[arg-type]
    if "A_score_isp" in tasks and lcfg.isp.per_image > 0:
        by_split: dict[str, list[LabelledImage]] = {}
        for im in present:
            by_split.setdefault(im.split or "train", []).append(im)
        recs = out.setdefault("A_score_isp", [])
        for split, members in sorted(by_split.items()):
            members = sorted(members, key=lambda im: im.image_id)
            for pos, im in enumerate(members):
                for r in range(lcfg.isp.per_image):
                    rec = isp_record(im, members, pools, lcfg.isp, split=split,
                                     seed=manifest.seed, prefix=prefix, index=r,
                                     version=cfg.questions_version, position=pos)
                    if rec is None:
                        skipped["isp_no_examples"] += 1
                    else:
                        recs.append(rec)
    return out


def _write(store: Store, task: str, split_dir: str, records: list[dict[str, Any]],
           validate: bool, counts: dict[str, int], validated: set[int]) -> list[Path]:
    by_split: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_split.setdefault(rec["split"], []).append(rec)
    written = []
    for split, recs in sorted(by_split.items()):
        name = f"{split_dir}/{split}" if split_dir else split
        recs.sort(key=lambda r: r["id"])
        ids = [r["id"] for r in recs]
        if len(ids) != len(set(ids)):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            msg = f"{task}/{name}: duplicate record id {dup!r}"
            raise ValueError(msg)
        if validate:
            for rec in recs:
                if id(rec) not in validated:  # a record shared by folds is checked once
                    validate_task_record(rec, split)
                    validated.add(id(rec))
        path = store.task_path(task, name)
        dump_task_file(path, recs)
        written.append(path)
        counts[name] = len(recs)
    return written


def build_label_tasks(manifest: Manifest, store: Store, *, tasks: Sequence[str] | None = None,
                      splits: Sequence[str] | None = None, validate: bool = True,
                      ) -> dict[str, Any]:
    """Write the label task files of the manifest's `sources` (idempotent).

    Args:
        manifest: the build manifest (`sources`, `tasks.labels` settings).
        store: the dataset folder, after the labels stage.
        tasks: restrict to these label tasks (default: all of `LABEL_TASK_TYPES`).
        splits: restrict to these splits (default: all; then task files of splits,
            folds or sources no longer there are removed).
        validate: check every record against pipeline.schema before writing.

    Returns:
        {"tasks": {task: {split: n}}, "folds": {task: {"fold<k>/<split>": n}},
        "skipped": {reason: n}}.
    """
    wanted = [t for t in (tasks or LABEL_TASK_TYPES) if t in LABEL_TASK_TYPES]
    pools = load_score_pools(manifest.tasks.questions_version)
    compare = load_yaml(f"questions/compare.{manifest.tasks.questions_version}.yaml")
    skipped: Counter[str] = Counter()
    main: dict[str, list[dict[str, Any]]] = {}
    folds: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for src in manifest.sources:
        spec = get_adapter(src.dataset)
        path = labels_dir(store, spec.name) / "images.jsonl"
        if spec.kind == "2afc" or not path.is_file():
            continue
        images = list(read_jsonl(path, LabelledImage))
        described = (_descriptions(manifest, store, spec.name)
                     if manifest.tasks.labels.describe and "A_describe" in wanted else None)
        memo: dict[tuple[str, ...], dict[str, Any] | None] = {}
        for task, recs in _source_records(manifest, store, src, images, wanted, pools,
                                          compare, skipped, described, memo).items():
            main.setdefault(task, []).extend(recs)
        for k, split_of in enumerate(_fold_splits(store, spec.name)[:manifest.tasks.labels.folds]):
            moved = [im.model_copy(update={"split": split_of.get(im.image_id, im.split)})
                     for im in images]
            for task, recs in _source_records(manifest, store, src, moved, wanted, pools,
                                              compare, Counter(), described, memo).items():
                folds.setdefault(k, {}).setdefault(task, []).extend(recs)
    counts: dict[str, dict[str, int]] = {}
    fold_counts: dict[str, dict[str, int]] = {}
    written: set[Path] = set()
    validated: set[int] = set()
    for task in wanted:
        recs = [r for r in main.get(task, []) if splits is None or r["split"] in splits]
        if recs:
            written.update(_write(store, task, "", recs, validate, counts.setdefault(task, {}),
                                  validated))
        for k in sorted(folds):
            if folds[k].get(task):
                written.update(_write(store, task, f"fold{k}", folds[k][task], validate,
                                      fold_counts.setdefault(task, {}), validated))
    if splits is None:  # a full run owns these files: remove what this run did not write
        for task in wanted:
            folder = store.root / "tasks" / task
            for stale in [*folder.glob("*.json"), *folder.glob("fold*/*.json")]:
                if stale not in written:
                    stale.unlink()
    log.info("label tasks: %s", {t: sum(v.values()) for t, v in counts.items()})
    return {"tasks": counts, "folds": fold_counts, "skipped": dict(skipped)}
