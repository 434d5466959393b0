"""Manifests: validation errors name the field; shipped manifests load; paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipeline.ingest import list_sources, load_reference
from pipeline.manifest import ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "field", "reason"), [
    ("counts: {refC_sd: {train: 3}}", "counts", "unknown sample kind 'refC_sd'"),
    ("counts: {refA_sd: {train: -1}}", "counts", "count must be >= 0"),
    ("clean_probability: 1.5", "clean_probability", "less than or equal to 1"),
    ("png_compress_level: 12", "png_compress_level", "less than or equal to 9"),
    ("chunk_size: 0", "chunk_size", "greater than or equal to 1"),
    ("resize: {short_side: 8}", "resize.short_side", "greater than or equal to 32"),
    ("references: {files: ['../x.png']}", "references.files", "leaves references.root"),
    ("references: {files: ['/etc/x.png']}", "references.files", "is absolute"),
    ("references: {splits: {train: ['a/../../b.png']}}", "references.splits", "leaves"),
    ("references: {files: [a.png], split_file: s.json}", "references", "only one of"),
    ("references: {glob: '/etc/*'}", "references.glob", "is absolute"),
    ("references: {glob: 'C:/photos/*.jpg'}", "references.glob", "is absolute"),
    ("references: {glob: '../outside/*'}", "references.glob", "leaves references.root"),
    ("references: {glob: 'a/../../*.png'}", "references.glob", "'..' is not allowed"),
    ("references: {glob: ''}", "references.glob", "empty pattern"),
    ("judge: {kind: predictions}", "judge", "needs a predictions file"),
    ("judge: {kind: oracle}", "judge.kind", "'fr_score' or 'predictions'"),
    ("colour: red", "colour", "Extra inputs are not permitted"),
])
def test_errors_name_the_field(tmp_path: Path, text: str, field: str, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert str(path) in msg and f"{field}:" in msg and reason in msg


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "missing.yaml")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(_write(tmp_path, "counts: [unclosed"))
    with pytest.raises(ManifestError, match="must be a YAML mapping"):
        load_manifest(_write(tmp_path, "- a\n- b\n"))


def test_output_resolves_against_working_directory(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "manifests"
    sub.mkdir()
    path = sub / "x.yaml"
    path.write_text("name: x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    m = load_manifest(path)
    assert m.output_dir() == (tmp_path / "out" / "x").resolve()
    assert m.resolve("s.json") == (sub / "s.json").resolve()  # other paths: manifest folder


def test_demo_manifest_lists_real_photos_that_load_offline() -> None:
    m = load_manifest(REPO / "data_manifest" / "demo.yaml")
    assert m.references.root == "@skimage"
    sources, failures = list_sources(m)
    assert not failures
    assert 8 <= len(sources) <= 12
    assert {s.split for s in sources} == {"train", "test"}
    root = m.references_root()
    for s in sources:
        arr, _, (w, h) = load_reference(root / s.source, max_pixels=m.references.max_pixels)
        assert arr.shape[2] == 3 and min(w, h) >= 224
        assert Image.open(root / s.source).size == (w, h)
    assert set(m.kinds()) == {"refA_sd", "refA_md", "refAB_sd", "refAB_md"}


def test_full_scale_manifest_has_published_counts() -> None:
    m = load_manifest(REPO / "data_manifest" / "dq495k.yaml")
    assert m.counts["refA_sd"]["train"] == 112_000
    assert m.counts["refAB_sd"] == {"train": 20_000, "test": 200}
    assert m.counts["refAB_md"] == {"train": 8_000, "test": 100}
    assert m.references.split_file is not None and m.resize.short_side == 224


def test_cli_default_manifest_is_the_embedded_demo() -> None:
    from pipeline.cli._app import load_manifest_or_demo

    m = load_manifest_or_demo(None)
    assert m.name == "demo" and m.references.root == "@skimage"
    assert Path(m.base_dir) == (REPO / "data_manifest").resolve()


def test_relative_globs_are_accepted(tmp_path: Path) -> None:
    for pattern in ("*", "**/*.jpg", "sub/*.png", "a..b/*", "*..png"):
        m = load_manifest(_write(tmp_path, f"references: {{glob: '{pattern}'}}"))
        assert m.references.glob == pattern


def test_missing_predictions_file_is_a_manifest_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "judge: {kind: predictions, predictions: nope.jsonl}")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert str(path) in msg and "judge.predictions:" in msg
    assert str(tmp_path / "nope.jsonl") in msg and "not found" in msg
    (tmp_path / "nope.jsonl").mkdir()
    with pytest.raises(ManifestError, match="is not a file"):
        load_manifest(path)
    (tmp_path / "nope.jsonl").rmdir()
    (tmp_path / "nope.jsonl").write_text('{"sample_id": "x", "A_better_B": true}\n')
    m = load_manifest(path)  # resolved against the manifest's folder
    assert m.resolve(m.judge.predictions or "") == tmp_path / "nope.jsonl"
