"""The respond stage in batch mode (OpenAI Batch API) as a Prefect flow: submit, then poll
until every batch is done and every re-ask answered.

Design (docs/batch.md): the flow run itself waits, with `time.sleep` between polls
(`responder.batch_poll_s`, growing x1.5 up to `batch_poll_max_s`); each poll is one short
task run (`respond_round_task`: collect finished batches into the cache, validate, record
failures, submit re-asks and anything new), so no task slot or worker thread is held
while the provider works, and every round's counts are in the UI. Everything that
matters is in the dataset folder (`logs/batches/<key>/state.json`), so a crashed or
cancelled flow run, re-run later or on another machine, resumes polling the same batches
and never submits a request twice. (Prefect's pause/suspend would also free the worker,
but needs a person or an automation to resume the run.)
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task

from flows.common import ManifestParam, load_manifest_param, output_dir
from flows.tasks import _BASE

__all__ = ["respond_batch_flow", "respond_round_task"]


@task(name="respond-batch-round", task_run_name="respond batch round {round_no}", **_BASE)
def respond_round_task(manifest: dict[str, Any], out: str, kinds: list[str] | None,
                       splits: list[str] | None, round_no: int) -> dict[str, Any]:
    """One round: collect finished batches, validate every answer, submit what is new."""
    from pipeline.manifest import Manifest
    from pipeline.respond import respond
    from pipeline.store import Store

    m = Manifest.model_validate(manifest)
    config = m.responder.model_copy(update={"mode": "batch"})
    result = respond(m, Store(out), kinds=kinds, splits=splits, config=config,
                     origin="batch flow", wait=False)
    return {"totals": {k: result["totals"].get(k, 0) for k in
                       ("accepted", "failed", "remaining", "batch_answers", "cost_usd")},
            "batch": {k: v for k, v in result.get("batch", {}).items() if k != "state"},
            "budget_reached": result["budget_reached"]}


@flow(name="dqgen-respond-batch", log_prints=False)
def respond_batch_flow(manifest: ManifestParam = None, out: str | None = None,
                       kinds: list[str] | None = None, splits: list[str] | None = None,
                       max_rounds: int = 10_000) -> dict[str, Any]:
    """Answer the detail samples through the Batch API: rounds until nothing is open.

    Args:
        manifest: path or resolved dict of the build manifest (its `responder` section;
            mode is set to batch).
        out: dataset folder (default: the manifest's output).
        kinds, splits: restrict to these (default: all of the manifest).
        max_rounds: stop after this many polls (the state stays; re-run to continue).

    Returns:
        The last round's summary plus "rounds".
    """
    logger = get_run_logger()
    m = load_manifest_param(manifest)
    folder = output_dir(m, out)
    params = m.model_dump(mode="json")
    delay = m.responder.batch_poll_s
    summary: dict[str, Any] = {}
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        summary = respond_round_task(params, folder, kinds, splits, rounds)
        batch = summary["batch"]
        logger.info("round %d: %d answers collected, %d batch(es) open (%d requests), "
                    "%d accepted, %d left", rounds, batch.get("collected_answers", 0),
                    len(batch.get("open", [])), batch.get("open_requests", 0),
                    summary["totals"]["accepted"], summary["totals"]["remaining"])
        if not batch.get("open"):
            break
        time.sleep(delay)  # in the flow run: no task (and no worker slot) is held
        delay = min(max(delay, 0.001) * 1.5, m.responder.batch_poll_max_s)
    return {**summary, "rounds": rounds}
