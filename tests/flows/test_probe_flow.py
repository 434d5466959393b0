"""The `train_probe` flow (the GPU pool's deployment) runs the probe for real under Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.build import run_build
from pipeline.manifest import load_manifest


@pytest.mark.usefixtures("prefect_api")
def test_train_probe_flow_writes_the_metrics(tiny_manifest: Path, tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from flows.probe_flow import train_probe

    root = Path(run_build(load_manifest(tiny_manifest), out=tmp_path / "ds")["output"])
    metrics = train_probe(dataset=str(root), epochs=1, seed=1, device="cpu", batch_size=4)
    written = json.loads((root / "probe" / "metrics.json").read_text(encoding="utf-8"))
    assert written["identify"] == metrics["identify"] and written["device"] == "cpu"
    n_test = len(json.loads((root / "tasks" / "A_brief_sd" / "test.json").read_text()))
    assert written["identify"]["n_test"] == n_test and written["config"]["seed"] == 1
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(
            any_=["train_probe"])))
    mine = [r for r in runs if r.parameters.get("dataset") == str(root)]
    assert len(mine) == 1 and mine[0].state.is_completed()
