"""One-schema JSON Lines rows: the same keys for every task and split.

HuggingFace `datasets` infers one Arrow schema over all files given to
`load_dataset("json", data_files=...)` and refuses files whose keys differ
(`DatasetGenerationCastError`): the DepictQA records have `conversations` in train and
`query`/`answer` in test, and provenance keys that differ by task. A row here has exactly
`ROW_KEYS`, in that order, whatever the task:

==========  ==============================================================================
key         value
==========  ==============================================================================
id          the record id (`<task>:<sample id>`)
task        task folder under tasks/ (`refA_brief_sd`, `A_score/fold0`, ...)
split       `train`, `test`, ...
task_type   the DepictQA task type
image_ref   reference path or null (relative to the dataset root)
image_A     image A path or null
image_B     image B path or null
images      the non-null paths in the order reference, A, B (a list, maybe empty)
messages    [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}];
            the user turn has one "<image>" per image (labelled lines for several)
question    the question without placeholders
answer      the answer
provenance  every other key of the record, as one JSON string (their types differ by task)
==========  ==============================================================================

A key can be null in every row of a file (image_ref of the no-reference tasks) and a
string in another; `datasets` takes a file's types from its first rows, so the export
also writes `README.md`, a dataset card whose YAML header declares the features and one
config per task nesting (`default`: tasks/<task>/<split>; `fold0`, ...: the k-fold sets
tasks/<task>/fold<k>/<split>), so `load_dataset("<dataset>/exports/jsonl")` reads every
file with one schema; `features()` gives the same for `load_dataset("json", ...)`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from pipeline.exporters.llava import record_images, with_placeholders

__all__ = ["ROW_KEYS", "dataset_card", "features", "from_row", "to_row"]

ROW_KEYS: tuple[str, ...] = ("id", "task", "split", "task_type", "image_ref", "image_A",
                             "image_B", "images", "messages", "question", "answer",
                             "provenance")
_CORE = ("id", "image_ref", "image_A", "image_B", "task_type", "conversations", "query",
         "answer")


def to_row(rec: dict[str, Any], task: str, split: str) -> dict[str, Any]:
    """The one-schema row of a DepictQA record of `task`/`split`."""
    if "conversations" in rec:
        question, answer = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    else:
        question, answer = rec["query"], rec["answer"]
    prov = {k: v for k, v in rec.items() if k not in _CORE}
    return {"id": rec["id"], "task": task, "split": split, "task_type": rec.get("task_type"),
            "image_ref": rec.get("image_ref"), "image_A": rec.get("image_A"),
            "image_B": rec.get("image_B"), "images": record_images(rec),
            "messages": [{"role": "user", "content": with_placeholders(question, rec)},
                         {"role": "assistant", "content": answer}],
            "question": question, "answer": answer,
            "provenance": json.dumps(prov, ensure_ascii=False)}


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The DepictQA record a row was made from (train form when its split is train)."""
    rec: dict[str, Any] = {k: row[k] for k in ("id", "image_ref", "image_A", "image_B",
                                               "task_type")}
    if row["split"] == "train":
        rec["conversations"] = [{"from": "human", "value": row["question"]},
                                {"from": "gpt", "value": row["answer"]}]
    else:
        rec["query"], rec["answer"] = row["question"], row["answer"]
    rec.update(json.loads(row["provenance"]))
    return rec


_STRINGS = ("id", "task", "split", "task_type", "image_ref", "image_A", "image_B")


def _feature_yaml() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": k, "dtype": "string"} for k in _STRINGS]
    out.append({"name": "images", "sequence": "string"})
    out.append({"name": "messages", "list": [{"name": "role", "dtype": "string"},
                                             {"name": "content", "dtype": "string"}]})
    out += [{"name": k, "dtype": "string"} for k in ("question", "answer", "provenance")]
    return out


def features() -> Any:
    """The rows' `datasets.Features` (for `load_dataset("json", ..., features=...)`)."""
    try:
        from datasets import Features, List, Value
    except ImportError as err:  # pragma: no cover - datasets is in the dev extra only
        msg = "features() needs HuggingFace datasets: pip install datasets"
        raise ImportError(msg) from err
    spec: dict[str, Any] = {k: Value("string") for k in _STRINGS}
    spec["images"] = List(Value("string"))
    spec["messages"] = List({"role": Value("string"), "content": Value("string")})
    spec.update({k: Value("string") for k in ("question", "answer", "provenance")})
    return Features(spec)


def dataset_card(files: list[tuple[str, str]], title: str) -> str:
    """README.md of the export: YAML configs (data_files by split) and features.

    Args:
        files: (task, split) of every file written (task may be nested: `A_score/fold0`).
        title: the dataset's name, for the heading.
    """
    configs: dict[str, dict[str, list[str]]] = {}
    for task, split in files:
        parts = task.split("/")
        name = "default" if len(parts) == 1 else "_".join(parts[1:])
        glob = "/".join(["*", *parts[1:], f"{split}.jsonl"])
        paths = configs.setdefault(name, {}).setdefault(split, [])
        if glob not in paths:
            paths.append(glob)
    header = {
        "configs": [{"config_name": name,
                     "data_files": [{"split": split, "path": paths}
                                    for split, paths in sorted(by_split.items())]}
                    for name, by_split in sorted(configs.items(),
                                                 key=lambda kv: (kv[0] != "default", kv[0]))],
        "dataset_info": {"features": _feature_yaml()},
    }
    body = (f"# {title}: one-schema JSON Lines\n\nEvery row has the keys "
            f"{', '.join(ROW_KEYS)} (null where a key does not apply). Load all tasks at "
            "once with `datasets.load_dataset(\"<this folder>\")`; see docs/exports.md "
            "of dqgen.\n")
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body
