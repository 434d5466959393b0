"""DeQA-Score soft labels: score distributions from MOS and std, in DeQA-Score's meta layout.

Follows zhiyuanyou/DeQA-Score `build_soft_labels/gen_soft_label.py` (and its `config.json`
for the defaults); the training side that reads the files is `src/datasets/single_dataset.py`
(`image`, `conversations`, `level_probs`), the evaluation `src/evaluate/iqa_eval.py` and
`cal_plcc_srcc.py` (`id`, `image`, `gt_score`).

Per image of a source (min and max over every image of the source, as their script takes
them over its whole mos.json):

- `gt_score_norm = 4 * (mos - min) / (max - min) + 1` and `std_norm = 4 * std / (max - min)`;
- five level probabilities for excellent, good, fair, poor, bad (levels 5..1) from a
  Gaussian N(gt_score_norm, std_norm): `pdf` at the integer levels, or `cdf` over the unit
  bins [x - 0.5, x + 0.5] (`level_probs_org`);
- adjusted linearly, p' = max(alpha * p + beta, 0), with alpha, beta solving
  sum(p') = 1 and sum(level * p') = gt_score_norm (`level_probs`);
- when std_norm < thre_std or the adjusted expectation misses gt_score_norm by more than
  thre_diff: the two-level "binary" split of gt_score_norm between its neighbouring levels.

Train records carry `conversations` (a question, then "The quality of the image is
{level}." with the level of five equal MOS bins); other splits drop the two probability
lists, as their script does for its test metas. Files: `<dataset>/<split>.json`, a JSON
list written with `json.dumps(metas, indent=4)` like theirs. Image paths are relative to the
dataset root (`labels/<dataset>/src/...`): point DeQA-Score's image folder / `--root-dir`
at the dataset root.

Which label is the std: KonIQ-10k `sd` (on the 1..5 rating scale: times 99 / 4 when the MOS
is on 1..100, so MOS and std share one unit), KADID-10k `sqrt(var)`, LIVE Challenge and TID2013
`std`, AGIQA-3k `std_quality`, AIGCIQA2023 `quality_std`. A source without one (SPAQ,
AGIQA-1k, PIPAL) is skipped, or, with `missing_std: binary`, written with the binary split
and `std`, `std_norm`, `level_probs_org` null.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.labels.records import LabelledImage
from pipeline.manifest import DeqaSourceConfig
from pipeline.schema import split_form
from pipeline.seeds import rng_for, stable_hash
from pipeline.store import Store, atomic_write_bytes, read_jsonl
from prompts import load_yaml

__all__ = [
    "DEFAULT_DENSITY",
    "LEVELS",
    "STD_LABELS",
    "binary_probs",
    "deqa_metas",
    "export_deqa_score",
    "level_word",
    "settings_for",
    "soft_label",
]

# "excellent" .. "bad" = levels 5 .. 1 (gen_soft_label.py: `for x in range(5, 0, -1)`).
LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
_VALUES = (5.0, 4.0, 3.0, 2.0, 1.0)
# config.json of DeQA-Score: KonIQ and KADID "pdf", SPAQ "cdf"; other sources: pdf.
DEFAULT_DENSITY: dict[str, str] = {"spaq": "cdf"}
# dataset -> (label holding the spread, True when it is a variance)
STD_LABELS: dict[str, tuple[str, bool]] = {
    "koniq10k": ("sd", False),
    "kadid10k": ("var", True),
    "livec": ("std", False),
    "tid2013": ("std", False),
    "agiqa3k": ("std_quality", False),
    "aigciqa2023": ("quality_std", False),
}
_EPS = 1e-8  # gen_soft_label.py: get_level / get_binary_probs bin edges


def settings_for(dataset: str, overrides: dict[str, DeqaSourceConfig]) -> DeqaSourceConfig:
    """A source's settings: the manifest's override, else DeQA-Score's defaults."""
    cfg = overrides.get(dataset, DeqaSourceConfig())
    if cfg.density is None:
        cfg = cfg.model_copy(update={"density": DEFAULT_DENSITY.get(dataset, "pdf")})
    return cfg


def _norm_pdf(x: float, mu: float, sigma: float) -> float:
    z = (x - mu) / sigma
    return math.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi))


def _norm_cdf(x: float, mu: float, sigma: float) -> float:
    return 0.5 * math.erfc(-(x - mu) / (sigma * math.sqrt(2.0)))


