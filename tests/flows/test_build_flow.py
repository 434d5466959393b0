"""`dqgen build` runs the Prefect flow (against the session's server, and in ephemeral mode
with Dask); same bytes as the bare run and on Dask."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app


def _files(root: Path) -> dict[str, bytes]:
    """Every output file; logs/ (the run history, see Store.logs_dir) is not an output."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def _same_tree(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    different = [name for name in fa if fa[name] != fb[name]]
    assert not different, different[:10]


def _build_runs(out: Path) -> list:
    """Flow runs of `build_dataset` recorded by Prefect for the dataset folder `out`."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(
            any_=["build_dataset"])))
        return [r for r in runs if r.parameters.get("out") == str(out.resolve())]


def _table(run_id) -> dict[str, dict]:  # noqa: ANN001
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    table = next(a for a in arts if a.type == "table")
    return {r["stage"]: r for r in json.loads(table.data)}


@pytest.fixture(scope="module")
def bare_build(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bare") / "dataset"
    res = CliRunner().invoke(app, ["build", str(tiny_manifest), "--no-prefect", "-w", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.usefixtures("prefect_api")
def test_dqgen_build_runs_the_prefect_flow(tiny_manifest: Path, bare_build: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    runner = CliRunner()
    res = runner.invoke(app, ["build", str(tiny_manifest), "-w", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "done" in res.output and str(out) in res.output

    runs = _build_runs(out)  # recorded by the Prefect server
    assert len(runs) == 1 and runs[0].state.is_completed()
    assert runs[0].name == "tiny build_dataset all-splits"
    first = _table(runs[0].id)
    assert first["synthesize"]["done"] == 17 and first["synthesize"]["skipped"] == 0
    assert first["respond"]["done"] == 17 and first["respond"]["failed"] == 0
    assert first["ingest"]["done"] == 4
    _same_tree(out, bare_build)  # the flow and the bare run write the same bytes

    # a re-run resumes: everything skipped, counted as such in the UI artifact
    res = runner.invoke(app, ["build", str(tiny_manifest), "-w", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    runs = sorted(_build_runs(out), key=lambda r: r.start_time)
    assert len(runs) == 2
    second = _table(runs[-1].id)
    assert second["synthesize"] == {**second["synthesize"], "done": 0, "skipped": 17,
                                    "failed": 0}
    assert second["respond"]["done"] == 0 and second["respond"]["skipped"] == 17
    assert second["ingest"]["skipped"] == 4
    _same_tree(out, bare_build)


@pytest.mark.usefixtures("prefect_ephemeral")
def test_dask_local_cluster_same_bytes(tiny_manifest: Path, bare_build: Path,
                                       tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    res = CliRunner().invoke(app, ["build", str(tiny_manifest), "-w", "1", "--runner", "dask",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    _same_tree(out, bare_build)
    # the chunk tasks ran on the cluster's worker processes and were recorded by the
    # flow's own (ephemeral) server: the workers did not start servers of their own
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run = _build_runs(out)[0]
    assert run.state.is_completed()
    from tests.support.prefect_server import drain_events

    drain_events()  # this process's events (the flow's own tasks) sent
    deadline = time.monotonic() + 30
    while True:  # the server records task runs from the events a moment later, any order
        with get_client(sync_client=True) as client:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[run.id])), limit=200)
        chunks = [t for t in tasks if t.name.startswith("synthesize ")]
        recorded = len(chunks) == 11 and any(t.name.startswith("lock") for t in tasks)
        if recorded or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(chunks) == 11  # ceil(n / 2) per kind and split
    assert all(t.state.is_completed() for t in chunks)
    # the tasks the flow ran in this process reached the same server
    assert any(t.name.startswith("lock") for t in tasks), sorted(t.name for t in tasks)


@pytest.mark.usefixtures("prefect_api")
def test_restricted_build_same_bytes(tiny_manifest: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    opts = ["--kinds", "refAB_md,refAB_sd", "--splits", "train", "-w", "2"]
    for mode, out in (("--no-prefect", tmp_path / "bare"), ("--prefect", tmp_path / "flow")):
        res = runner.invoke(app, ["build", str(tiny_manifest), mode, *opts, "--out", str(out)])
        assert res.exit_code == 0, res.output
    _same_tree(tmp_path / "flow", tmp_path / "bare")
    assert not (tmp_path / "flow" / "samples" / "refA_sd").exists()
    assert (tmp_path / "flow" / "tasks" / "refAB_brief" / "train.json").is_file()


def test_build_errors_are_clear(tiny_manifest: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["build", str(tiny_manifest), "--kinds", "refX",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown kind 'refX'" in res.output
    res = runner.invoke(app, ["build", str(tiny_manifest), "--runner", "spark",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "runner must be one of threads, dask" in res.output
    res = runner.invoke(app, ["build", str(tiny_manifest), "--no-prefect", "--runner", "dask"])
    assert res.exit_code == 2 and "need Prefect" in res.output
    assert not (tmp_path / "o").exists()  # refused before any run started


@pytest.mark.usefixtures("prefect_api")
def test_failures_are_counted_in_the_run(tmp_path: Path) -> None:
    import shutil

    import skimage.data

    from flows.build_flow import run_build_flow

    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(Path(skimage.data.__file__).parent / "astronaut.png", refs / "a.png")
    shutil.copy(Path(skimage.data.__file__).parent / "coffee.png", refs / "b.png")
    (refs / "bad.png").write_bytes(b"")  # zero bytes: refused by ingest, build goes on
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"""\
name: withbad
references: {{root: "{refs}", splits: {{train: [a.png, bad.png], test: [b.png]}}}}
resize: {{short_side: 48}}
counts: {{refA_sd: {{train: 2, test: 1}}}}
tasks: {{report: false}}
""", encoding="utf-8")
    out = tmp_path / "dataset"
    summary = run_build_flow(str(manifest), out=out, workers=2)
    assert summary["ingest"]["failed"] == 1 and summary["ingest"]["references"] == 2
    rows = _table(_build_runs(out)[0].id)
    assert rows["ingest"]["failed"] == 1 and rows["ingest"]["done"] == 2
    assert rows["synthesize"]["done"] == 3
    failure = json.loads((out / "failures" / "ingest.jsonl").read_text().splitlines()[0])
    assert failure["item_id"] == "bad.png"


@pytest.mark.usefixtures("prefect_api")
def test_kind_deployments_then_assembly_read_the_human_sources(tmp_path: Path) -> None:
    """A mixed manifest run as a kind flow + the assembly flow gets the human pairs too."""
    from flows.build_flow import assemble_flow
    from flows.kind_flows import refA_sd_flow
    from tests.pipeline.labels.fixtures import make_kadid10k

    make_kadid10k(tmp_path / "kadid")
    manifest = tmp_path / "mixed.yaml"
    manifest.write_text("""\
