"""`dqgen distortions`, `dqgen distort`, `dqgen distort-grid`: the distortion library by hand.

Seed rule (shared by `distort` and `distort-grid`): a distortion drawn with `--seed K` uses
`np.random.default_rng(K)`, so `dqgen distort IN OUT --name N --severity S --seed K` writes
exactly `distortions.apply(image, N, S, np.random.default_rng(K))` for the decoded image,
and every cell of `distort-grid` is that call on the resized photo with the same K.

Images are decoded like references are at ingest (`pipeline.ingest.load_reference`: EXIF
orientation applied, any Pillow mode to RGB, decompression-bomb guard, truncated files
refused).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.cli._app import JSON_HELP, app, console, emit, fail

__all__ = ["distort", "distort_grid", "format_params", "list_distortions", "render_grid"]

_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb default, as in the manifest default
_GRID_PAD = 4
_LABEL_W = 250
_HEADER_H = 22


def param_fields(row: Any) -> dict[str, Any] | None:
    """The named fields of one severity's parameters (None for a bare value)."""
    if hasattr(row, "_asdict"):
        return dict(row._asdict())
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, dict):
        return dict(row)
    return None


def format_params(row: Any) -> str:
    """A table row as short text, every value with its field name: `sigma=1`,
    `radius=5 sigma=3`."""
    fields = param_fields(row)
    if fields is None:
        return _fmt(row)
    return " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def _read_image(path: Path) -> np.ndarray:
    from pipeline.ingest import BadReferenceError, load_reference

    if not path.is_file():
        fail(f"cannot read {path}: no such file")
    try:
        image, _, _ = load_reference(path, max_pixels=_MAX_PIXELS)
    except BadReferenceError as err:
        fail(f"cannot read {path}: {err}")
    except OSError as err:  # permissions, I/O errors
        fail(f"cannot read {path}: {err.strerror or err}")
    return image


