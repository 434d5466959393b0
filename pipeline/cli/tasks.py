"""dqgen commands of the task stage: `assemble`, `export`, `report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipeline.cli._app import (
    JSON_HELP, app, console, dataset_dir, emit, fail, load_manifest_or_demo, owned, split_list,
)
from pipeline.manifest import EXPORT_FORMATS as _EXPORT_FORMATS

__all__ = ["assemble", "export", "report"]


def _manifest_from_lock(root: Path) -> Any:
    """The manifest recorded in DIR/manifest.lock.json, or None."""
    from pydantic import ValidationError

    from pipeline.manifest import Manifest

    lock = root / "manifest.lock.json"
    if not lock.is_file():
        return None
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
        return Manifest.model_validate(data.get("manifest", {}))
    except (OSError, json.JSONDecodeError, ValidationError, AttributeError):
        return None


@app.command("assemble")
def assemble(
    manifest: Path = typer.Argument(None, help="Build manifest (YAML). Default: the embedded "
                                    "demo, data_manifest/demo.yaml.", show_default=False),
    out: Path = typer.Option(None, "--out", "-o", help="Dataset folder (default: the manifest's "
                             "`output`)."),
    kinds: list[str] = typer.Option(None, "--kinds", "-k", help="Sample kinds to read (repeat or "
                                    "comma-separate). Default: all in the manifest."),
    splits: list[str] = typer.Option(None, "--splits", "-s", help="Splits to write. Default: all."),
    tasks: list[str] = typer.Option(None, "--tasks", help="Task names to write, e.g. "
                                    "A_brief_sd. Default: all fourteen."),
    export_formats: list[str] = typer.Option(None, "--export", help="Also export in these "
                                             "formats (depictqa, jsonl, llava, "
                                             "llava-onevision, sharegpt, parquet, "
                                             "deqa-score, qinsight; docs/exports.md)."),
    responder_key: str = typer.Option(None, "--responder-key",
                                      help="Which `responses/<key>/` feeds the detail tasks, "
                                      "e.g. template or openai--gpt-4o (default: the "
                                      "manifest's responder; sets tasks.responder_key).",
                                      show_default=False),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write the DepictQA task files `tasks/<task>/<split>.json`.

    Brief identification: from the ground truth. Brief comparison:
    judge verdicts and the human-labelled pairs in pairs/. Detail:
    the manifest's responder; no-reference answers are rewritten, and
    any that still mention a reference are dropped and counted.
    """
    from pipeline.assemble import assemble_tasks
    from pipeline.export import export_tasks
    from pipeline.store import Store

    m = load_manifest_or_demo(manifest)
    store = Store(out.expanduser().resolve() if out is not None else m.output_dir())
    exported: list[tuple[str, dict[str, Any]]] = []
    if not (store.root / "samples").is_dir() and not (store.root / "pairs").is_dir():
        fail(f"{store.root}: no samples/ or pairs/ here; run `dqgen build` first")
    bad = [f for f in split_list(export_formats) or [] if f not in _EXPORT_FORMATS]
    if bad:
        fail(f"unknown export format(s) {', '.join(bad)}; known: {', '.join(_EXPORT_FORMATS)}")
    if responder_key is not None:
        if not (store.root / "responses" / responder_key).is_dir():
            known = sorted(p.name for p in (store.root / "responses").glob("*/") if p.is_dir())
            fail(f"{store.root / 'responses' / responder_key}: no such responses folder "
                 f"(present: {', '.join(known) or 'none'})")
        m = m.model_copy(update={"tasks": m.tasks.model_copy(
            update={"responder_key": responder_key})})
    try:
        with owned(store.root, "assemble"):
            summary = assemble_tasks(m, store, kinds=split_list(kinds),
                                     splits=split_list(splits), tasks=split_list(tasks))
            for fmt in split_list(export_formats) or []:
                exported.append((fmt, export_tasks(store, fmt,
                                                   options=m.tasks.export_options)))
    except (ValueError, ImportError) as err:
        fail(str(err))
    table = Table(title=f"task files in {store.root / 'tasks'}", title_justify="left")
    splits_seen = sorted({s for v in summary["tasks"].values() for s in v},
                         key=lambda s: (s != "train", s))
    table.add_column("task")
    for s in splits_seen:
        table.add_column(s, justify="right")
    for task, per_split in summary["tasks"].items():
        table.add_row(task, *(str(per_split.get(s, "")) for s in splits_seen))
    emit(table, summary, as_json)
    for label in ("skipped", "dropped", "filtered"):
        if summary[label]:
            items = ", ".join(f"{k} {v}" for k, v in sorted(summary[label].items()))
            console.print(f"{label}: {items}", highlight=False)
    for fmt, result in exported:
        console.print(f"exported {result['records']} records as {fmt} to {result['dest']}",
                      highlight=False)
        _print_export_notes(result)


def _print_export_notes(result: dict[str, Any]) -> None:
    from pipeline.exporters.llava import REFUSED_HINT

    if result.get("refused"):
        console.print(f"{result['format']}: not written (several images per record): "
                      f"{', '.join(result['refused'])}; {REFUSED_HINT}", highlight=False)
    for reason, n in sorted(result.get("skipped", {}).items()):
        console.print(f"{result['format']}: skipped {n}: {reason}", highlight=False)


