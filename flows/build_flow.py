"""The parent flow `build_dataset` (what `dqgen build` runs), and the assembly flow.

`build_dataset` runs the stages of `pipeline.build.STAGES` in their order, as the bare
`run_build` does, so both write the same bytes:

* ingest: reference chunks mapped over the task runner, then one merge;
* plan + synthesize: the kind flows' graph (flows/tasks.py `submit_kinds`) for all kinds
  of the manifest at once: every kind's plans, then every kind's synthesis (+ judge)
  chunks on the task runner, each split merged when its chunks are done;
* every other stage (labels, respond, assemble, report, lock, and any stage added to
  STAGES later) as one task in the flow's process: respond over all kinds keeps one rate
  limit and one budget.

The kinds run inside the parent flow's graph, not as sub-flows: each sub-flow adds a flow
run and a parent task run that the API server writes synchronously, and on its default
SQLite database those writes collide with the recording of task-run events (HTTP 503,
then a 2 s client back-off). Measured on the demo with 2 workers: 21 s with four
concurrent kind sub-flows against 7 s for the bare run. The kind flows remain the
per-kind deployments (flows/kind_flows.py).

`assemble_flow` is the "assembly" deployment: labels, assemble, report and lock over all
kinds after the kind deployments ran. The kind flows do not read the manifest's
human-labelled `sources`; the assembly flow does (the labels stage, idempotent: it
rewrites only what changed), so kind deployments + assembly give the same task files as
`dqgen build`. `run_build_flow` is the Python entry the CLI uses: it
checks the arguments before any run starts, picks the task runner, and handles Prefect's
ephemeral mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import (
    ManifestParam,
    artifact_key,
    load_manifest_param,
    output_dir,
    publish_summary,
    run_name,
)
from flows.runners import RunnerSpec, compute
from flows.tasks import (
    prepare_task,
    rebuild_failure_logs_task,
    stage,
    submit_ingest,
    submit_kinds,
)
from pipeline.manifest import Manifest
from pipeline.ownership import check_output_folder, own_folder

__all__ = ["assemble_flow", "build_dataset", "run_build_flow"]

log = logging.getLogger(__name__)

# labels first: the human-labelled pairs the brief comparison tasks take (kind flows skip it)
_ASSEMBLY_STAGES = ("labels", "assemble", "report", "lock")


def _kinds_and_splits(m: Manifest, kinds: Sequence[str] | None,
                      splits: Sequence[str] | None) -> dict[str, list[str]]:
    from pipeline.build import selected_splits

    per_kind: dict[str, list[str]] = {}
    for kind, split in selected_splits(m, kinds, splits):
        per_kind.setdefault(kind, []).append(split)
    return per_kind


@flow(name="build_dataset", flow_run_name=run_name, persist_result=False, log_prints=False,
      validate_parameters=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def build_dataset(
    manifest: ManifestParam = None,
    kinds: list[str] | None = None,
    splits: list[str] | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Build a dataset: every stage of the manifest, all sample kinds at once.

    The task runner (threads or Dask, and the worker count) is the flow's: `dqgen build
    --workers/--runner/--dask-address` and `dqgen serve` set it with `with_options`.

    Args:
        manifest: manifest file path (empty: the embedded demo) or resolved manifest dict.
        kinds: sample kinds to build (default: all in the manifest).
        splits: splits to build (default: all in the manifest).
        out: dataset folder (default: the manifest's `output`).

    Returns:
        {stage: summary} as `pipeline.build.run_build` returns it, plus "output".
    """
    m = load_manifest_param(manifest)
    folder = output_dir(m, out)
    check_output_folder(m, folder)
    with own_folder(folder, "build"):  # the flow's process owns the folder
        return _build(m, folder, kinds, splits)


def _build(m: Manifest, folder: str, kinds: list[str] | None, splits: list[str] | None
           ) -> dict[str, Any]:
    from pipeline.build import STAGES

    per_kind = _kinds_and_splits(m, kinds, splits)
    # as run_build's BuildContext: the user's order (assemble writes records in it)
    all_kinds = list(kinds) if kinds else m.kinds()
    all_splits = list(splits) if splits else m.splits()
    summaries: dict[str, Any] = {}
    prepare_task(folder)
    for name, _fn in STAGES:
        if name == "ingest" and m.counts:
            summaries["ingest"] = submit_ingest(m, folder)
        elif name in ("plan", "synthesize"):
            if "synthesize" not in summaries:
                summaries["plan"], summaries["synthesize"] = submit_kinds(m, folder, per_kind)
                rebuild_failure_logs_task(folder)
        else:  # includes ingest of a manifest with human-labelled sources only
            summaries[name] = stage(name)(name, m, folder, all_kinds, all_splits, summaries)
    publish_summary(f"{m.name} build", artifact_key(m.name, "build"), summaries, folder)
    return {**summaries, "output": folder}


