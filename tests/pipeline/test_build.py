"""The bare build: determinism across workers, regenerate, kill-and-resume, lock, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.build import STAGES, regenerate, run_build
from pipeline.cli import app
from pipeline.records import SampleRecord
from pipeline.store import Store, read_jsonl
from tests.pipeline.build_fixtures import load, photo_dir, tree_digest, write_manifest

__all__ = ["photo_dir"]  # fixture re-exported for pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest_path(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("manifest"), photo_dir)


@pytest.fixture(scope="module")
def built(manifest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted one-worker build of the tiny manifest."""
    out = tmp_path_factory.mktemp("built") / "ds"
    run_build(load(manifest_path), workers=1, out=out)
    return out


def _flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def _samples(root: Path) -> dict[str, list[SampleRecord]]:
    return {p.relative_to(root / "samples").as_posix(): list(read_jsonl(p, SampleRecord))
            for p in sorted((root / "samples").glob("*/*.jsonl"))}


def test_build_writes_every_kind_with_consistent_records(built: Path, manifest_path: Path
                                                         ) -> None:
    m = load(manifest_path)
    samples = _samples(built)
    for kind, per_split in m.counts.items():
        for split, n in per_split.items():
            recs = samples[f"{kind}/{split}.jsonl"]
            assert len(recs) == n  # no failures expected on real photos
            assert len({r.sample_id for r in recs}) == n
            for r in recs:
                ref = Image.open(built / r.image_ref)
                assert ref.size == (r.width, r.height)
                for info in (r.image_A, r.image_B):
                    if info is None:
                        continue
                    assert Image.open(built / info.path).size == (r.width, r.height)
                    if not info.distortions:  # clean: the reference file itself
                        assert info.path == r.image_ref
                assert (r.image_B is not None) == kind.startswith("refAB")
                # a pair has a verdict unless the judge could not separate A and B
                assert (r.judge is not None or r.tie) == kind.startswith("refAB")
                # the original's mix: refA_md images clean or two, refAB_md clean, one or two
                if kind == "refA_md":
                    assert len(r.image_A.distortions) in (0, 2)
                elif kind == "refAB_md":
                    assert {len(r.image_A.distortions), len(r.image_B.distortions)} <= {0, 1, 2}


