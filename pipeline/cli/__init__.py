"""`dqgen` command line. Each command module registers its commands on the shared app."""

from __future__ import annotations

import os

from rich.markup import escape

from pipeline.cli._app import app, console, os_error_line

# Command modules (importing registers their commands).
from pipeline.cli import build, distort, labels, respond, serve, tasks  # noqa: E402,F401
from pipeline.cli import batches  # noqa: E402,F401
from pipeline.cli import score  # noqa: E402,F401  (score, evaluate)
from pipeline.cli import probe  # noqa: E402,F401

__all__ = ["app", "main"]


def _prefect_defaults() -> None:
    # Prefect reads these at import time; set safe defaults unless the user chose otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def main() -> None:
    _prefect_defaults()
    try:
        app()
    except OSError as err:  # a full disk, a folder without write permission: one line
        line = os_error_line(err)
        if line is None:
            raise
        console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
