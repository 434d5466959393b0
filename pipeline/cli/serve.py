"""dqgen commands: serve (the Prefect deployments of flows/prefect.yaml)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli._app import app, fail

__all__ = ["serve"]


@app.command("serve")
def serve(
    prefect_file: Path = typer.Option(None, "--prefect-file",
                                      help="Deployments file (default: flows/prefect.yaml "
                                           "of the installed package).",
                                      show_default=False),
    flows: list[str] = typer.Option(None, "--flow", "-f",
                                    help="Serve only these flows (repeat): refA_sd, refA_md, "
                                         "refAB_sd, refAB_md, assemble_tasks, build_dataset, train_probe. "
                                         "Default: all."),
    workers: int = typer.Option(2, "--workers", "-w", min=1,
                                help="Workers per run (threads, or LocalCluster processes)."),
    runner: str = typer.Option("threads", "--runner",
                               help="Task runner of the served runs: threads or dask."),
    dask_address: str = typer.Option(None, "--dask-address",
                                     help="Scheduler of an existing Dask cluster, e.g. "
                                          "tcp://10.0.0.5:8786 (implies --runner dask).",
                                     show_default=False),
    limit: int = typer.Option(None, "--limit", min=1,
                              help="At most this many runs at once (default: no limit).",
                              show_default=False),
) -> None:
    """Serve the dqgen deployments (one per sample kind, assembly, whole build) until Ctrl-C.

    Needs a Prefect server: `prefect server start`, then
    `export PREFECT_API_URL=http://127.0.0.1:4200/api`. Trigger runs from the UI or with
    `prefect deployment run 'refA_sd/dqgen' --param manifest=/abs/path/manifest.yaml`
    (no manifest: the embedded demo; a relative path is read from this process's folder).
    """
    from flows.runners import RunnerSpec
    from flows.serve import PREFECT_FILE, serve_deployments

    if dask_address:
        runner = "dask"
    path = prefect_file or PREFECT_FILE
    if not Path(path).is_file():
        fail(f"{path}: deployments file not found")
    try:
        # a missing dask extra is a ValueError too (flows.runners.DaskNotInstalledError)
        spec = RunnerSpec(runner=runner, workers=workers, dask_address=dask_address)
        serve_deployments(path, spec=spec, names=list(flows) if flows else None, limit=limit)
    except (ValueError, RuntimeError) as err:
        fail(str(err))