def _export_options(root: Path, manifest: Path | None, compose: str | None,
                    categories: list[str] | None, density: list[str] | None) -> Any:
    """The manifest's tasks.export_options (given, or the lock's), with the flags on top."""
    from pipeline.manifest import DeqaSourceConfig, ExportOptions

    m = load_manifest_or_demo(manifest) if manifest is not None else _manifest_from_lock(root)
    opts = m.tasks.export_options if m is not None else ExportOptions()
    update: dict[str, Any] = {}
    if compose is not None:
        if compose not in ("side-by-side", "none"):
            fail(f"--compose: expected side-by-side or none, got {compose!r}")
        update["compose"] = None if compose == "none" else compose
    if categories:
        update["qinsight_categories"] = categories
    if density:
        deqa = dict(opts.deqa_score)
        for item in density:
            name, _, value = item.partition("=")
            if value not in ("pdf", "cdf") or not name:
                fail(f"--density: expected DATASET=pdf or DATASET=cdf, got {item!r}")
            deqa[name] = deqa.get(name, DeqaSourceConfig()).model_copy(
                update={"density": value})
        update["deqa_score"] = deqa
    return opts.model_copy(update=update)


@app.command("export")
def export(
    dataset: Path = typer.Argument(..., help="Dataset folder (with tasks/ assembled)."),
    formats: list[str] = typer.Option(["depictqa"], "--format", "-f", help="depictqa "
                                      "(default; tasks/ itself), jsonl (one schema, "
                                      "HF datasets), llava (LLaVA 1.5), llava-onevision, "
                                      "sharegpt (LLaMA-Factory, with dataset_info.json), "
                                      "parquet, deqa-score (soft labels from labels/), "
                                      "qinsight. Repeat or comma-separate for several."),
    dest: Path = typer.Option(None, "--dest", help="Output folder (default: "
                              "`DATASET/exports/<format>`, `-` written `_`: "
                              "exports/deqa_score; for depictqa: tasks/ itself)."),
    tasks: list[str] = typer.Option(None, "--tasks", help="Only these task names "
                                    "(deqa-score: these label sources)."),
    compose: str = typer.Option(None, "--compose", help="llava: `side-by-side` draws each "
                                "multi-image record as one labelled canvas (written under "
                                "DATASET/exports/llava/images/); default: such tasks are "
                                "not written.", show_default=False),
    categories: list[str] = typer.Option(None, "--categories", help="qinsight: distortion "
                                         "categories of the degradation file (default: "
                                         "noise, compression, blur, darken, the four its "
                                         "prompt names; `all` for every one)."),
    density: list[str] = typer.Option(None, "--density", help="deqa-score/qinsight: "
                                      "DATASET=pdf|cdf for one source (default: "
                                      "DeQA-Score's, cdf for spaq, else pdf)."),
    manifest: Path = typer.Option(None, "--manifest", help="Read tasks.export_options from "
                                  "this manifest (default: the one recorded in "
                                  "DATASET/manifest.lock.json, if any)."),
) -> None:
    """Export the task files in other training formats (image paths stay relative to DATASET).

    Exports are derived data: the same tasks/ and labels/ give the same bytes.
    """
    from pipeline.export import export_tasks
    from pipeline.store import Store

    store = Store(dataset_dir(dataset))
    chosen = split_list(formats) or ["depictqa"]
    bad = [f for f in chosen if f not in _EXPORT_FORMATS]
    if bad:
        fail(f"unknown export format(s) {', '.join(bad)}; known: {', '.join(_EXPORT_FORMATS)}")
    opts = _export_options(store.root, manifest, compose, split_list(categories),
                           split_list(density))
    for fmt in chosen:
        target = None
        if dest is not None:
            target = dest / fmt.replace("-", "_") if len(chosen) > 1 else dest
        try:
            with owned(store.root, "export"):
                result = export_tasks(store, fmt, dest=target, tasks=split_list(tasks),
                                      options=opts)
        except (ValueError, ImportError) as err:
            fail(str(err))
        console.print(f"{fmt}: {result['records']} records in {len(result['files'])} files "
                      f"-> {result['dest']}", highlight=False)
        _print_export_notes(result)


@app.command("report")
def report(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    manifest: Path = typer.Option(None, "--manifest", help="Build manifest (default: the one "
                                  "recorded in DATASET/manifest.lock.json, if any)."),
) -> None:
    """Write DATASET/report/: dataset card (README.md), stats.json, figures, contact sheet."""
    from pipeline.report import write_report
    from pipeline.store import Store

    root = dataset_dir(dataset)
    m = load_manifest_or_demo(manifest) if manifest is not None else _manifest_from_lock(root)
    try:
        with owned(root, "report"):
            result = write_report(m, Store(root))
    except ImportError as err:
        fail(str(err))
    console.print(f"dataset card: {result['card']}", highlight=False)
    console.print(f"contact sheet: {result['contact_sheet']}", highlight=False)
