"""One flow per sample kind: ingest -> plan -> synthesise (+ judge) -> respond -> assemble.

`refA_sd_flow`, `refA_md_flow`, `refAB_sd_flow` and `refAB_md_flow` are the deployments'
entrypoints (flows/prefect.yaml), parameterised by manifest and split. Run alone
(`standalone=True`, the default) a kind flow does the whole chain for its kind and writes
the lock; with `standalone=False` it only plans and synthesises (+ judges).
`build_dataset` (flows/build_flow.py) runs the same graph for all kinds at once.
The manifest's human-labelled `sources` are not a kind: the assembly flow
(`assemble_flow`) and `build_dataset` read them (labels stage), the kind flows do not.

Synthesis judges the pairs of refAB kinds inside each chunk, while the pixels are in memory
(pipeline/synthesize.py), so "judge" is part of the synthesis tasks here too.
"""

from __future__ import annotations

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
from pipeline.ownership import check_output_folder, own_folder
from flows.tasks import (
    assemble_kind_task,
    rebuild_failure_logs_task,
    stage,
    submit_ingest,
    submit_kinds,
)

__all__ = ["KIND_FLOWS", "refAB_md_flow", "refAB_sd_flow", "refA_md_flow", "refA_sd_flow",
           "run_kind"]


def _splits(manifest: Any, kind: str, split: str | list[str] | None) -> list[str]:
    from pipeline.build import selected_splits

    wanted = [split] if isinstance(split, str) else (list(split) if split else None)
    return [s for _k, s in selected_splits(manifest, [kind], wanted)]


def run_kind(kind: str, manifest: ManifestParam, split: str | list[str] | None,
             out: str | None, standalone: bool) -> dict[str, Any]:
    """The body of every kind flow (see module docstring); returns run_build-style summaries."""
    m = load_manifest_param(manifest)
    folder = output_dir(m, out)
    check_output_folder(m, folder)
    with own_folder(folder, f"{kind} flow"):  # the flow's process owns the folder
        return _run_kind(m, kind, folder, _splits(m, kind, split), standalone)


def _run_kind(m: Any, kind: str, folder: str, splits: list[str], standalone: bool
              ) -> dict[str, Any]:
    summaries: dict[str, Any] = {}
    if standalone and m.counts:
        summaries["ingest"] = submit_ingest(m, folder)
    summaries["plan"], summaries["synthesize"] = submit_kinds(m, folder, {kind: splits})
    rebuild_failure_logs_task(folder)
    if standalone:
        summaries["respond"] = stage("respond")(
            "respond", m, folder, [kind], splits, summaries)
        summaries["assemble"] = assemble_kind_task(m, folder, kind, splits)
        summaries["lock"] = stage("lock")("lock", m, folder, [kind], splits, summaries)
    publish_summary(f"{m.name} {kind}", artifact_key(m.name, kind), summaries, folder)
    return {**summaries, "output": folder}


_FLOW_OPTIONS: dict[str, Any] = {
    "flow_run_name": run_name,
    "persist_result": False,
    "log_prints": False,
    "validate_parameters": True,
    "task_runner": ThreadPoolTaskRunner(max_workers=2),
}


_KIND_DESCRIPTIONS = {
    "refA_sd": "Single distortion, image A against its reference.",
    "refA_md": "Multiple distortions, image A against its reference.",
    "refAB_sd": "Single distortions, pair A/B against the reference, judged.",
    "refAB_md": "Multiple distortions, pair A/B against the reference, judged.",
}


def _kind_flow(kind: str) -> Any:
    """The flow of one sample kind: a named module-level flow, the entrypoint of its
    deployment (flows/prefect.yaml: `flows/kind_flows.py:<kind>_flow`)."""
    judged = " + judge" if kind.startswith("refAB") else ""

    def kind_flow(manifest: ManifestParam = None, split: str | list[str] | None = None,
                  out: str | None = None, standalone: bool = True) -> dict[str, Any]:
        return run_kind(kind, manifest, split, out, standalone)

    kind_flow.__name__ = kind_flow.__qualname__ = f"{kind}_flow"
    kind_flow.__doc__ = f"""{kind} samples: ingest, plan, synthesise{judged}, respond, assemble
    (see `run_kind`).

    Args:
        manifest: manifest file path (empty: the embedded demo) or resolved manifest dict.
        split: one split, a list, or empty for all of the kind's splits.
        out: dataset folder (default: the manifest's `output`).
        standalone: run the whole chain; False inside `build_dataset` (plan + synthesise).
    """
    return flow(name=kind, description=_KIND_DESCRIPTIONS[kind], **_FLOW_OPTIONS)(kind_flow)


refA_sd_flow = _kind_flow("refA_sd")
refA_md_flow = _kind_flow("refA_md")
refAB_sd_flow = _kind_flow("refAB_sd")
refAB_md_flow = _kind_flow("refAB_md")


KIND_FLOWS: dict[str, Any] = {
    "refA_sd": refA_sd_flow,
    "refA_md": refA_md_flow,
    "refAB_sd": refAB_sd_flow,
    "refAB_md": refAB_md_flow,
}
