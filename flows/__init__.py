"""Prefect flows and tasks: thin wrappers over `pipeline` functions (the only package importing Prefect).

Modules: `tasks` (one task per stage function, and the stage graphs), `kind_flows` (one
flow per sample kind), `build_flow` (`build_dataset`, the assembly flow, the CLI entry),
`runners` (threads or Dask), `serve` (the deployments of prefect.yaml), `batch_flow` (the
respond stage through the OpenAI Batch API, polling), `common`.
"""

from __future__ import annotations

import os

__all__: list[str] = []

# The library's own warnings (a failed sample, a failed response) belong in the run's
# log in the UI too; Prefect reads this when it sets up logging, at its first import.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline,distortions")
# The same loggers also speak outside any flow run (`--no-prefect`, library use): there
# the record goes to the console only, without Prefect's "no flow run id" warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
