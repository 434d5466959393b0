"""The Typer application shared by the command modules of `pipeline.cli`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["app", "console", "fail"]

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


@app.command("version")
def version() -> None:
    """Print the dqgen version."""
    from pipeline import __version__

    print(__version__)
