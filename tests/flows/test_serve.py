"""A real Prefect server, `dqgen serve`, and one deployment run triggered with the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.flows.conftest import DQGEN_BIN, PREFECT_BIN, server_env, stop

ROOT = Path(__file__).resolve().parents[2]


def _client():  # noqa: ANN202 - Prefect's sync client (PREFECT_API_URL set by the caller)
    from prefect import get_client

    return get_client(sync_client=True)


def _wait_for_deployment(client, name: str, proc: subprocess.Popen[bytes], log: Path,
                         timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dqgen serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            client.read_deployment_by_name(name)
            return
        except Exception:  # noqa: BLE001 - not registered yet
            time.sleep(0.5)
    pytest.fail(f"deployment {name} not registered in {timeout} s:\n{log.read_text()[-3000:]}")


def _wait_for_run(client, run_id: str, log: Path, timeout: float = 150.0):  # noqa: ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(0.5)
    pytest.fail(f"flow run {run_id} not finished in {timeout} s:\n{log.read_text()[-3000:]}")


def test_served_deployment_run(prefect_server: dict, tiny_manifest: Path,
                               tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url = str(prefect_server["api_url"])
    env = server_env(Path(str(prefect_server["home"])), api_url)
    serve_log = tmp_path / "serve.log"
    out = tmp_path / "dataset"
    with open(serve_log, "wb") as log:
        serve = subprocess.Popen([str(DQGEN_BIN), "serve", "--flow", "refA_sd", "--flow",
                                  "assemble_tasks", "--workers", "2"],
                                 env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        with temporary_settings({PREFECT_API_URL: api_url}), _client() as client:
            _wait_for_deployment(client, "refA_sd/dqgen", serve, serve_log)
            dep = client.read_deployment_by_name("refA_sd/dqgen")
            assert set(dep.tags) == {"dqgen", "refA_sd"}
            # default: the embedded demo, found whatever the serving process's cwd
            # (here tmp_path, which has no data_manifest/ folder)
            assert dep.parameters["manifest"] is None
            # not served: only the flows asked for
            with pytest.raises(Exception):  # noqa: B017,PT011 - ObjectNotFound
                client.read_deployment_by_name("refAB_md/dqgen")

            started = subprocess.run(
                [str(PREFECT_BIN), "deployment", "run", "refA_sd/dqgen",
                 "--param", f"manifest={tiny_manifest}", "--param", "split=train",
                 "--param", f"out={out}"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
            assert started.returncode == 0, started.stdout + started.stderr
            run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", started.stdout).group(1)
            run = _wait_for_run(client, run_id, serve_log)
            assert run.state.is_completed(), (run.state, serve_log.read_text()[-4000:])
            assert run.name == "tiny refA_sd train"
            assert set(run.tags) >= {"dqgen", "refA_sd"}

            # counts as an artifact of the run: done, skipped (resumed), failed, cost
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

            arts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            table = next(a for a in arts if a.type == "table")
            rows = {r["stage"]: r for r in json.loads(table.data)}
            assert table.key == "tiny-refa-sd"
            assert rows["synthesize"]["done"] == 4 and rows["synthesize"]["failed"] == 0
            assert rows["respond"]["done"] == 4 and rows["respond"]["cost_usd"] == 0.0
            assert any(a.type == "markdown" for a in arts)
    finally:
        stop(serve)

    # the outputs of that one kind and split, written by the served run's subprocess
    samples = (out / "samples" / "refA_sd" / "train.jsonl").read_text().splitlines()
    assert len(samples) == 4
    for line in samples:
        rec = json.loads(line)
        assert (out / rec["image_A"]["path"]).is_file()
    assert len((out / "responses" / "template" / "refA_sd" / "train.jsonl")
               .read_text().splitlines()) == 4
    assert len(json.loads((out / "tasks" / "refA_brief_sd" / "train.json").read_text())) == 4
    assert not (out / "samples" / "refA_sd" / "test.jsonl").exists()  # split=train only
    assert not (out / "samples" / "refAB_sd").exists()  # other kinds untouched
    lock = json.loads((out / "manifest.lock.json").read_text())
    assert "samples/refA_sd/train.jsonl" in lock["outputs"]


def test_prefect_deploy_reads_the_deployments_file(prefect_server: dict) -> None:
    """`prefect deploy --all --prefect-file flows/prefect.yaml` registers all six with the pool
    (and the probe with the `gpu` pool)."""
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url = str(prefect_server["api_url"])
    env = server_env(Path(str(prefect_server["home"])), api_url)
    for cmd in (["work-pool", "create", "dqgen", "--type", "process", "--overwrite"],
                ["work-pool", "create", "gpu", "--type", "process", "--overwrite"],
                ["--no-prompt", "deploy", "--all", "--prefect-file", "flows/prefect.yaml"]):
        done = subprocess.run([str(PREFECT_BIN), *cmd], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with temporary_settings({PREFECT_API_URL: api_url}), _client() as client:
        deps = client.read_deployments(work_pool_filter=WorkPoolFilter(
            name=WorkPoolFilterName(any_=["dqgen"])))
    by_entry = {d.entrypoint: d for d in deps}
    assert set(by_entry) == {
        "flows/kind_flows.py:refA_sd_flow", "flows/kind_flows.py:refA_md_flow",
        "flows/kind_flows.py:refAB_sd_flow", "flows/kind_flows.py:refAB_md_flow",
        "flows/build_flow.py:assemble_flow", "flows/build_flow.py:build_dataset"}
    with temporary_settings({PREFECT_API_URL: api_url}), _client() as client:
        gpu = client.read_deployments(work_pool_filter=WorkPoolFilter(
            name=WorkPoolFilterName(any_=["gpu"])))
    assert [d.entrypoint for d in gpu] == ["flows/probe_flow.py:train_probe"]
    kind = by_entry["flows/kind_flows.py:refAB_md_flow"]
    assert kind.name == "dqgen" and set(kind.tags) == {"dqgen", "refAB_md"}
    assert kind.parameters == {"manifest": None, "split": None, "out": None}
    assert "split" in kind.parameter_openapi_schema["properties"]