def level_word(mos: float, min_mos: float, max_mos: float) -> str:
    """The level of five equal bins of [min, max] (gen_soft_label.py `get_level`)."""
    words = LEVELS[::-1]  # bad .. excellent
    for idx in range(1, 6):
        left = min_mos + (idx - 1) / 5 * (max_mos - min_mos) - _EPS
        right = min_mos + idx / 5 * (max_mos - min_mos) + _EPS
        if left < mos <= right:
            return words[idx - 1]
    msg = f"mos {mos} outside [{min_mos}, {max_mos}]"
    raise ValueError(msg)


def binary_probs(mos_norm: float) -> list[float]:
    """The two-level split of a score on [1, 5] (gen_soft_label.py `get_binary_probs`),
    excellent first."""
    probs = [0.0] * 5
    for idx in range(1, 5):
        left = 1.0 + (idx - 1) - _EPS
        right = 1.0 + idx + _EPS
        if left < mos_norm <= right:
            probs[idx - 1] = (right - mos_norm) / (right - left)
            probs[idx] = (mos_norm - left) / (right - left)
            break
    return probs[::-1]


def _expectation(probs: list[float]) -> float:
    return sum(p * v for p, v in zip(probs, _VALUES))


def soft_label(mos: float, std: float | None, min_mos: float, max_mos: float, *,
               density: str = "pdf", thre_std: float = 0.2,
               thre_diff: float = 0.1) -> dict[str, Any]:
    """DeQA-Score's normalised score and level probabilities of one image.

    Returns:
        {"gt_score_norm", "std_norm", "level_probs_org", "level_probs", "binary"}; with
        std None: the binary split, std_norm and level_probs_org None.

    Raises:
        ValueError: an empty MOS range or an unknown density.
    """
    if not max_mos > min_mos:
        msg = f"the MOS range is empty: min {min_mos}, max {max_mos}"
        raise ValueError(msg)
    if density not in ("pdf", "cdf"):
        msg = f"density must be pdf or cdf, got {density!r}"
        raise ValueError(msg)
    mos_norm = 4 * (mos - min_mos) / (max_mos - min_mos) + 1
    if std is None:
        return {"gt_score_norm": mos_norm, "std_norm": None, "level_probs_org": None,
                "level_probs": binary_probs(mos_norm), "binary": True}
    std_norm = 4 * std / (max_mos - min_mos)
    probs: list[float] = []
    for x in _VALUES:
        if std_norm <= 0:
            probs.append(0.0)  # a zero std: no Gaussian; the binary split follows below
        elif density == "cdf":
            probs.append(_norm_cdf(x + 0.5, mos_norm, std_norm)
                         - _norm_cdf(x - 0.5, mos_norm, std_norm))
        else:
            probs.append(_norm_pdf(x, mos_norm, std_norm))
    # alpha * A + 5 beta = 1 and alpha * B + 15 beta = score (adjust_gaussian_bar)
    a, b = sum(probs), _expectation(probs)
    alpha = (mos_norm - 3) / (b - 3.0 * a + 1e-9)
    beta = (1.0 - alpha * a) / 5.0
    adjusted = [max(p * alpha + beta, 0.0) for p in probs]
    binary = std_norm < thre_std or abs(_expectation(adjusted) - mos_norm) > thre_diff
    return {"gt_score_norm": mos_norm, "std_norm": std_norm, "level_probs_org": probs,
            "level_probs": binary_probs(mos_norm) if binary else adjusted, "binary": binary}


def _std_of(im: LabelledImage, mos_max: float) -> float | None:
    key, variance = STD_LABELS.get(im.dataset, ("std", False))
    value = im.labels.get(key)
    if value is None:
        return None
    std = math.sqrt(value) if variance else value
    if im.dataset == "koniq10k" and mos_max > 5:
        # KonIQ's SD is on the 1..5 rating scale, the MOS of koniq10k_distributions_sets.csv
        # a linear map of the 1..5 MOS onto 1..100: the SD goes into MOS units the same way
        std *= 99 / 4
    return std


def _question(dataset: str, image_id: str, questions: list[str]) -> str:
    seed = int(stable_hash("deqa-score", dataset, image_id)[:15], 16)
    return questions[int(rng_for(seed, "question").integers(len(questions)))]


