"""Exports of the task files: DepictQA JSON, JSON Lines, LLaVA, ShareGPT (LLaMA-Factory), Parquet.

The DepictQA JSON files in ``tasks/<task>/<split>.json`` are the canonical output; every
export is derived from them and can be rebuilt at any time. Image paths stay relative to
the dataset root in every format (point the trainer's image folder at the dataset root).

=========  ===========================================  ==================================
format     files (under exports/<format>/ by default)    record
=========  ===========================================  ==================================
depictqa   tasks/<task>/<split>.json (no copy unless    the spec's record (train:
           another destination is given)                 conversations; test: query/answer)
jsonl      <task>/<split>.jsonl                         the same record, one per line
llava      <task>/<split>.json                          id, image [paths], conversations
                                                        with one "<image>" per image
sharegpt   <task>_<split>.json + dataset_info.json      messages [{role, content}], images
parquet    <task>/<split>.parquet (needs pyarrow)       flat columns + provenance JSON
=========  ===========================================  ==================================

LLaVA and ShareGPT have no test form: a test record's query/answer become the two turns;
the answer is also kept as `answer` (LLaVA) so scoring scripts can find it. Placeholders go
first in the user turn, in the order reference, A, B, one line each, labelled when there
is more than one image ("Reference image: <image>", "Image A: <image>", ...), so the
names used by the questions are tied to the images.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.assemble import TASK_NAMES, dump_task_file, iter_task_file
from pipeline.schema import IMAGE_TOKEN, validate_task_record
from pipeline.store import Store, atomic_write_json, atomic_write_jsonl

__all__ = [
    "FORMATS",
    "export_tasks",
    "from_llava",
    "from_sharegpt",
    "task_files",
    "to_llava",
    "to_sharegpt",
]

FORMATS: tuple[str, ...] = ("depictqa", "jsonl", "llava", "sharegpt", "parquet")
_CORE = ("id", "image_ref", "image_A", "image_B", "task_type", "conversations", "query", "answer")


def task_files(store: Store, tasks: Iterable[str] | None = None) -> list[tuple[str, str, Path]]:
    """(task, split, path) of every task file present, in task order then split name."""
    wanted = list(tasks) if tasks is not None else list(TASK_NAMES)
    out = []
    for task in wanted:
        folder = store.root / "tasks" / task
        if folder.is_dir():
            out += [(task, p.stem, p) for p in sorted(folder.glob("*.json"))]
    return out


def _qa(rec: dict[str, Any]) -> tuple[str, str]:
    if "conversations" in rec:
        return rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    return rec["query"], rec["answer"]


def _images(rec: dict[str, Any]) -> list[str]:
    return [rec[k] for k in ("image_ref", "image_A", "image_B") if rec.get(k) is not None]


def _image_labels(rec: dict[str, Any]) -> list[str]:
    # The questions call the images "the reference image", "the evaluated image" or "Image A"
    # / "Image B"; each placeholder line says which image it is. A lone image needs no label.
    compare = rec.get("image_B") is not None
    labels = []
    if rec.get("image_ref") is not None:
        labels.append("Reference image")
    labels.append("Image A" if compare else "Evaluated image")
    if compare:
        labels.append("Image B")
    return labels


def _with_placeholders(question: str, rec: dict[str, Any]) -> str:
    labels = _image_labels(rec)
    if len(labels) == 1:
        return f"{IMAGE_TOKEN}\n{question}"
    return "".join(f"{label}: {IMAGE_TOKEN}\n" for label in labels) + question


def _strip_placeholders(text: str) -> str:
    lines = text.split("\n")
    while lines and IMAGE_TOKEN in lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def to_llava(rec: dict[str, Any]) -> dict[str, Any]:
    """LLaVA conversation record of a DepictQA record (train or test form)."""
    question, answer = _qa(rec)
    images = _images(rec)
    out = {"id": rec["id"], "image": images, "task_type": rec["task_type"],
           "conversations": [{"from": "human", "value": _with_placeholders(question, rec)},
                             {"from": "gpt", "value": answer}]}
    if "answer" in rec:
        out["answer"] = rec["answer"]
    return out


def from_llava(rec: dict[str, Any]) -> dict[str, str | list[str]]:
    """Question, answer and images of a LLaVA record (for round-trip checks and readers)."""
    return {"id": rec["id"], "question": _strip_placeholders(rec["conversations"][0]["value"]),
            "answer": rec["conversations"][1]["value"], "images": list(rec["image"])}


def to_sharegpt(rec: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT (LLaMA-Factory multimodal) record of a DepictQA record."""
    question, answer = _qa(rec)
    images = _images(rec)
    # LLaMA-Factory's "<image>" tokens are matched to `images` in order; no newline needed,
    # but one per line reads better and tokenises the same for its templates.
    return {"messages": [{"role": "user", "content": _with_placeholders(question, rec)},
                         {"role": "assistant", "content": answer}],
            "images": images, "id": rec["id"], "task_type": rec["task_type"]}


