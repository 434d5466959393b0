"""`dqgen labels list/check` and the data_manifest/ entries of the human-labelled datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.labels import adapter_names
from pipeline.labels.build import build_labels
from pipeline.manifest import load_manifest
from pipeline.store import Store
from tests.pipeline.labels.fixtures import make_kadid10k

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


def test_list_shows_every_dataset():
    res = runner.invoke(app, ["labels", "list", "--layout"])
    assert res.exit_code == 0, res.output
    for name in adapter_names():
        assert name in res.output


def test_help_names_every_registered_dataset():
    from pipeline.cli.labels import labels_help
    from pipeline.labels import ADAPTERS

    titles = [ADAPTERS[name].title for name in adapter_names()]
    assert "AGIQA-1k" in titles
    assert all(t in labels_help() for t in titles)
    res = runner.invoke(app, ["labels", "--help"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the help text is wrapped to the terminal width
    assert all(t in text for t in titles), text


def test_check_reads_without_writing(tmp_path):
    make_kadid10k(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = runner.invoke(app, ["labels", "check", "KADID-10k", str(tmp_path), "--show", "2"])
    assert res.exit_code == 0, res.output
    assert "images: 12" in res.output and "failures: 4" in res.output
    assert "and 2 more" in res.output and "(dmos - 1) / 4" in res.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_check_errors(tmp_path):
    res = runner.invoke(app, ["labels", "check", "nope", str(tmp_path)])
    assert res.exit_code == 2 and "unknown dataset 'nope'" in res.output
    res = runner.invoke(app, ["labels", "check", "kadid10k", str(tmp_path)])
    assert res.exit_code == 2 and "dmos.csv" in res.output


@pytest.mark.parametrize("name", [*adapter_names(), "instant_rating"])
def test_data_manifests_validate_and_name_their_placeholder(name, tmp_path):
    m = load_manifest(REPO / "data_manifest" / f"{name}.yaml")
    assert m.sources and not m.counts
    assert all(s.root.startswith("/path/to/") for s in m.sources)
    result = build_labels(m, Store(tmp_path))  # placeholder roots: one clear failure each
    assert result["failures"] == len(m.sources)
    for summary in result["sources"].values():
        assert "not found" in summary["error"] and "/path/to/" in summary["error"]
