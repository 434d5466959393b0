"""One style for every command: results on stdout (whole tables in a pipe, --json where a
table is printed), notes and errors on stderr; help without `<bool>` or `{arg}`; every
command that takes a dataset folder refuses a folder that is none the same way; the
contact sheet captions with the sentences that name the distortion and the verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands() -> list[list[str]]:
    out: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs is None:
            out.append(path)
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_help_of_every_command_has_one_style() -> None:
    commands = _commands()
    assert len(commands) >= 14
    for path in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, path
        text = res.output
        assert "<bool>" not in text and "<path>" not in text and "list[str]" not in text, path
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage and usage == usage.replace("[manifest]", ""), usage


def test_short_options_agree_across_commands() -> None:
    for path in (["build"], ["respond"], ["assemble"]):
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        for short, long in (("-k", "--kinds"), ("-s", "--splits"), ("-o", "--out")):
            line = next(line for line in res.output.splitlines() if long in line)
            assert short in line, (path, long)


def test_a_folder_that_is_no_dataset_is_refused_by_every_dataset_command(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (["report"], ["export"], ["retry-failures"]):
        res = runner.invoke(app, [*path, str(empty)])
        assert res.exit_code == 2, (path, res.output)
        assert f"{empty}: not a dataset folder" in res.output
    assert not (empty / "report").exists()


def test_tables_go_whole_to_stdout_in_a_pipe_and_json_parses() -> None:
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "distortions"], cwd=ROOT,
                          capture_output=True, text=True, env=env, check=True)
    assert "…" not in done.stdout and done.stderr == ""
    motion = next(line for line in done.stdout.splitlines() if "blur_motion" in line)
    assert "radius=24 sigma=15" in motion  # one row a line, not cut at 80 columns
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "labels", "list", "--json"],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert {row["name"] for row in json.loads(done.stdout)} >= {"kadid10k", "koniq10k"}


def test_the_caption_names_the_distortion_and_the_verdict() -> None:
    from pipeline.records import AppliedDistortion, ImageInfo, SampleRecord
    from pipeline.report import telling_sentences

    def img(name: str, category: str) -> ImageInfo:
        return ImageInfo(path=f"images/{name}.png", sha256="0" * 64,
                         distortions=[AppliedDistortion(name=name, category=category,
                                                        severity=2)])

    pair = SampleRecord.model_construct(
        sample_id="s", kind="refAB_sd", split="train", image_ref="references/r.png",
        image_A=img("blur_gaussian", "blur"), image_B=img("noise_gaussian_RGB", "noise"))
    text = ("The photo shows a red boat on a calm lake. Image A suffers from a moderate "
            "blur that softens the rigging. Image B carries grainy noise. Overall, Image B "
            "is better than Image A.")
    chosen = telling_sentences(text, pair)
    assert chosen[0].startswith("Image A suffers from a moderate blur")
    assert chosen[-1] == "Overall, Image B is better than Image A."
    assert not any("red boat" in t for t in chosen)


@pytest.mark.parametrize("argv", [["build", "--help"], ["distortions", "--help"]])
def test_help_goes_to_stdout(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert "Usage:" in done.stdout
