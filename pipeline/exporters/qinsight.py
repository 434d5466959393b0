"""Q-Insight GRPO files: degradation perception, image comparison, score regression.

Follows bytedance/Q-Insight `src/open-r1-multimodal`:

- `src/open_r1/qinsight_multi_task.py` (`LazySupervisedDataset`, `score_reward`): reads the
  `datasets: [{json_path}]` list of `data_config/iqa_dist.yaml` and `iqa_score.yaml`
  (JSON lists or JSON Lines), opens `os.path.join(image_root, example["image"])`; the
  degradation solution is `{"distortion_class", "severity"}` matched as strings against
  the model's JSON answer, its prompt (DIST_QUESTION_PROMPT) names "noise", "compression",
  "blur" and "darken", the grades "slight" .. "catastrophic", and `"null"` when there is
  none; the score solution is `gt_score_norm` (1..5, DeQA-Score metas).
- `src/open_r1/qinsight_comparison.py` (`LazyComparisonDataset`): `ref_image`, `ImageA`,
  `ImageB` under `image_root` and `result`, matched exactly ("Image A" / "Image B"; the
  prompt also allows "Similar", which no verdict here is: ties are never written).

Files under exports/qinsight/ (image paths relative to the dataset root, so one
`--image_root` serves all three)::

    dist_<split>.json          refA_sd samples: image A, category word, grade word
    comparison_<split>.json    refAB pairs with a verdict (judge or human), reference kept
    score_<dataset>_<split>.json  DeQA-Score metas of each labelled source
    data_config/iqa_dist.yaml, iqa_comparison.yaml, iqa_score.yaml   (train files)

The yaml `json_path`s start with `data_root` (default ./data/dqgen: link the dataset
folder there inside src/open-r1-multimodal and pass `--image_root ./data/dqgen`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from distortions.pairs import CATEGORY_PHRASES, GRADES_SD
from pipeline.exporters.deqa_score import export_deqa_score
from pipeline.manifest import DeqaSourceConfig
from pipeline.store import Store, atomic_write_bytes

__all__ = ["DEFAULT_CATEGORIES", "comparison_row", "dist_row", "export_qinsight"]

# The four categories DIST_QUESTION_PROMPT names (qinsight_multi_task.py).
DEFAULT_CATEGORIES: tuple[str, ...] = ("noise", "compression", "blur", "darken")
NULL = "null"


def dist_row(rec: dict[str, Any]) -> dict[str, Any] | None:
    """Degradation row of a refA_sd task record, or None when it is not one."""
    if rec.get("kind") != "refA_sd" or not isinstance(rec.get("distortions"), dict):
        return None
    items = rec["distortions"].get("A")
    if items is None or len(items) > 1:
        return None
    if not items:
        return {"image": rec["image_A"], "distortion_class": NULL, "severity": NULL}
    d = items[0]
    return {"image": rec["image_A"], "distortion_class": d["category"],
            "severity": GRADES_SD[int(d["severity"]) - 1]}


def comparison_row(rec: dict[str, Any]) -> dict[str, Any] | None:
    """Comparison row of a full-reference pair record with a verdict, or None."""
    if rec.get("image_ref") is None or rec.get("image_B") is None:
        return None
    verdict = rec.get("A_better_B")
    if not isinstance(verdict, bool):
        return None
    if rec.get("score_A") is not None and rec.get("score_A") == rec.get("score_B"):
        return None  # a tie: "Similar" is no verdict we hold
    return {"ref_image": rec["image_ref"], "ImageA": rec["image_A"], "ImageB": rec["image_B"],
            "result": "Image A" if verdict else "Image B"}


def _dump(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_bytes(path, (json.dumps(rows, ensure_ascii=False, indent=2) + "\n").encode())


def export_qinsight(store: Store, out_dir: Path,
                    task_records: list[tuple[str, str, list[dict[str, Any]]]], *,
                    categories: list[str] | None = None,
                    deqa: dict[str, DeqaSourceConfig] | None = None,
                    data_root: str = "./data/dqgen") -> dict[str, Any]:
    """Write the Q-Insight files of a dataset.

    Args:
        store: the dataset folder.
        out_dir: the export folder (exports/qinsight).
        task_records: (task, split, records) of every task file.
        categories: degradation categories kept (None: DEFAULT_CATEGORIES; "all" in the
            list: every category); clean images are always kept.
        deqa: DeQA-Score settings per source (score regression files).
        data_root: prefix of the yaml `json_path`s.

    Returns:
        {"files": {relative path: records}, "skipped": {reason: n}}.

    Raises:
        ValueError: an unknown category.
    """
    wanted = list(DEFAULT_CATEGORIES) if categories is None else list(categories)
    if "all" in wanted:
        wanted = list(CATEGORY_PHRASES)
    unknown = [c for c in wanted if c not in CATEGORY_PHRASES]
    if unknown:
        msg = (f"unknown distortion categor{'y' if len(unknown) == 1 else 'ies'} "
               f"{', '.join(unknown)}; known: {', '.join(CATEGORY_PHRASES)}, all")
        raise ValueError(msg)
    skipped: Counter[str] = Counter()
    dist: dict[str, dict[str, dict[str, Any]]] = {}
    comp: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
    left_out: set[tuple[str, str]] = set()
    for _task, split, records in task_records:
        for rec in records:
            row = dist_row(rec)
            if row is not None:
                key = rec.get("sample_id", rec["image_A"])
                if row["distortion_class"] not in (NULL, *wanted):
                    left_out.add((row["distortion_class"], key))
                    continue
                dist.setdefault(split, {}).setdefault(key, row)
            pair = comparison_row(rec)
            if pair is not None:
                key3 = (pair["ref_image"], pair["ImageA"], pair["ImageB"])
                comp.setdefault(split, {}).setdefault(key3, pair)
            elif rec.get("image_B") is not None and rec.get("image_ref") is not None:
                if isinstance(rec.get("A_better_B"), bool):
                    skipped["comparison: tie"] += 1
    try:  # json_path as seen from Q-Insight's training folder (data_root = the dataset)
        inside = out_dir.resolve().relative_to(store.root.resolve()).as_posix()
        json_dir = f"{data_root.rstrip('/')}/{inside}"
    except ValueError:  # an export folder outside the dataset: its absolute path
        json_dir = out_dir.resolve().as_posix()
    for category, _key in left_out:
        skipped[f"dist: category {category} not in --categories"] += 1
    files: dict[str, int] = {}
    train: dict[str, list[str]] = {"dist": [], "comparison": [], "score": []}
    for name, by_split in (("dist", dist), ("comparison", comp)):
        for split, rows in sorted(by_split.items()):
            target = out_dir / f"{name}_{split}.json"
            _dump(target, list(rows.values()))
            files[target.name] = len(rows)
            if split == "train":
                train[name].append(target.name)
    try:
        scores = export_deqa_score(store, out_dir, deqa, file_name="score_{dataset}_{split}.json")
    except ValueError:
        scores = {"files": {}, "skipped": {"score: no labelled sources": 1}, "train": {}}
    files.update(scores["files"])
    train["score"] = sorted(scores["train"])
    skipped.update(scores["skipped"])
    for name, names in train.items():
        target = out_dir / "data_config" / f"iqa_{name}.yaml"
        if not names:
            target.unlink(missing_ok=True)
            skipped[f"{name}: no train records (no data_config/iqa_{name}.yaml)"] += 1
            continue
        doc = {"datasets": [{"json_path": f"{json_dir}/{n}"} for n in sorted(names)]}
        atomic_write_bytes(target, yaml.safe_dump(doc, sort_keys=False).encode())
        files[f"data_config/{target.name}"] = len(names)
    return {"files": files, "skipped": dict(skipped)}

