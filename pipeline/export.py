"""Exports of the task files: DepictQA JSON, JSON Lines, LLaVA 1.5 / OneVision, ShareGPT
(LLaMA-Factory), Parquet, DeQA-Score soft labels, Q-Insight RL files (docs/exports.md).

The DepictQA JSON files in ``tasks/<task>/<split>.json`` (and ``tasks/<task>/fold<k>/``)
are the canonical output; every export is derived from them (DeQA-Score from labels/) and
can be rebuilt at any time. Image paths stay relative to the dataset root in every format
(point the trainer's image folder at the dataset root).

===============  =========================================  ==============================
format           files (under exports/<format>/ by default)  record
===============  =========================================  ==============================
depictqa         tasks/<task>/<split>.json (no copy unless   the spec's record (train:
                 another destination is given)               conversations; test: query)
jsonl            <task>/<split>.jsonl                        one schema for every task and
                                                             split (exporters/jsonl.py)
llava            <task>/<split>.json (+ images/ canvases)    LLaVA 1.5: image a string,
                                                             one "<image>" (exporters/llava)
llava-onevision  <task>/<split>.json                         image list, one "<image>" per
                                                             image
sharegpt         <task>_<split>.json + dataset_info.json     messages [{role, content}],
                                                             images
parquet          <task>/<split>.parquet (needs pyarrow)      flat columns + provenance JSON
deqa-score       <dataset>/<split>.json (from labels/)       DeQA-Score metas
qinsight         dist_/comparison_/score_*.json +            Q-Insight GRPO rows
                 data_config/*.yaml
===============  =========================================  ==============================

LLaVA and ShareGPT have no test form: a test record's query/answer become the two turns;
the answer is also kept as `answer` (LLaVA) so scoring scripts can find it. Placeholders go
first in the user turn, in the order reference, A, B, one line each, labelled when there
is more than one image ("Reference image: <image>", "Image A: <image>", ...), so the
names used by the questions are tied to the images.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.assemble import ALL_TASK_NAMES as TASK_NAMES
from pipeline.assemble import dump_task_file, read_task_file
from pipeline.exporters.jsonl import from_row as from_jsonl
from pipeline.exporters.jsonl import to_row as to_jsonl
from pipeline.exporters.llava import (
    COMPOSE_DIR,
    REFUSED_HINT,
    compose_side_by_side,
    question_answer,
    record_images,
    to_llava15,
    to_llava_onevision,
    with_placeholders,
)
from pipeline.manifest import EXPORT_FORMATS, ExportOptions
from pipeline.schema import IMAGE_TOKEN, validate_task_record
from pipeline.store import Store, atomic_write_bytes, atomic_write_json

__all__ = [
    "FORMATS",
    "export_tasks",
    "from_jsonl",
    "from_llava",
    "from_sharegpt",
    "task_files",
    "to_jsonl",
    "to_llava",
    "to_llava_onevision",
    "to_sharegpt",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = EXPORT_FORMATS
_CORE = ("id", "image_ref", "image_A", "image_B", "task_type", "conversations", "query", "answer")
_NO_TASKS = ("deqa-score",)  # formats that read labels/, not tasks/


def _task_order(task: str) -> tuple[int, str]:
    head = task.split("/", 1)[0]
    return (TASK_NAMES.index(head) if head in TASK_NAMES else len(TASK_NAMES), task)


def task_files(store: Store, tasks: Iterable[str] | None = None) -> list[tuple[str, str, Path]]:
    """(task, split, path) of every task file present, in task order then split name.

    A task is a folder under tasks/ holding `<split>.json` files: `refA_brief_sd`, or a
    nested one such as `A_score/fold0`; `tasks` matches a task or its first folder.
    """
    root = store.root / "tasks"
    if not root.is_dir():
        return []
    wanted = set(tasks) if tasks is not None else None
    by_task: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.json")):
        if path.parent == root or path.name.startswith("."):
            continue  # tasks/summary.json, temp files
        task = path.parent.relative_to(root).as_posix()
        if wanted is not None and task not in wanted and task.split("/", 1)[0] not in wanted:
            continue
        by_task.setdefault(task, []).append(path)
    return [(task, p.stem, p) for task in sorted(by_task, key=_task_order)
            for p in by_task[task]]


def _strip_placeholders(text: str) -> str:
    lines = text.split("\n")
    while lines and IMAGE_TOKEN in lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def to_llava(rec: dict[str, Any], composed: str | None = None) -> dict[str, Any]:
    """LLaVA 1.5 record of a DepictQA record (exporters/llava.py `to_llava15`)."""
    return to_llava15(rec, composed)


def from_llava(rec: dict[str, Any]) -> dict[str, str | list[str]]:
    """Question, answer and images of a LLaVA 1.5 or OneVision record (round-trip checks)."""
    question = _strip_placeholders(rec["conversations"][0]["value"])
    if "panels" in rec:  # a composed canvas: the legend line goes too
        question = question.split("\n", 1)[1]
        images = [p["image"] for p in rec["panels"]]
    else:
        images = [rec["image"]] if isinstance(rec["image"], str) else list(rec["image"])
    return {"id": rec["id"], "question": question, "answer": rec["conversations"][1]["value"],
            "images": images}


def to_sharegpt(rec: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT (LLaMA-Factory multimodal) record of a DepictQA record."""
    question, answer = question_answer(rec)
    # LLaMA-Factory's "<image>" tokens are matched to `images` in order; no newline needed,
    # but one per line reads better and tokenises the same for its templates.
    return {"messages": [{"role": "user", "content": with_placeholders(question, rec)},
                         {"role": "assistant", "content": answer}],
            "images": record_images(rec), "id": rec["id"], "task_type": rec["task_type"]}


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
        question, answer = question_answer(rec)
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


