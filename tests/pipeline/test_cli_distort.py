"""CLI tests of `dqgen distortions`, `dqgen distort` and `dqgen distort-grid` on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import distortions
from pipeline.cli import app
from pipeline.cli.distort import _GRID_PAD, _HEADER_H, _LABEL_W, format_params

runner = CliRunner()


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_distort")
    cat = Image.fromarray(data.chelsea())  # 451 x 300
    cat.resize((120, 80), Image.Resampling.BICUBIC).save(root / "cat.jpg", quality=95)
    cat.resize((120, 80)).convert("L").save(root / "cat_grey.png")
    rgba = cat.resize((64, 48)).convert("RGBA")
    rgba.save(root / "cat_rgba.png")
    (root / "not_an_image.jpg").write_text("this is text, not a JPEG")
    good = (root / "cat.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    Image.new("RGB", (20, 50), "red").save(root / "tiny.png")
    return root


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def test_distortions_lists_every_name_with_parameters() -> None:
    res = runner.invoke(app, ["distortions"])
    assert res.exit_code == 0, res.output
    for name in distortions.names():
        assert name in res.output
    for name in distortions.names():
        assert distortions.REGISTRY[name].category in res.output
    assert "sev 5" in res.output and "random" in res.output
    # every value is printed with its field name, one-field tables included
    assert format_params(distortions.REGISTRY["quantization_otsu"].table[0]) == "classes=15"
    for name in ("blur_gaussian", "blur_lens", "blur_zoom", "blur_jitter"):
        row = distortions.REGISTRY[name].table[0]
        field = next(iter(row._asdict()))
        assert f"{field}=" in format_params(row)
        assert f"{field}=" in res.output


def test_distortions_json_and_markdown_name_every_field() -> None:
    import json

    res = runner.invoke(app, ["distortions", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == distortions.names()
    motion = next(r for r in rows if r["name"] == "blur_motion")
    assert set(motion["severities"]) == {"1", "2", "3", "4", "5"}
    assert set(motion["severities"]["1"]) == set(
        distortions.REGISTRY["blur_motion"].table[0]._asdict())
    md = runner.invoke(app, ["distortions", "--markdown"]).stdout
    assert md.count("\n") == len(distortions.names()) + 2
    assert "| `blur_motion` | blur |" in md


def test_format_params_of_several_fields() -> None:
    from typing import NamedTuple

    class P(NamedTuple):
        radius: int
        sigma: float

    assert format_params(P(5, 3.0)) == "radius=5 sigma=3"
    assert format_params(0.25) == "0.25"
    assert format_params((1, 2.5)) == "(1, 2.5)"


@pytest.mark.parametrize(
    ("name", "severity", "seed"),
    [
        ("quantization_otsu", 4, 0),
        ("quantization_median", 2, 5),
        ("quantization_hist", 5, 11),
        ("noise_gaussian_RGB", 3, 42),
        ("blur_glass", 3, 42),
        ("blur_motion", 2, 9),
    ],
)
def test_distort_equals_apply_with_the_same_seed(
    photo_dir: Path, tmp_path: Path, name: str, severity: int, seed: int
) -> None:
    out = tmp_path / "sub" / "out.png"
    res = runner.invoke(
        app,
        [
            "distort",
            str(photo_dir / "cat.jpg"),
            str(out),
            "--name",
            name,
            "--severity",
            str(severity),
            "--seed",
            str(seed),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    src = _decoded(photo_dir / "cat.jpg")
    expected = distortions.apply(src, name, severity, np.random.default_rng(seed))
    np.testing.assert_array_equal(_decoded(out), expected)


def test_distort_alias_and_grey_input(photo_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "distort",
            str(photo_dir / "cat_grey.png"),
            str(tmp_path / "g.png"),
            "-n",
            "brightness_brighten_shfit_HSV",
            "-s",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "brightness_brighten_shift_HSV" in res.output  # the corrected spelling is reported
    grey = _decoded(photo_dir / "cat_grey.png")
    np.testing.assert_array_equal(
        _decoded(tmp_path / "g.png"),
        distortions.apply(grey, "brightness_brighten_shift_HSV", 2, np.random.default_rng(0)),
    )


def test_distort_rgba_input_and_jpeg_output(photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.jpg"
    res = runner.invoke(
        app,
        [
            "distort",
            str(photo_dir / "cat_rgba.png"),
            str(out),
            "-n",
            "quantization_hist",
            "-s",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (64, 48) and im.mode == "RGB"


def test_distort_notes_are_printed(tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.new("RGB", (40, 40), (90, 90, 90)).save(flat)
    res = runner.invoke(
        app, ["distort", str(flat), str(tmp_path / "o.png"), "-n", "quantization_otsu", "-s", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "note:" in res.output and "flat" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "blur_gausian", "-s", "1"], "unknown distortion 'blur_gausian'; known: "),
        (["-n", "quantization_otsu", "-s", "0"], "--severity must be an int in 1..5, got '0'"),
        (["-n", "quantization_otsu", "-s", "6"], "--severity must be an int in 1..5, got '6'"),
        (["-n", "quantization_otsu", "-s", "3.0"], "--severity must be an int in 1..5, got '3.0'"),
        (["-n", "quantization_otsu", "-s", "two"], "--severity must be an int in 1..5, got 'two'"),
    ],
)
def test_distort_bad_name_or_severity(
    photo_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    res = runner.invoke(
        app, ["distort", str(photo_dir / "cat.jpg"), str(tmp_path / "o.png"), *args]
    )
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.png").exists()
    if "unknown" in message:
        assert "quantization_hist" in res.output  # the known names are listed


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("missing.jpg", "no such file"),
        ("not_an_image.jpg", "not an image"),
        ("truncated.jpg", "truncated"),
        ("tiny.png", "too small"),
    ],
)
def test_distort_unreadable_inputs(photo_dir: Path, tmp_path: Path, file: str, reason: str) -> None:
    path = photo_dir / file
    res = runner.invoke(
        app, ["distort", str(path), str(tmp_path / "o.png"), "-n", "quantization_otsu", "-s", "1"]
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"cannot read {path}" in text
    assert reason in text
    assert "Traceback" not in res.output


def test_distort_unknown_output_extension(photo_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "distort",
            str(photo_dir / "cat.jpg"),
            str(tmp_path / "o.xyz"),
            "-n",
            "quantization_otsu",
            "-s",
            "1",
        ],
    )
    assert res.exit_code == 2
    assert "unknown image extension '.xyz'" in " ".join(res.output.split())


def test_distort_grid_size_cells_and_labels(photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    res = runner.invoke(
        app,
        ["distort-grid", str(photo_dir / "cat.jpg"), str(out), "--short-side", "48", "--seed", "3"],
    )
    assert res.exit_code == 0, res.output
    names = distortions.names()
    assert len(names) == 35, "registry incomplete: the grid has one row per distortion"
    w, h = 72, 48  # 120 x 80 scaled to short side 48 (bicubic, as references are)
    sheet = _decoded(out)
    assert sheet.shape == (
        _HEADER_H + len(names) * (h + _GRID_PAD),
        _LABEL_W + 6 * (w + _GRID_PAD),
        3,
    )
    assert f"{sheet.shape[1]} x {sheet.shape[0]} px" in " ".join(res.output.split())

    from pipeline.ingest import resize_short_side

    small = resize_short_side(_decoded(photo_dir / "cat.jpg"), 48)
    assert small.shape[:2] == (h, w)
    badge = 16  # the severity badge covers the top-left corner of a distorted cell
    for row in (0, len(names) // 2, len(names) - 1):
        y = _HEADER_H + row * (h + _GRID_PAD)
        np.testing.assert_array_equal(sheet[y : y + h, _LABEL_W : _LABEL_W + w], small)
        for s in (1, 5):
            x = _LABEL_W + s * (w + _GRID_PAD)
            want = distortions.apply(small, names[row], s, np.random.default_rng(3))
            np.testing.assert_array_equal(sheet[y + badge : y + h, x : x + w], want[badge:])
    # the label column holds text (dark pixels) on every row
    for row in range(len(names)):
        y = _HEADER_H + row * (h + _GRID_PAD)
        assert (sheet[y : y + h, :_LABEL_W] < 100).any(), names[row]


def test_distort_grid_bad_input(photo_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["distort-grid", str(photo_dir / "not_an_image.jpg"), str(tmp_path / "g.png")]
    )
    assert res.exit_code == 2 and "not an image" in res.output
    res = runner.invoke(
        app,
        ["distort-grid", str(photo_dir / "cat.jpg"), str(tmp_path / "g.png"), "--short-side", "8"],
    )
    assert res.exit_code == 2


def test_help_texts() -> None:
    for cmd in ("distortions", "distort", "distort-grid"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0
        assert "Usage" in res.output
    res = runner.invoke(app, ["distort", "--help"])
    assert "default_rng(seed)" in " ".join(res.output.split())

