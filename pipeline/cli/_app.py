"""The Typer application shared by the command modules of `pipeline.cli`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["app", "console", "fail", "load_manifest_or_demo", "os_error_line", "owned",
           "split_list"]

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
console = Console(stderr=True)


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