def test_two_workers_give_identical_bytes(built: Path, manifest_path: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "ds2"
    run_build(load(manifest_path), workers=2, out=out)
    one, two = tree_digest(built), tree_digest(out)
    assert one == two
    lock = json.loads((built / "manifest.lock.json").read_text())
    del one["manifest.lock.json"]
    assert lock["outputs"] == one  # the lock hashes exactly the outputs


def test_rerun_does_only_missing_work(built: Path, manifest_path: Path, tmp_path: Path
                                      ) -> None:
    out = tmp_path / "ds"
    shutil.copytree(built, out)
    before = tree_digest(out)
    # The build-core stages only: later stages (respond, report) summarise their own run.
    summary = run_build(load(manifest_path), workers=1, out=out,
                        stages=["ingest", "plan", "synthesize", "lock"])
    assert summary["ingest"]["done"] == 0
    assert all(v["done"] == 0 and v["skipped"] > 0 for v in summary["synthesize"].values())
    assert tree_digest(out) == before


def test_regenerate_reproduces_a_split_byte_for_byte(built: Path, manifest_path: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(built, out)
    images = sorted((out / "images/refAB_sd/train").rglob("*.png"))
    images[0].write_bytes(b"damaged")
    (out / "samples/refAB_sd/train.chunks/00000.json").unlink()
    (out / "samples/refAB_sd/train.jsonl").write_text("")
    summary = regenerate(load(manifest_path), "refAB_sd", "train", out=out)
    assert summary["synthesize"]["refAB_sd/train"]["done"] == 5
    assert tree_digest(out) == tree_digest(built)


def _die_at(pattern: str) -> None:
    """In this (forked) process: SIGKILL at the n-th atomic rename onto a path holding
    `pattern` ("text#n", default the first), after its temp file is complete (the temp
    stays behind, as after a crash)."""
    real, (text, _, nth), seen = os.replace, pattern.partition("#"), [0]

    def replace_or_die(src, dst):  # noqa: ANN001
        if text in str(dst):
            seen[0] += 1
            if seen[0] == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)

    os.replace = replace_or_die


def _killed_build(manifest: Path, out: Path, pattern: str) -> None:
    """Run the bare build in a forked child that is SIGKILLed at `pattern`; reap it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            _die_at(pattern)
            run_build(load(manifest), workers=1, out=out)
        finally:
            os._exit(3)  # the kill did not come: the parent's assertion says so
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (pattern, status)


def test_sigkill_at_several_moments_then_resume_equals_uninterrupted(
        built: Path, manifest_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 during ingest, synthesis, respond, assemble and at the lock's write, each
    kill hitting the resumed run of the one before; the last resume equals an
    uninterrupted build in every file but logs/, and takes over the dead run's lock."""
    out = tmp_path / "ds"
    # respond writes responder.json before its first answer (an identical rewrite is
    # skipped, docs/scale.md), so the kill comes as respond starts
    moments = ["references.chunks/", "images/refAB_sd/train/", "responses/template/"
               "responder.json", "tasks/AB_brief/", "manifest.lock.json"]
    for pattern in moments:
        _killed_build(manifest_path, out, pattern)
        owner = json.loads((out / ".dqgen.lock").read_text())  # left by the dead run
        assert owner["command"] == "build" and owner["host"]
    assert list(out.rglob(".*.tmp")), "a kill before a rename leaves its temp file"
    with caplog.at_level("WARNING", logger="pipeline.ownership"):
        run_build(load(manifest_path), workers=2, out=out)  # any worker count resumes
    assert "taking over" in caplog.text and "no longer running" in caplog.text
    assert tree_digest(out) == tree_digest(built)
    assert not (out / ".dqgen.lock").exists() and not list(out.rglob("*.tmp"))
    for name, recs in _samples(out).items():
        ids = [r.sample_id for r in recs]
        assert len(ids) == len(set(ids)), name


def test_lock_is_deterministic_and_complete(built: Path) -> None:
    lock = json.loads((built / "manifest.lock.json").read_text())
    assert set(lock) == {"lock_version", "manifest", "references_root", "packages",
                         "distortions", "label_splits", "outputs"}
    assert lock["label_splits"] == {}  # no human-labelled sources in this manifest
    assert {"numpy", "pillow", "opencv-python-headless", "python"} <= set(lock["packages"])
    assert "references.jsonl" in lock["outputs"]
    assert "samples/refA_sd/train.jsonl" in lock["outputs"]
    assert lock["manifest"]["seed"] == 11


def test_stages_list_ends_with_lock() -> None:
    names = [n for n, _ in STAGES]
    assert names[:3] == ["ingest", "plan", "synthesize"]
    assert names[-1] == "lock"


def test_run_build_rejects_unknown_kind_and_stage(manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind 'refX'"):
        run_build(load(manifest_path), kinds=["refX"], out=tmp_path / "x")
    with pytest.raises(ValueError, match="unknown stage 'paint'"):
        run_build(load(manifest_path), stages=["paint"], out=tmp_path / "x")


def test_cli_build_regenerate_and_errors(built: Path, manifest_path: Path, tmp_path: Path
                                         ) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["build", str(manifest_path), "--no-prefect", "--kinds",
                              "refA_sd,refAB_sd", "--splits", "train", "--workers", "1",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "synthesize" in res.output and "refAB_sd/train" in res.output
    assert (out / "samples/refAB_sd/train.jsonl").read_bytes() == \
        (built / "samples/refAB_sd/train.jsonl").read_bytes()
    assert not (out / "samples/refA_md").exists()

    res = runner.invoke(app, ["regenerate", str(manifest_path), "--kind", "refA_sd",
                              "--split", "train", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "samples/refA_sd/train.jsonl").read_bytes() == \
        (built / "samples/refA_sd/train.jsonl").read_bytes()

    res = runner.invoke(app, ["build", str(manifest_path), "--no-prefect", "--kinds", "refX",
                              "--out", str(out)])
    assert res.exit_code == 2
    assert "unknown kind 'refX'" in _flat(res.output)
    res = runner.invoke(app, ["build", str(tmp_path / "nope.yaml"), "--no-prefect"])
    assert res.exit_code == 2 and "manifest not found" in _flat(res.output)


def test_cli_judge_switches_to_predictions(built: Path, manifest_path: Path, tmp_path: Path
                                           ) -> None:
    out = tmp_path / "ds"
    shutil.copytree(built, out)
    pairs = {r.sample_id: r for r in read_jsonl(out / "samples/refAB_sd/train.jsonl",
                                                SampleRecord)}
    first = sorted(pairs)[0]
    preds = {sid: (not r.judge.A_better_B) for sid, r in pairs.items() if sid != first}
    (tmp_path / "verdicts.json").write_text(json.dumps(preds))
    data = yaml.safe_load(manifest_path.read_text())
    data["judge"] = {"kind": "predictions", "predictions": str(tmp_path / "verdicts.json")}
    data["counts"] = {"refAB_sd": {"train": 5}}
    mpath = tmp_path / "pred.yaml"
    mpath.write_text(yaml.safe_dump(data))

    res = CliRunner().invoke(app, ["judge", str(mpath), "--out", str(out)])
    assert res.exit_code == 0, res.output
    after = {r.sample_id: r for r in read_jsonl(out / "samples/refAB_sd/train.jsonl",
                                                SampleRecord)}
    assert after[first].judge is None  # missing from the file: a failure, sample kept
    for sid, verdict in preds.items():
        assert after[sid].judge.judge == "predictions:verdicts.json"
        assert after[sid].judge.A_better_B is verdict
        assert after[sid].image_A == pairs[sid].image_A  # judged, not re-rendered
    failures = Store(out).failures("judge")
    assert [f.item_id for f in failures] == [first]
    assert "no prediction" in failures[0].message


def test_pool_workers_exit_when_the_build_process_is_gone() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    watcher = subprocess.Popen(
        [sys.executable, "-c",
         f"from pipeline.build import _watch_parent; _watch_parent({parent.pid}, 0.05)"],
        cwd=REPO)
    parent.wait()  # reaped: the pid is gone, as a killed build's is
    assert watcher.wait(timeout=60) == 1


# --------------------------------------------------------------------------- manifest errors
@pytest.mark.parametrize(("override", "field", "reason"), [
    ({"judge": {"kind": "predictions", "predictions": "nope.jsonl"}}, "judge.predictions",
     "not found"),
    ({"references": {"glob": "/etc/*", "splits": None}}, "references.glob", "is absolute"),
    ({"references": {"glob": "../outside/*", "splits": None}}, "references.glob",
     "leaves references.root"),
])
@pytest.mark.parametrize("mode", [["--no-prefect"], []])
def test_cli_manifest_errors_fail_cleanly_before_any_work(
        photo_dir: Path, tmp_path: Path, override: dict, field: str, reason: str,
        mode: list[str]) -> None:
    mpath = write_manifest(tmp_path / "m", photo_dir, **override)
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["build", str(mpath), *mode, "--out", str(out)])
    text = _flat(res.output)
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # typer.Exit, not an uncaught error
    assert "Traceback" not in res.output
    assert "error:" in text and str(mpath) in text and f"{field}:" in text and reason in text
    assert not out.exists()  # nothing ingested or planned


def test_build_api_checks_the_predictions_file_before_any_stage(photo_dir: Path,
                                                                tmp_path: Path) -> None:
    from pipeline.manifest import Manifest, ManifestError

    data = load(write_manifest(tmp_path / "m", photo_dir)).model_dump()
    m = Manifest.model_validate({**data, "judge": {"kind": "predictions",
                                                   "predictions": "gone.json"}})
    out = tmp_path / "ds"
    with pytest.raises(ManifestError, match="judge.predictions: .*gone.json not found"):
        run_build(m, out=out)
    assert not out.exists()


def test_cli_build_turns_a_judge_error_into_a_clean_failure(
        photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The predictions file vanishes after the manifest was checked: the synthesis stage's
    # JudgeError must still end as `error: ...`, exit 2, no traceback.
    monkeypatch.setattr("pipeline.manifest.check_manifest_files", lambda _m: None)
    monkeypatch.setattr("pipeline.build.check_manifest_files", lambda _m: None)
    mpath = write_manifest(tmp_path / "m", photo_dir,
                           judge={"kind": "predictions", "predictions": "nope.jsonl"},
                           counts={"refAB_sd": {"train": 2}})
    res = CliRunner().invoke(app, ["build", str(mpath), "--no-prefect", "--out",
                                   str(tmp_path / "ds")])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    text = _flat(res.output)
    assert "Traceback" not in res.output and "judge.predictions:" in text and "nope.jsonl" in text


def test_dqgen_command_missing_predictions_exits_2_without_traceback(
        photo_dir: Path, tmp_path: Path) -> None:
    mpath = write_manifest(tmp_path / "m", photo_dir,
                           judge={"kind": "predictions", "predictions": "nope.jsonl"})
    dqgen = Path(sys.executable).parent / "dqgen"
    cmd = [str(dqgen)] if dqgen.exists() else [sys.executable, "-c",
                                                 "from pipeline.cli import main; main()"]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "300"}
    proc = subprocess.run([*cmd, "build", str(mpath), "--no-prefect", "--out",
                           str(tmp_path / "ds")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output and "JudgeError" not in output
    assert str(mpath) in _flat(output) and "judge.predictions:" in output
    assert not (tmp_path / "ds").exists()


def test_outputs_get_the_umask_mode_not_0600(built: Path) -> None:
    from pipeline.store import FILE_MODE

    files = [p for p in built.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".jsonl" for p in files)
    wrong = {p.relative_to(built).as_posix(): oct(p.stat().st_mode & 0o777)
             for p in files if p.stat().st_mode & 0o777 != FILE_MODE}
    assert not wrong, f"expected {oct(FILE_MODE)}: {wrong}"


def test_two_builds_with_report_have_equal_locks(photo_dir: Path, tmp_path: Path) -> None:
    """The card and stats.json are outputs hashed in the lock: no time stamp may enter them
    (the respond run log under logs/ keeps the times and is left out)."""
    path = write_manifest(tmp_path / "m", photo_dir, tasks={"report": True,
                                                           "contact_sheet_samples": 2})
    a, b = tmp_path / "a", tmp_path / "b"
    run_build(load(path), workers=1, out=a)
    run_build(load(path), workers=1, out=b)
    lock_a = json.loads((a / "manifest.lock.json").read_text())
    assert "report/README.md" in lock_a["outputs"] and "report/stats.json" in lock_a["outputs"]
    assert not any(k.startswith("logs/") for k in lock_a["outputs"])
    assert (a / "logs" / "respond" / "template.jsonl").is_file()
    assert lock_a == json.loads((b / "manifest.lock.json").read_text())
    assert tree_digest(a) == tree_digest(b)
    # a no-op re-run rewrites no byte of the dataset: the report holds what the dataset
    # holds, the history (two runs now) is in logs/ only
    before = {p: p.read_bytes() for p in sorted(a.rglob("*")) if p.is_file()
              and p.relative_to(a).parts[0] != "logs"}
    run_build(load(path), workers=1, out=a)
    after = {p: p.read_bytes() for p in sorted(a.rglob("*")) if p.is_file()
             and p.relative_to(a).parts[0] != "logs"}
    assert sorted(after) == sorted(before)
    assert [str(p) for p in before if before[p] != after[p]] == []
    history = json.loads((a / "logs" / "respond_summary.json").read_text())
    # the re-run found every split of the respond stage finished (its resume stamps) and
    # asked nothing: no second respond run in the history
    assert history["totals"]["runs"] == 1
    assert not (a / "report" / "respond_summary.json").exists()


# --------------------------------------------------------------------------- ownership
def test_two_builds_racing_on_one_folder(built: Path, manifest_path: Path,
                                         tmp_path: Path) -> None:
    """A build holds the folder; a second one (bare or Prefect) refuses at once with one
    line naming the holder, and writes nothing; the first finishes undisturbed."""
    from pipeline.ownership import FolderBusyError

    out, gate, reached = tmp_path / "ds", tmp_path / "gate", tmp_path / "reached"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the first build, paused before its task files
        try:
            real = os.replace

            def replace_at_gate(src, dst):  # noqa: ANN001
                if "tasks/" in str(dst) and not gate.exists():
                    reached.touch()
                    while not gate.exists():
                        time.sleep(0.02)
                real(src, dst)

            os.replace = replace_at_gate
            run_build(load(manifest_path), workers=1, out=out)
            os._exit(0)
        finally:
            os._exit(1)
    try:
        deadline = time.monotonic() + 60
        while not reached.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reached.exists(), "the first build did not reach its task files"
        before = tree_digest(out)
        res = CliRunner().invoke(app, ["build", str(manifest_path), "--no-prefect",
                                       "--out", str(out)])
        assert res.exit_code == 2, res.output
        text = _flat(res.output)
        assert f"pid {pid} on" in text and "is in use by `dqgen build`" in text
        assert "Traceback" not in res.output
        from flows.build_flow import run_build_flow

        with pytest.raises(FolderBusyError, match=f"pid {pid} "):  # refused before Prefect
            run_build_flow(load(manifest_path), out=out)
        assert tree_digest(out) == before  # the refused builds wrote nothing
    finally:
        gate.touch()
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert tree_digest(out) == tree_digest(built) and not (out / ".dqgen.lock").exists()


def test_output_folder_inside_equal_to_or_containing_the_references_is_refused(
        photo_dir: Path, tmp_path: Path) -> None:
    from pipeline.ownership import OutputFolderError, check_output_folder

    m = load(write_manifest(tmp_path / "m", photo_dir))
    for out, how in ((photo_dir, "is references.root"), (photo_dir / "ds", "is inside"),
                     (photo_dir.parent, "contains")):
        with pytest.raises(OutputFolderError, match=how):
            check_output_folder(m, out)
    listing = sorted(p.name for p in photo_dir.iterdir())
    res = CliRunner().invoke(app, ["build", str(tmp_path / "m" / "manifest.yaml"),
                                   "--no-prefect", "--out", str(photo_dir / "ds")])
    assert res.exit_code == 2 and "is inside references.root" in _flat(res.output)
    assert sorted(p.name for p in photo_dir.iterdir()) == listing  # nothing written there


def test_a_full_disk_is_one_line_and_loses_nothing(built: Path, manifest_path: Path,
                                                   tmp_path: Path) -> None:
    """`dqgen build` into a 96 KiB tmpfs: one error line, no traceback; the partial folder
    copied to a roomy disk resumes to the bytes of an uninterrupted build."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        dqgen = Path(sys.executable).parent / "dqgen"
        env = {**os.environ, "COLUMNS": "300"}
        proc = subprocess.run([str(dqgen), "build", str(manifest_path), "--no-prefect",
                               "--out", str(mnt / "ds")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, output
        errors = [line for line in output.splitlines() if "error:" in line]
        assert len(errors) == 1 and "no space left on the device" in errors[0], output
        assert "Traceback" not in output and "Errno" not in output
        partial = tmp_path / "ds"
        shutil.copytree(mnt / "ds", partial)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert (partial / "references.jsonl").exists()
    run_build(load(manifest_path), workers=1, out=partial)  # the same command, more room
    assert tree_digest(partial) == tree_digest(built)
