"""The flow helpers without a server: deployments file, runner choice, counts, names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.common import artifact_key, load_manifest_param, manifest_label, summary_rows
from flows.runners import (
    DaskNotInstalledError,
    RunnerSpec,
    compute,
    dask_modules,
    local_cluster_kwargs,
)
from flows.serve import deployment_entries, flow_from_entrypoint
from flows.tasks import tally
from pipeline.cli import app
from pipeline.manifest import ManifestError


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_prefect_yaml_has_one_deployment_per_kind_plus_assembly() -> None:
    entries = deployment_entries()
    flows = {flow_from_entrypoint(e["entrypoint"]).name: e for e in entries}
    assert set(flows) == {"refA_sd", "refA_md", "refAB_sd", "refAB_md", "assemble_tasks",
                          "build_dataset", "train_probe"}
    probe = flows["train_probe"]  # the probe goes to the GPU machines' pool
    assert probe["work_pool"]["name"] == "gpu" and probe["parameters"]["device"] == "auto"
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


def test_deployments_default_to_the_embedded_demo_from_any_folder(tmp_path: Path,
                                                                  monkeypatch) -> None:
    for entry in deployment_entries():
        if entry["entrypoint"].endswith(":train_probe"):
            continue  # takes a dataset folder, not a manifest
        assert entry["parameters"]["manifest"] is None  # not a path relative to some cwd
    monkeypatch.chdir(tmp_path)  # a serving process started anywhere
    assert load_manifest_param(None).name == "demo"
    with pytest.raises(ManifestError, match="not found in the working directory") as err:
        load_manifest_param("data_manifest/demo.yaml")
    assert str(tmp_path) in str(err.value) and "absolute path" in str(err.value)
    (tmp_path / "m.yaml").write_text("name: here\nsources: []\n")
    assert load_manifest_param("m.yaml").name == "here"  # relative to the cwd when there


def test_serve_missing_prefect_file_is_one_error_line() -> None:
    res = CliRunner().invoke(app, ["serve", "--prefect-file", "/nope.yaml"])
    assert res.exit_code == 2, res.output
    assert _error_lines(res.output) == ["error: /nope.yaml: deployments file not found"]
    assert "error: 2" not in res.output


def test_serve_bad_prefect_file_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments: [unclosed\n")
    res = CliRunner().invoke(app, ["serve", "--prefect-file", str(bad)])
    assert res.exit_code == 2, res.output
    lines = _error_lines(res.output)
    assert len(lines) == 1 and "not a valid YAML file" in lines[0]


@pytest.mark.parametrize("missing", ["dask", "distributed", "prefect_dask"])
def test_dask_runner_without_the_dask_extra(missing: str, monkeypatch) -> None:
    installed = RunnerSpec(runner="dask", workers=2)  # made while the extra is importable
    monkeypatch.setitem(sys.modules, missing, None)  # `import <missing>` now fails
    for call in (dask_modules, lambda: RunnerSpec(runner="dask"), installed.task_runner,
                 lambda: compute(installed).__enter__()):
        with pytest.raises(DaskNotInstalledError, match=r"pip install 'dqgen\[dask\]'") as err:
            call()
        assert err.value.name == missing and missing.replace("_", "-") in str(err.value)
        assert isinstance(err.value, ImportError) and isinstance(err.value, ValueError)
    assert RunnerSpec().task_runner().__class__.__name__ == "ThreadPoolTaskRunner"
    with compute(RunnerSpec()) as spec:  # threads never touch dask
        assert spec.runner == "threads"

    res = CliRunner().invoke(app, ["serve", "--runner", "dask"])
    assert res.exit_code == 2, res.output
    lines = _error_lines(res.output)
    assert len(lines) == 1 and "pip install 'dqgen[dask]'" in lines[0], res.output
    assert "Traceback" not in res.output


def test_build_with_dask_runner_without_the_extra(tiny_manifest: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["build", str(tiny_manifest), "--runner", "dask",
                                   "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = _error_lines(res.output)
    assert len(lines) == 1 and "pip install 'dqgen[dask]'" in lines[0], res.output
    assert not out.exists()  # refused before any run started
