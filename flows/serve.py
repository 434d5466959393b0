"""Serve the deployments of flows/prefect.yaml from one process (`dqgen serve`).

`prefect.yaml` is the one list of deployments: `prefect deploy --prefect-file
flows/prefect.yaml` registers them with a work pool, and `serve_deployments` serves the
same entries (name, entrypoint, parameters, tags, description) without a work pool, with
the task runner chosen here (threads, or Dask: a LocalCluster shared by every served run,
or an existing scheduler).
"""

from __future__ import annotations

import importlib
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from flows.runners import RunnerSpec, compute

__all__ = ["PREFECT_FILE", "deployment_entries", "flow_from_entrypoint", "make_deployments",
           "serve_deployments"]

PREFECT_FILE = Path(__file__).with_name("prefect.yaml")


def deployment_entries(prefect_file: Path | str = PREFECT_FILE) -> list[dict[str, Any]]:
    """The `deployments` entries of a prefect.yaml.

    Raises:
        ValueError: the file is not YAML, has no `deployments` list, or an entry lacks
            name/entrypoint.
    """
    path = Path(prefect_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        msg = f"{path}: not a valid YAML file: {err}".replace("\n", " ")
        raise ValueError(msg) from err
    entries = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        msg = f"{path}: no `deployments` list"
        raise ValueError(msg)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("entrypoint"):
            msg = f"{path}: deployments[{i}] needs a name and an entrypoint"
            raise ValueError(msg)
    return entries


def flow_from_entrypoint(entrypoint: str) -> Any:
    """The flow object of `path/to/module.py:function` (imported as a module of dqgen).

    Raises:
        ValueError: a malformed entrypoint or an attribute that is not a flow.
    """
    from prefect import Flow

    file, sep, attr = entrypoint.partition(":")
    if not sep or not file.endswith(".py") or not attr:
        msg = f"entrypoint {entrypoint!r} must look like flows/kind_flows.py:refA_sd_flow"
        raise ValueError(msg)
    module = importlib.import_module(".".join(PurePosixPath(file[:-3]).parts))
    obj = getattr(module, attr, None)
    if not isinstance(obj, Flow):
        msg = f"entrypoint {entrypoint!r} does not name a Prefect flow"
        raise ValueError(msg)
    return obj


def make_deployments(prefect_file: Path | str = PREFECT_FILE, *,
                     spec: RunnerSpec | None = None,
                     names: list[str] | None = None) -> list[Any]:
    """RunnerDeployments for the entries of `prefect_file` (optionally only flows `names`)."""
    spec = spec or RunnerSpec()
    out = []
    for entry in deployment_entries(prefect_file):
        fl = flow_from_entrypoint(entry["entrypoint"])
        if names and fl.name not in names:
            continue
        fl = fl.with_options(task_runner=spec.task_runner())
        out.append(fl.to_deployment(
            name=entry["name"], parameters=entry.get("parameters") or {},
            tags=entry.get("tags"), description=entry.get("description"),
            concurrency_limit=entry.get("concurrency_limit")))
    return out


def serve_deployments(prefect_file: Path | str = PREFECT_FILE, *,
                      spec: RunnerSpec | None = None, names: list[str] | None = None,
                      limit: int | None = None) -> None:
    """Serve the deployments until interrupted (needs PREFECT_API_URL: a running server).

    Raises:
        ValueError: the deployments file is not valid (checked first).
        RuntimeError: PREFECT_API_URL is not set (a served deployment needs a server that
            outlives this process, to be triggered from the CLI or the UI).
    """
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    deployment_entries(prefect_file)  # a broken file is reported before the server check
    if not PREFECT_API_URL.value():
        msg = ("PREFECT_API_URL is not set: start a server (prefect server start) and "
               "export PREFECT_API_URL=http://127.0.0.1:4200/api")
        raise RuntimeError(msg)
    with ExitStack() as stack:
        spec = stack.enter_context(compute(spec or RunnerSpec()))
        serve(*make_deployments(prefect_file, spec=spec, names=names), limit=limit)