def _llava15_records(store: Store, task: str, records: list[dict[str, Any]],
                     compose: str | None, skipped: Counter[str],
                     canvases: set[str]) -> list[dict[str, Any]] | None:
    """LLaVA 1.5 records of one task file; None when the task is refused (multi-image)."""
    if compose is None:
        if any(len(record_images(r)) != 1 for r in records):
            return None
        return [to_llava15(r) for r in records]
    out = []
    for rec in records:
        if len(record_images(rec)) == 1:
            out.append(to_llava15(rec))
            continue
        try:
            canvas = compose_side_by_side(store.root, rec)
        except (OSError, ValueError) as err:  # missing or unreadable image: skip, counted
            log.warning("%s: %s: no canvas: %s", task, rec["id"], err)
            skipped[f"{task}: image unreadable, record skipped"] += 1
            continue
        canvases.add(canvas)
        out.append(to_llava15(rec, canvas))
    return out


def _prune_canvases(store: Store, keep: set[str]) -> None:
    folder = store.root / COMPOSE_DIR
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        if store.rel(path) not in keep:
            path.unlink()


def export_tasks(store: Store, fmt: str, *, dest: Path | None = None,
                 tasks: Iterable[str] | None = None, validate: bool = True,
                 options: ExportOptions | None = None) -> dict[str, Any]:
    """Export every task file of the dataset in `fmt` (idempotent: files are rewritten).

    Args:
        store: the dataset folder (task files already assembled; deqa-score: labels/).
        fmt: one of FORMATS.
        dest: output folder (default: <dataset>/exports/<fmt with _ for ->; for depictqa:
            tasks/ itself, nothing is copied unless another folder is given).
        tasks: restrict to these task names (deqa-score: these label sources).
        validate: check every source record against pipeline.schema first.
        options: compose, DeQA-Score and Q-Insight settings (manifest tasks.export_options).

    Returns:
        {"format", "dest", "files": {relative file: records}, "records": total,
        "skipped": {reason: n}, "refused": [tasks llava did not write]}.

    Raises:
        ValueError: unknown format, nothing to export, or every task refused.
        ImportError: parquet without pyarrow.
    """
    if fmt not in FORMATS:
        msg = f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}"
        raise ValueError(msg)
    opts = options or ExportOptions()
    if fmt == "depictqa" and dest is None:
        out_dir = store.root / "tasks"
    else:
        out_dir = Path(dest) if dest is not None else store.root / "exports" / fmt.replace("-", "_")
    if fmt == "deqa-score":
        from pipeline.exporters.deqa_score import export_deqa_score

        res = export_deqa_score(store, out_dir, opts.deqa_score,
                                datasets=list(tasks) if tasks is not None else None)
        return {"format": fmt, "dest": str(out_dir), "files": res["files"],
                "records": sum(res["files"].values()), "skipped": res["skipped"],
                "refused": []}
    files = task_files(store, tasks)
    if not files:
        msg = f"{store.root}: no task files under tasks/ (run `dqgen assemble` first)"
        raise ValueError(msg)
    written: dict[str, int] = {}
    dataset_info: dict[str, Any] = {}
    skipped: Counter[str] = Counter()
    refused: list[str] = []
    canvases: set[str] = set()
    loaded: list[tuple[str, str, list[dict[str, Any]]]] = []
    for task, split, path in files:
        records = read_task_file(path)
        if validate:
            for rec in records:
                validate_task_record(rec, split)
        if fmt == "qinsight":
            loaded.append((task, split, records))
            continue
        if fmt == "depictqa":
            target = out_dir / task / f"{split}.json"
            if target.resolve() != path.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        elif fmt == "jsonl":
            target = out_dir / task / f"{split}.jsonl"
            text = "".join(json.dumps(to_jsonl(r, task, split), ensure_ascii=False) + "\n"
                           for r in records)
            atomic_write_bytes(target, text.encode("utf-8"))
        elif fmt == "llava":
            rows = _llava15_records(store, task, records, opts.compose, skipped, canvases)
            if rows is None:
                if task not in refused:
                    refused.append(task)
                continue
            target = out_dir / task / f"{split}.json"
            dump_task_file(target, rows)
        elif fmt == "llava-onevision":
            target = out_dir / task / f"{split}.json"
            dump_task_file(target, [to_llava_onevision(r) for r in records])
        elif fmt == "sharegpt":
            stem = task.replace("/", "_")
            target = out_dir / f"{stem}_{split}.json"
            dump_task_file(target, [to_sharegpt(r) for r in records])
            dataset_info[f"dqgen_{stem}_{split}"] = _dataset_info_entry(target.name)
        else:
            target = out_dir / task / f"{split}.parquet"
            _write_parquet(target, records)
        written[target.relative_to(out_dir).as_posix()] = len(records)
    if fmt == "qinsight":
        from pipeline.exporters.qinsight import export_qinsight

        res = export_qinsight(store, out_dir, loaded, categories=opts.qinsight_categories,
                              deqa=opts.deqa_score, data_root=opts.qinsight_data_root)
        written, skipped = res["files"], Counter(res["skipped"])
    if fmt == "sharegpt":
        atomic_write_json(out_dir / "dataset_info.json", dataset_info)
    if fmt == "jsonl":
        from pipeline.exporters.jsonl import dataset_card

        card = dataset_card([(t, s) for t, s, _ in files], "dqgen dataset")
        atomic_write_bytes(out_dir / "README.md", card.encode("utf-8"))
    if fmt == "llava" and opts.compose is not None and tasks is None:
        _prune_canvases(store, canvases)  # a full export: canvases no record uses go
    if refused and not written:
        msg = f"{store.root}: every task file has several images per record; {REFUSED_HINT}"
        raise ValueError(msg)
    return {"format": fmt, "dest": str(out_dir), "files": written,
            "records": sum(written.values()), "skipped": dict(skipped), "refused": refused}