def from_sharegpt(rec: dict[str, Any]) -> dict[str, str | list[str]]:
    """Question, answer and images of a ShareGPT record."""
    user = next(m for m in rec["messages"] if m["role"] == "user")
    assistant = next(m for m in rec["messages"] if m["role"] == "assistant")
    return {"id": rec.get("id", ""), "question": _strip_placeholders(user["content"]),
            "answer": assistant["content"], "images": list(rec["images"])}


def _dataset_info_entry(file_name: str) -> dict[str, Any]:
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content",
                     "user_tag": "user", "assistant_tag": "assistant"}}


def _write_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - pyarrow is in the export/dev extras
        msg = "the parquet export needs pyarrow: pip install 'dqgen[export]'"
        raise ImportError(msg) from err
    rows = []
    for rec in records:
        question, answer = _qa(rec)
        rows.append({"id": rec["id"], "image_ref": rec["image_ref"], "image_A": rec["image_A"],
                     "image_B": rec["image_B"], "task_type": rec["task_type"],
                     "question": question, "answer": answer,
                     "provenance": json.dumps({k: v for k, v in rec.items() if k not in _CORE},
                                              ensure_ascii=False)})
    schema = pa.schema([(n, pa.string()) for n in ("id", "image_ref", "image_A", "image_B",
                                                    "task_type", "question", "answer",
                                                    "provenance")])
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def export_tasks(store: Store, fmt: str, *, dest: Path | None = None,
                 tasks: Iterable[str] | None = None, validate: bool = True) -> dict[str, Any]:
    """Export every task file of the dataset in `fmt` (idempotent: files are rewritten).

    Args:
        store: the dataset folder (task files already assembled).
        fmt: one of FORMATS.
        dest: output folder (default: <dataset>/exports/<fmt>; for depictqa: tasks/ itself,
            nothing is copied unless another folder is given).
        tasks: restrict to these task names.
        validate: check every source record against pipeline.schema first.

    Returns:
        {"format", "dest", "files": {relative file: records}, "records": total}.

    Raises:
        ValueError: unknown format, or no task files to export.
        ImportError: parquet without pyarrow.
    """
    if fmt not in FORMATS:
        msg = f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}"
        raise ValueError(msg)
    files = task_files(store, tasks)
    if not files:
        msg = f"{store.root}: no task files under tasks/ (run `dqgen assemble` first)"
        raise ValueError(msg)
    if fmt == "depictqa" and dest is None:
        out_dir = store.root / "tasks"
    else:
        out_dir = Path(dest) if dest is not None else store.root / "exports" / fmt
    written: dict[str, int] = {}
    dataset_info: dict[str, Any] = {}
    for task, split, path in files:
        n = [0]

        def records(path: Path = path, split: str = split, n: list[int] = n
                    ) -> Iterator[dict[str, Any]]:
            # streamed: a task file is never held whole (parquet collects its records)
            for rec in iter_task_file(path):
                if validate:
                    validate_task_record(rec, split)
                n[0] += 1
                yield rec

        if fmt == "depictqa":
            target = out_dir / task / f"{split}.json"
            for _ in records():  # validate and count
                pass
            if target.resolve() != path.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        elif fmt == "jsonl":
            target = out_dir / task / f"{split}.jsonl"
            atomic_write_jsonl(target, records())
        elif fmt == "llava":
            target = out_dir / task / f"{split}.json"
            dump_task_file(target, (to_llava(r) for r in records()))
        elif fmt == "sharegpt":
            target = out_dir / f"{task}_{split}.json"
            dump_task_file(target, (to_sharegpt(r) for r in records()))
            dataset_info[f"dqgen_{task}_{split}"] = _dataset_info_entry(target.name)
        else:
            target = out_dir / task / f"{split}.parquet"
            _write_parquet(target, list(records()))
        written[target.relative_to(out_dir).as_posix()] = n[0]
    if fmt == "sharegpt":
        atomic_write_json(out_dir / "dataset_info.json", dataset_info)
    return {"format": fmt, "dest": str(out_dir), "files": written,
            "records": sum(written.values())}
