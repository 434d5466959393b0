"""`dqgen` command line. Each command module registers its commands on the shared app."""

from __future__ import annotations

import os

from pipeline.cli._app import app

# Command modules (importing registers their commands).
from pipeline.cli import build, distort, labels, respond, serve, tasks  # noqa: E402,F401
from pipeline.cli import batches  # noqa: E402,F401
from pipeline.cli import score  # noqa: E402,F401  (score, evaluate)

__all__ = ["app", "main"]


def _prefect_defaults() -> None:
    # Prefect reads these at import time; set safe defaults unless the user chose otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def main() -> None:
    _prefect_defaults()
    app()