@flow(name="assemble_tasks", flow_run_name=run_name, persist_result=False, log_prints=False,
      validate_parameters=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def assemble_flow(manifest: ManifestParam = None, split: str | None = None,
                  out: str | None = None) -> dict[str, Any]:
    """Assembly: labels, task files (and exports), report and lock over all kinds.

    The labels stage reads the manifest's human-labelled `sources` (pairs/<dataset>/ for
    refAB_brief and AB_brief); a re-run rewrites nothing that did not change.

    Args:
        manifest: manifest file path (empty: the embedded demo) or resolved manifest dict.
        split: one split, or empty for all.
        out: dataset folder (default: the manifest's `output`).
    """
    m = load_manifest_param(manifest)
    folder = output_dir(m, out)
    splits = [split] if split else m.splits()
    summaries: dict[str, Any] = {}
    with own_folder(folder, "assembly flow"):  # the flow's process owns the folder
        return _assemble(m, folder, splits, summaries)


def _assemble(m: Manifest, folder: str, splits: list[str], summaries: dict[str, Any]
              ) -> dict[str, Any]:
    from pipeline.build import STAGES

    for name, _fn in STAGES:
        if name in _ASSEMBLY_STAGES:
            summaries[name] = stage(name)(name, m, folder, m.kinds(), splits, summaries)
    publish_summary(f"{m.name} assembly", artifact_key(m.name, "assembly"), summaries, folder)
    return {**summaries, "output": folder}


# --------------------------------------------------------------------------- CLI entry
def _ephemeral() -> bool:
    from prefect.settings import PREFECT_API_URL

    return not PREFECT_API_URL.value()


def run_build_flow(
    manifest: Manifest | str | Path | None = None,
    *,
    kinds: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    runner: str = "threads",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Run `build_dataset` (the Python entry of `dqgen build`); returns its summary.

    Arguments are checked before any run starts (a typo gives a ValueError, not a failed
    flow run). Without PREFECT_API_URL Prefect runs in its ephemeral mode: a temporary
    local server for this process, runs recorded in PREFECT_HOME's database (a later
    `prefect server start` shows them). Heartbeats are off there: they detect crashed runs
    for a long-lived server, and their thread costs up to a second per flow run at exit.

    Raises:
        ValueError: unknown kind, split or runner, workers < 1.
        ManifestError: a manifest file that does not validate.
    """
    m = load_manifest_param(manifest if isinstance(manifest, (Manifest, dict)) or not manifest
                            else str(manifest))
    _kinds_and_splits(m, kinds, splits)  # raises ValueError on a bad kind or split
    spec = RunnerSpec(runner=runner, workers=workers, dask_address=dask_address)
    params = {"manifest": m.model_dump(mode="json"),
              "kinds": list(kinds) if kinds else None,
              "splits": list(splits) if splits else None,
              "out": str(Path(out).expanduser().resolve()) if out else None}
    folder = Path(params["out"]) if params["out"] else m.output_dir()
    check_output_folder(m, folder)  # before Prefect starts: one line, no failed flow run
    with ExitStack() as stack:
        stack.enter_context(own_folder(folder, "build"))  # re-entered by the flow
        ephemeral = _ephemeral()
        if ephemeral:
            from prefect import get_client
            from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

            stack.enter_context(temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
            with get_client(sync_client=True) as client:  # starts the temporary server
                client.hello()
        spec = stack.enter_context(compute(spec))
        started = time.time()
        state = build_dataset.with_options(task_runner=spec.task_runner())(
            **params, return_state=True)
        result = state.result()
        if ephemeral:
            _wait_for_recording(state.state_details.flow_run_id, started)
    return result


def _wait_for_recording(flow_run_id: Any, since: float, timeout: float = 10.0) -> None:
    """Let the temporary server record the task runs' final states before it stops.

    Task-run states reach the server as events that a background service writes in
    batches; stopping the server at exit while a batch is pending loses it (and prints a
    traceback). Poll until every task run since `since` is final, for at most `timeout` s.
    """
    import datetime as dt

    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterStartTime
    from prefect.client.schemas.sorting import TaskRunSort

    after = dt.datetime.fromtimestamp(since - 1, tz=dt.timezone.utc)
    flt = TaskRunFilter(start_time=TaskRunFilterStartTime(after_=after))
    deadline = time.monotonic() + timeout
    try:
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_task_runs(task_run_filter=flt, limit=200,
                                             sort=TaskRunSort.EXPECTED_START_TIME_DESC)
                if runs and all(r.state is not None and r.state.is_final() for r in runs):
                    return
                time.sleep(0.2)
    except Exception as err:  # noqa: BLE001 - the build is done; this is only bookkeeping
        log.debug("could not check the recorded task runs of %s: %s", flow_run_id, err)