def _write_image(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    from pipeline.store import atomic_write_bytes

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        fail(f"cannot write {path}: unknown image extension {path.suffix!r} (use .png, .jpg, ...)")
    buf = io.BytesIO()
    try:
        Image.fromarray(image).save(buf, format=fmt)
    except (OSError, KeyError, ValueError) as err:
        fail(f"cannot write {path} as {fmt}: {err}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")


def _check_name(name: str) -> str:
    import distortions

    try:
        return distortions.get(name).name
    except (KeyError, TypeError):
        fail(f"unknown distortion {name!r}; known: {', '.join(distortions.names())}")
    raise AssertionError  # unreachable: fail() exits


def _parse_severity(text: str) -> int:
    # Parsed by hand: Typer's int options take "3.0" as 3, and the library refuses float
    # severities (a float 3.0 once passed the original's check and failed later).
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 5:
        fail(f"--severity must be an int in 1..5, got {text!r}")
    return int(value)


def distortion_rows() -> list[dict[str, Any]]:
    """One dict per distortion: name, category, random, and the named parameters of each
    severity 1..5 (what `dqgen distortions --json` prints)."""
    import distortions

    rows = []
    for name in distortions.names():
        spec = distortions.REGISTRY[name]
        rows.append({"name": name, "category": spec.category, "random": bool(spec.random),
                     "severities": {str(i): (param_fields(row) or {"value": row})
                                    for i, row in enumerate(spec.table, start=1)}})
    return rows


def distortions_markdown() -> str:
    """The parameter table as Markdown (docs/distortions.md embeds it; a test keeps the
    two equal, so the docs follow the code)."""
    lines = ["| name | category | severity 1 | severity 2 | severity 3 | severity 4 | "
             "severity 5 | random |", "|---|---|---|---|---|---|---|---|"]
    for row in distortion_rows():
        cells = [" ".join(f"{k}={_fmt(v)}" for k, v in p.items())
                 for p in row["severities"].values()]
        lines.append(f"| `{row['name']}` | {row['category']} | " + " | ".join(cells)
                     + f" | {'yes' if row['random'] else 'no'} |")
    return "\n".join(lines) + "\n"


@app.command("distortions")
def list_distortions(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    markdown: bool = typer.Option(False, "--markdown",
                                  help="Print the table as Markdown (as in docs/distortions.md)."),
) -> None:
    """List the 35 distortions: category, named parameters per severity 1..5, whether random."""
    import distortions

    if markdown:
        print(distortions_markdown(), end="")
        return
    names = distortions.names()
    n_cats = len({distortions.REGISTRY[n].category for n in names})
    title = f"DQ-495K distortions ({len(names)} in {n_cats} categories)"
    table = Table(title=title, title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("category", no_wrap=True)
    for s in range(1, 6):
        table.add_column(f"sev {s}", justify="right")
    table.add_column("random", justify="center")
    for name in names:
        spec = distortions.REGISTRY[name]
        table.add_row(
            name,
            spec.category,
            *(format_params(row) for row in spec.table),
            "yes" if spec.random else "no",
        )
    emit(table, distortion_rows(), as_json)


@app.command("distort")
def distort(
    src: Path = typer.Argument(
        ..., metavar="IN", help="Input image (any format Pillow reads; converted to RGB)."
    ),
    dst: Path = typer.Argument(
        ..., metavar="OUT", help="Output image; the format follows the extension (.png, .jpg, ...)."
    ),
    name: str = typer.Option(
        ..., "--name", "-n", help="Distortion name (see `dqgen distortions`)."
    ),
    severity: str = typer.Option(
        ...,
        "--severity",
        "-s",
        metavar="1..5",
        help="Severity: an int, 1 (slight) .. 5 (catastrophic).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed: the rng is numpy.random.default_rng(seed)."),
) -> None:
    """Apply one distortion to one image: OUT = apply(IN, name, severity, default_rng(seed))."""
    import distortions

    canonical = _check_name(name)
    level = _parse_severity(severity)
    image = _read_image(src)
    try:
        out, notes = distortions.apply_with_notes(
            image, canonical, level, np.random.default_rng(seed)
        )
    except ValueError as err:
        fail(f"cannot distort {src}: {err}")
    _write_image(out, dst)
    for text in notes:
        console.print(f"[yellow]note:[/] {text}", highlight=False)
    console.print(f"wrote {dst} ({canonical}, severity {level}, seed {seed})", highlight=False)


def render_grid(image: np.ndarray, seed: int, progress: Progress | None = None) -> np.ndarray:
    """Contact sheet: one row per distortion, columns original + severities 1..5, labelled.

    Cell (name, s) is `distortions.apply(image, name, s, np.random.default_rng(seed))`.
    """
    from PIL import Image, ImageDraw

    import distortions
    from pipeline.drawing import font as ui_font

    names = distortions.names()
    h, w = image.shape[:2]
    cell_w, cell_h = w + _GRID_PAD, h + _GRID_PAD
    sheet = Image.new("RGB", (_LABEL_W + 6 * cell_w, _HEADER_H + len(names) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = ui_font(13), ui_font(11)
    for col, title in enumerate(
        ["original"] + [f"{s}: {distortions.grade_word(s)}" for s in range(1, 6)]
    ):
        draw.text((_LABEL_W + col * cell_w + 2, 4), title, fill="black", font=font)
    task = progress.add_task("distort-grid", total=len(names) * 5) if progress else None
    for row, name in enumerate(names):
        spec = distortions.REGISTRY[name]
        y = _HEADER_H + row * cell_h
        draw.text((4, y + h // 2 - 16), name, fill="black", font=font)
        draw.text((4, y + h // 2 + 2), spec.category, fill=(90, 90, 90), font=small)
        sheet.paste(Image.fromarray(image), (_LABEL_W, y))
        for s in range(1, 6):
            out = distortions.apply(image, name, s, np.random.default_rng(seed))
            x = _LABEL_W + s * cell_w
            sheet.paste(Image.fromarray(out), (x, y))
            # severity badge in the cell corner, readable on any content
            label = f"{s}"
            draw.rectangle((x, y, x + 14, y + 15), fill="black")
            draw.text((x + 3, y + 1), label, fill="white", font=small)
            if progress is not None and task is not None:
                progress.advance(task)
    return np.asarray(sheet, dtype=np.uint8)


@app.command("distort-grid")
def distort_grid(
    src: Path = typer.Argument(..., metavar="IN", help="Input photo (any format Pillow reads)."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output contact sheet (.png recommended)."),
    short_side: int = typer.Option(
        128,
        "--short-side",
        min=32,
        max=1024,
        help="Scale the photo (bicubic, downscale only) so its short side is at most this.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of every cell: numpy.random.default_rng(seed)."
    ),
) -> None:
    """Contact sheet of every distortion x severity on one photo (rows: the 35 distortions;
    columns: original, severities 1..5), labelled with name, category and severity."""
    from pipeline.ingest import resize_short_side

    image = resize_short_side(_read_image(src), short_side)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        sheet = render_grid(image, seed, progress)
    _write_image(sheet, dst)
    rows = (sheet.shape[0] - _HEADER_H) // (image.shape[0] + _GRID_PAD)
    console.print(
        f"wrote {dst}: {sheet.shape[1]} x {sheet.shape[0]} px, {rows} distortions x "
        f"(original + 5 severities) on a {image.shape[1]} x {image.shape[0]} photo",
        highlight=False,
    )