def deqa_metas(images: list[LabelledImage], settings: DeqaSourceConfig, *,
               prefix: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """DeQA-Score metas of one source's labelled images, by split.

    Args:
        images: the source's images (labels/<dataset>/images.jsonl), their split assigned.
        settings: density, thresholds, missing-std rule (`settings_for`).
        prefix: path prefix of the images in the dataset folder (labels/<dataset>/src/).

    Returns:
        ({split: [meta, ...]}, summary with counts); no metas when the source has no std
        and `missing_std` is skip.
    """
    pool = load_yaml("questions/deqa_score.v1.yaml")
    mos_max = max((im.labels[im.label] for im in images), default=0.0)
    stds = [_std_of(im, mos_max) for im in images]
    summary: dict[str, Any] = {"density": settings.density, "thre_std": settings.thre_std,
                               "thre_diff": settings.thre_diff, "images": len(images),
                               "no_std": sum(s is None for s in stds), "binary": 0}
    if not images:
        return {}, summary
    if summary["no_std"] and settings.missing_std == "skip":
        summary["skipped"] = "no std label (missing_std: skip)"
        return {}, summary
    # raw MOS in the direction of the scale: DeQA-Score's levels run from bad at min to
    # excellent at max (every MOS source here has higher = better)
    moses = [im.labels[im.label] if im.scale.higher_is_better
             else im.scale.max + im.scale.min - im.labels[im.label] for im in images]
    lo, hi = min(moses), max(moses)
    out: dict[str, list[dict[str, Any]]] = {}
    for im, mos, std in zip(images, moses, stds):
        lab = soft_label(mos, std, lo, hi, density=settings.density or "pdf",
                         thre_std=settings.thre_std, thre_diff=settings.thre_diff)
        summary["binary"] += lab["binary"]
        raw = im.labels[im.label]
        name = PurePosixPath(im.path).name
        meta: dict[str, Any] = {
            "id": f"{name}->{raw}",
            "image": f"{prefix}{im.path}",
            "gt_score": raw,
            "gt_score_norm": lab["gt_score_norm"],
            "level_probs_org": lab["level_probs_org"],
            "level_probs": lab["level_probs"],
            "std": std,
            "std_norm": lab["std_norm"],
        }
        split = im.split or "train"
        if split_form(split) == "train":
            level = level_word(mos, lo, hi)
            meta["conversations"] = [
                {"from": "human",
                 "value": _question(im.dataset, im.image_id, pool["questions"]) + "\n<|image|>"},
                {"from": "gpt", "value": pool["answer"].replace("{level}", level)},
            ]
        else:
            del meta["level_probs_org"]
            del meta["level_probs"]
        out.setdefault(split, []).append(meta)
    summary["splits"] = {s: len(v) for s, v in sorted(out.items())}
    return out, summary


def _sources(store: Store) -> list[str]:
    root = store.root / "labels"
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/images.jsonl"))


def export_deqa_score(store: Store, out_dir: Path,
                      overrides: dict[str, DeqaSourceConfig] | None = None,
                      datasets: list[str] | None = None,
                      file_name: str = "{dataset}/{split}.json") -> dict[str, Any]:
    """Write `<out_dir>/<dataset>/<split>.json` for every labelled source with a MOS.

    `file_name` (with `{dataset}` and `{split}`) names the files otherwise.

    Returns:
        {"files": {relative path: records}, "sources": {dataset: summary},
        "skipped": {reason: n}, "train": {relative path of each train file: dataset}}.

    Raises:
        ValueError: the dataset has no labels/ (run the labels stage first).
    """
    names = [d for d in _sources(store) if datasets is None or d in datasets]
    if not names:
        msg = (f"{store.root}: no labels/<dataset>/images.jsonl here (add human-labelled "
               "`sources` to the manifest and run `dqgen build` or `dqgen labels build`)")
        raise ValueError(msg)
    files: dict[str, int] = {}
    train: dict[str, str] = {}
    sources: dict[str, Any] = {}
    skipped: Counter[str] = Counter()
    for name in names:
        images = list(read_jsonl(store.root / "labels" / name / "images.jsonl", LabelledImage))
        present = [im for im in images
                   if (store.root / "labels" / name / "src" / im.path).is_file()]
        if len(present) < len(images):
            skipped[f"{name}: image file not in the dataset folder"] += len(images) - len(present)
        metas, summary = deqa_metas(present, settings_for(name, overrides or {}),
                                    prefix=f"labels/{name}/src/")
        sources[name] = summary
        if "skipped" in summary:
            skipped[f"{name}: {summary['skipped']}"] += len(present)
        for split, rows in metas.items():
            target = out_dir / file_name.format(dataset=name, split=split)
            atomic_write_bytes(target, json.dumps(rows, indent=4).encode("utf-8"))
            rel = target.relative_to(out_dir).as_posix()
            files[rel] = len(rows)
            if split_form(split) == "train":
                train[rel] = name
    return {"files": files, "sources": sources, "skipped": dict(skipped), "train": train}
