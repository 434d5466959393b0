"""The Typer application shared by the command modules of `pipeline.cli`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape

__all__ = ["JSON_HELP", "app", "console", "dataset_dir", "emit", "fail",
           "load_manifest_or_demo", "os_error_line", "owned", "split_list", "stdout_console"]

JSON_HELP = "Print the result as JSON on stdout instead of a table."

app = typer.Typer(
    name="dqgen",
    help="Build descriptive image-quality-assessment datasets (DQ-495K style): distort "
    "reference photos, describe them with an MLLM, write DepictQA task files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown: docstring paragraphs reflow to the terminal width (rich mode kept their
    # line breaks and wrapped each line again); `code` spans render as code.
    rich_markup_mode="markdown",
)
# Output streams, one rule for every command: results (tables, JSON) go to stdout;
# progress bars, notes, warnings and errors go to stderr (`console`), so
# `dqgen build ... > summary.txt` keeps the summary and a pipe reads only results.
# In a pipe or a file a note stays on one line (no wrap at 80 columns, greppable).
console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def stdout_console() -> Console:
    """The console for results. In a terminal it wraps to the terminal's width; in a pipe
    or a file tables are printed whole (no 80-column cut, no ellipsis), one row a line."""
    if sys.stdout.isatty():
        return Console()
    return Console(file=sys.stdout, width=10_000, no_color=True, highlight=False)


def emit(renderable: RenderableType, data: Any, as_json: bool) -> None:
    """Print a command's result: `data` as JSON (with --json) or `renderable` (a Rich
    table), both on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
    else:
        stdout_console().print(renderable)


def fail(message: str, code: int = 2) -> None:
    """Print a clear error and exit with `code` (no traceback for user errors)."""
    # soft_wrap: a long path stays on one line (copy-pastable, greppable); escape: a path
    # or message holding "[...]" is printed as is, not read as Rich markup.
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


_RESUMES = "run the same command again: it resumes where it stopped (nothing written is lost)"


def os_error_line(err: OSError) -> str | None:
    """One line for an environment error a user can fix (disk full, no permission, a
    read-only file system), or None for anything else (a bug: keep the traceback)."""
    import errno

    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}: free some space and {_RESUMES}"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}: fix the permissions and {_RESUMES}"
    if err.errno == errno.EROFS:
        return f"read-only file system{where}; choose a writable output folder (--out)"
    return None


@contextmanager
def owned(folder: Path, command: str) -> Iterator[None]:
    """Hold the dataset folder's ownership lock (pipeline/ownership.py) for the block; a
    folder another live process owns is the standard one-line error (exit 2)."""
    from pipeline.ownership import FolderBusyError, own_folder

    with ExitStack() as stack:
        try:
            stack.enter_context(own_folder(folder, command))
        except (FolderBusyError, OSError) as err:
            fail(str(err))
        yield


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Show Prefect's own log lines (each flow and task run) on the console. They "
        "always reach the Prefect UI; without -v the console shows dqgen's progress and "
        "summary, and Prefect's warnings and errors.",
    ),
) -> None:
    """Build descriptive image-quality-assessment datasets (DQ-495K style)."""
    # Read by Prefect when it sets up logging (its first import, inside the commands):
    # only the console handler is quieted, the API handler (the UI) keeps every line. A
    # value the user set wins; `serve` keeps the run logs, its console is the server's.
    if "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL" not in os.environ:
        if not verbose and ctx.invoked_subcommand != "serve":
            os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"


DATASET_MARKERS = ("manifest.lock.json", "references.jsonl", "samples", "labels", "tasks")


def dataset_dir(path: Path) -> Path:
    """`path` if it is a dqgen dataset folder (one of DATASET_MARKERS inside), else the
    standard one-line error. Every command that takes a dataset folder checks it here."""
    if not path.is_dir():
        fail(f"{path}: not a dataset folder (no such folder)")
    if not any((path / marker).exists() for marker in DATASET_MARKERS):
        fail(f"{path}: not a dataset folder (none of {', '.join(DATASET_MARKERS)} in it; "
             "build one with `dqgen build`)")
    return path


def with_overrides(config: Any, what: str = "option", **values: Any) -> Any:
    """`config` (a pydantic settings model) with the command-line values that were given
    (None: not given) put over it, validated; a bad value is the one-line error."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return config.model_validate({**config.model_dump(), **given})
    except ValueError as err:
        fail(f"invalid {what}: {err}")


def split_list(values: list[str] | None) -> list[str] | None:
    """Accept both `--kinds a --kinds b` and `--kinds a,b` (None when nothing was given)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def load_manifest_or_demo(path: Path | None) -> Any:
    """The manifest at `path`, or the embedded demo (data_manifest/demo.yaml) when None;
    a ManifestError becomes the standard one-line error (exit 2)."""
    from pipeline.manifest import ManifestError, load_demo_manifest, load_manifest

    try:
        return load_demo_manifest() if path is None else load_manifest(path)
    except ManifestError as err:
        fail(str(err))


@app.command("version")
def version() -> None:
    """Print the dqgen version."""
    from pipeline import __version__

    print(__version__)


def _house_style() -> None:
    """One help style for every command (typer's defaults mix `<bool>`, `<list[str]>` and
    `{manifest}`): flags show no type, values show one upper-case word (PATH, INTEGER,
    TEXT, LIST, FLOAT or the choices), arguments are upper case in the usage line
    (`MANIFEST` when required, `[MANIFEST]` when optional), as click writes them."""
    from typer import core

    def value_word(param: Any, ctx: Any) -> str | None:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            return None
        if param.metavar is not None:
            return param.metavar
        label = core._TyperParameter.display_type(param, ctx).strip("<>")
        if label.startswith("list["):
            return "LIST"
        if label.endswith(" range"):
            label = label[: -len(" range")]
        words = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "bool": "BOOLEAN",
                 "path": "PATH", "file": "FILE", "directory": "DIR"}
        return words.get(label, label)

    def argument_name(self: Any) -> str:
        return self.metavar if self.metavar is not None else self.name.upper()

    def usage_name(self: Any) -> str:
        name = argument_name(self)
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    if hasattr(core, "_TyperParameter") and hasattr(core._TyperParameter, "display_type"):
        core.TyperOption.display_type_rich = value_word  # type: ignore[method-assign]
        core.TyperArgument.display_type_rich = value_word  # type: ignore[method-assign]
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument.display_name_raw = property(argument_name)  # type: ignore[assignment]
        core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


_house_style()
