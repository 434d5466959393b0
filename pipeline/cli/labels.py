"""dqgen commands of the human-labelled datasets: `labels list`, `labels check`, `labels build`."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from pipeline.cli._app import JSON_HELP, app, console, emit, fail, split_list

__all__ = ["labels_app", "labels_help"]


def labels_help() -> str:
    """The `dqgen labels` help text, listing every dataset of the adapter registry."""
    from pipeline.labels import ADAPTERS, adapter_names

    titles = ", ".join(ADAPTERS[name].title for name in adapter_names())
    return (f"Human-labelled IQA datasets ({titles}): read their label files, build splits "
            f"and instant-rating pairs.")


class _LabelsGroup(TyperGroup):
    """`dqgen labels`: help text built from the registry when shown (no import cost at start)."""

    @property  # type: ignore[override]
    def help(self) -> str:
        return labels_help()

    @help.setter
    def help(self, _value: str | None) -> None:  # click sets it in __init__; it is derived
        pass


labels_app = typer.Typer(cls=_LabelsGroup, no_args_is_help=True)
app.add_typer(labels_app, name="labels")


@labels_app.command("list")
def list_datasets(
    layout: bool = typer.Option(
        False, "--layout", help="Also show the folder layout each expects."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the supported datasets with their kind, default split rule, margin and pair cap."""
    from pipeline.labels import ADAPTERS, adapter_names

    table = Table(title="human-labelled datasets", title_justify="left")
    table.add_column("name", no_wrap=True, min_width=11)  # the name users type: never cut
    for col in ("dataset", "kind", "split", "margin", "max pairs", "normalisation"):
        table.add_column(col)
    if layout:
        table.add_column("layout under the root")
    for name in adapter_names():
        spec = ADAPTERS[name]
        row = [
            name,
            spec.title,
            spec.kind,
            spec.split,
            f"{spec.margin:g}",
            str(spec.max_pairs),
            spec.rule,
        ]
        table.add_row(*row, *([spec.layout] if layout else []))
    data = [{"name": name, "dataset": ADAPTERS[name].title, "kind": ADAPTERS[name].kind,
             "split": ADAPTERS[name].split, "margin": ADAPTERS[name].margin,
             "max_pairs": ADAPTERS[name].max_pairs, "normalisation": ADAPTERS[name].rule,
             "layout": ADAPTERS[name].layout} for name in adapter_names()]
    emit(table, data, as_json)


@labels_app.command("check")
def check(
    dataset: str = typer.Argument(..., help="Dataset name (see `dqgen labels list`)."),
    root: Path = typer.Argument(..., help="The dataset's root folder, as downloaded."),
    show: int = typer.Option(10, "--show", min=0, help="How many failures to print."),
) -> None:
    """Read a dataset folder without writing anything: counts, score range and bad rows."""
    from pipeline.labels import UnknownDatasetError, get_adapter
    from pipeline.labels._io import DatasetLayoutError

    try:
        spec = get_adapter(dataset)
    except UnknownDatasetError as err:
        fail(str(err))
    if not root.is_dir():
        fail(f"{root}: not a folder")
    try:
        data = spec.read(root)
    except (DatasetLayoutError, OSError, ImportError) as err:
        fail(str(err))
    console.print(f"[bold]{spec.title}[/] ({spec.name}) at {root}", highlight=False)
    console.print(
        f"images: {len(data.images)}   published pairs: {len(data.pairs)}   "
        f"failures: {len(data.failures)}",
        highlight=False,
    )
    if data.images:
        scores = [im.score for im in data.images]
        console.print(
            f"normalised score: min {min(scores):.3f}, max {max(scores):.3f}; "
            f"rule: {data.images[0].rule}",
            highlight=False,
        )
        splits = Counter(im.split or "(none)" for im in data.images)
        console.print(f"official split: {dict(splits)}", highlight=False)
    for note in data.notes:
        console.print(f"note: {note}", highlight=False)
    for f in data.failures[:show]:
        console.print(f"[yellow]{f.error_type}[/]: {f.message}", highlight=False)
    if len(data.failures) > show:
        console.print(f"... and {len(data.failures) - show} more", highlight=False)


@labels_app.command("build")
def build(
    manifest: Path = typer.Argument(..., help="Build manifest (YAML) with a `sources:` list."),
    datasets: list[str] = typer.Option(
        None, "--datasets", "-d", help="Only these sources (repeat or comma-separate)."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        show_default=False,
        help="Dataset folder (default: the manifest's `output`).",
    ),
    tasks: bool = typer.Option(
        True, "--tasks/--no-tasks",
        help="Also write the refAB_brief / AB_brief and label task files (docs/label-tasks.md).",
    ),
    folds: int = typer.Option(
        None, "--folds", "--repeat", min=0, show_default=False,
        help="Write the first K repeated prompt-grouped splits as tasks/TASK/foldK/ "
        "(default: the manifest's tasks.labels.folds).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read a manifest's human-labelled sources: records, splits, pairs, brief comparison tasks.

    Writes `labels/<dataset>/` and `pairs/<dataset>/`, then (unless --no-tasks) the refAB_brief
    and AB_brief task files. Bad rows are listed in failures/labels.jsonl; the build goes on
    with the rest.
    """
    from pipeline.labels import UnknownDatasetError
    from pipeline.labels.build import build_labels
    from pipeline.manifest import ManifestError, load_manifest
    from pipeline.store import Store

    try:
        m = load_manifest(manifest)
    except ManifestError as err:
        fail(str(err))
    if not m.sources:
        fail(f"{manifest}: no `sources:` in the manifest (see `dqgen labels list`)")
    store = Store(out.expanduser().resolve() if out is not None else m.output_dir())
    started = time.perf_counter()
    try:
        with console.status("reading label files") as status:
            result = build_labels(
                m,
                store,
                datasets=split_list(datasets),
                on_source=lambda name, _s: status.update(f"read {name}"),
            )
    except UnknownDatasetError as err:
        fail(str(err))
    table = Table(title=f"dqgen labels build {m.name}", title_justify="left")
    for col in ("dataset", "images", "splits", "pairs", "margin", "failures"):
        table.add_column(col)
    for name, s in result["sources"].items():
        if "error" in s:
            table.add_row(name, "-", "-", "-", "-", f"[red]{s['error']}[/]")
            continue
        table.add_row(
            name,
            str(s["images"]),
            _fmt(s["images_per_split"]),
            _fmt(s["pairs"]),
            f"{s['margin']:g}",
            _fmt(s["failures"]) or "0",
        )
    emit(table, result, as_json)
    if tasks:
        from pipeline.assemble import LABEL_TASK_NAMES, assemble_tasks

        if folds is not None:
            labels_cfg = m.tasks.labels.model_copy(update={"folds": folds})
            m = m.model_copy(update={"tasks": m.tasks.model_copy(update={"labels": labels_cfg})})

        summary: dict[str, Any] = assemble_tasks(
            m, store, tasks=["refAB_brief", "AB_brief", *LABEL_TASK_NAMES])
        for task, per_split in summary["tasks"].items():
            console.print(f"{task}: {_fmt(per_split)}", highlight=False)
    if result["failures"]:
        console.print(
            f"[yellow]{result['failures']} labels failure(s)[/]: see "
            f"{store.failures_path('labels')}",
            highlight=False,
        )
    console.print(
        f"[green]done[/] in {time.perf_counter() - started:.1f} s: {store.root}", highlight=False
    )


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
