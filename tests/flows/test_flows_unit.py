"""The flow helpers without a server: deployments file, runner choice, counts, names."""

from __future__ import annotations

import pytest

from flows.common import artifact_key, load_manifest_param, manifest_label, summary_rows
from flows.runners import RunnerSpec, local_cluster_kwargs
from flows.serve import deployment_entries, flow_from_entrypoint
from flows.tasks import tally


def test_prefect_yaml_has_one_deployment_per_kind_plus_assembly() -> None:
    entries = deployment_entries()
    flows = {flow_from_entrypoint(e["entrypoint"]).name: e for e in entries}
    assert set(flows) == {"refA_sd", "refA_md", "refAB_sd", "refAB_md", "assemble_tasks",
                          "build_dataset"}
    for name in ("refA_sd", "refA_md", "refAB_sd", "refAB_md", "assemble_tasks"):
        params = flows[name]["parameters"]
        assert {"manifest", "split"} <= set(params)  # parameterised by manifest and split
        assert flows[name]["work_pool"]["name"] == "dqgen"
        assert name.split("_tasks")[0] in flows[name]["tags"] or name == "assemble_tasks"


def test_entrypoint_errors() -> None:
    with pytest.raises(ValueError, match="must look like"):
        flow_from_entrypoint("flows/kind_flows.refA_sd_flow")
    with pytest.raises(ValueError, match="does not name a Prefect flow"):
        flow_from_entrypoint("flows/kind_flows.py:run_kind")


def test_runner_spec() -> None:
    assert RunnerSpec().task_runner().__class__.__name__ == "ThreadPoolTaskRunner"
    dask = RunnerSpec(runner="dask", workers=2)
    assert dask.task_runner().cluster_kwargs == local_cluster_kwargs(2)
    remote = RunnerSpec(runner="dask", dask_address="tcp://10.0.0.5:8786").task_runner()
    assert remote.address == "tcp://10.0.0.5:8786"
    assert RunnerSpec.from_dict(dask.to_dict()) == dask
    with pytest.raises(ValueError, match="runner must be one of"):
        RunnerSpec(runner="ray")
    with pytest.raises(ValueError, match="workers must be"):
        RunnerSpec(workers=0)
    with pytest.raises(ValueError, match="needs runner 'dask'"):
        RunnerSpec(dask_address="tcp://x:1")


def test_tally_and_rows() -> None:
    synth = {"refA_sd/train": {"done": 3, "skipped": 1, "failed": 0, "judged": 0},
             "refA_sd/test": {"done": 0, "skipped": 2, "failed": 1}}
    respond = {"refA_sd/train": {"done": 2, "skipped": 0, "failed": 1, "cost_usd": 0.25},
               "totals": {"done": 2, "failed": 1, "cost_usd": 0.25}}
    assert tally(synth) == {"done": 3, "skipped": 3, "failed": 1, "cost_usd": 0.0}
    assert tally(respond)["cost_usd"] == 0.25 and tally(respond)["done"] == 2  # no double count
    assert tally({"done": 5}) == {"done": 5, "skipped": 0, "failed": 0, "cost_usd": 0.0}
    assert tally({"refA_sd/train": 4, "refA_sd/test": 2})["done"] == 6  # plan: samples planned
    rows = summary_rows({"synthesize": synth, "respond": respond, "output": "/x"})
    assert [r["stage"] for r in rows] == ["synthesize", "respond"]


def test_names() -> None:
    assert artifact_key("My_Set", "refAB_md") == "my-set-refab-md"
    assert manifest_label("data_manifest/demo.yaml") == "demo"
    assert manifest_label({"name": "tiny"}) == "tiny"
    assert manifest_label(None) == "demo"
    assert load_manifest_param(None).name == "demo"  # the embedded demo
    m = load_manifest_param(None)
    assert load_manifest_param(m.model_dump(mode="json")) == m