name: mixed
seed: 5
references: {root: "@skimage", splits: {train: [astronaut.png, coffee.png]}}
resize: {short_side: 48}
counts: {refA_sd: {train: 2}}
responder: {kind: template}
tasks: {report: false}
sources:
  - {dataset: kadid10k, root: kadid}
""", encoding="utf-8")
    out = tmp_path / "flows"
    kind = refA_sd_flow(manifest=str(manifest), out=str(out))
    assert "labels" not in kind and not (out / "pairs").exists()  # kinds skip the sources
    summary = assemble_flow(manifest=str(manifest), out=str(out))
    assert summary["labels"]["kadid10k"]["pairs"] > 0
    assert len(json.loads((out / "tasks" / "refA_brief_sd" / "train.json").read_text())) == 2
    for task in ("AB_brief", "refAB_brief"):
        recs = json.loads((out / "tasks" / task / "train.json").read_text())
        assert recs and {r["dataset"] for r in recs} == {"kadid10k"}
    before = _files(out)
    assemble_flow(manifest=str(manifest), out=str(out))  # idempotent: nothing rewritten
    assert _files(out) == before

    bare = tmp_path / "bare"  # the same task files as `dqgen build`
    res = CliRunner().invoke(app, ["build", str(manifest), "--no-prefect", "--out", str(bare)])
    assert res.exit_code == 0, res.output
    for task in ("AB_brief", "refAB_brief", "refA_brief_sd"):
        for split_file in sorted((bare / "tasks" / task).glob("*.json")):
            rel = split_file.relative_to(bare)
            assert (out / rel).read_bytes() == split_file.read_bytes(), rel


_KILLED_FLOW = """\
import os, signal, sys
real, text = os.replace, sys.argv[3]

def replace_or_die(src, dst):  # SIGKILL at the first rename onto a path holding `text`
    if text in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

os.replace = replace_or_die
from flows.build_flow import run_build_flow
run_build_flow(sys.argv[1], out=sys.argv[2], workers=2)
"""


@pytest.mark.usefixtures("prefect_api")
def test_sigkill_of_a_prefect_build_at_two_moments_then_resume(
        prefect_server: dict, tiny_manifest: Path, bare_build: Path, tmp_path: Path) -> None:
    """A Prefect build (a real process, reporting to a real server) killed with SIGKILL
    while its synthesis tasks run, the resumed build killed again during assembly; the
    last resume (in this process) equals the bare build in every file but logs/."""
    from tests.flows.conftest import server_env

    script = tmp_path / "killed_flow.py"
    script.write_text(_KILLED_FLOW)
    out = tmp_path / "dataset"
    env = server_env(Path(str(prefect_server["home"])), str(prefect_server["api_url"]))
    repo = Path(__file__).resolve().parents[2]
    for moment in ("images/refAB_sd/", "tasks/AB_brief/"):
        proc = subprocess.run([sys.executable, str(script), str(tiny_manifest), str(out),
                               moment], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
        assert (out / ".dqgen.lock").is_file()  # the dead flow process held the folder
    assert not (out / "manifest.lock.json").exists()
    res = CliRunner().invoke(app, ["build", str(tiny_manifest), "-w", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    _same_tree(out, bare_build)
    assert not (out / ".dqgen.lock").exists() and not list(out.rglob("*.tmp"))
