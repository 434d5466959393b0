"""The torch Dataset over a task file (pipeline/torch_dataset.py)."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from pipeline.assemble import assemble_tasks, read_task_file
from tests.pipeline.task_fixtures import H, W, make_dataset


@pytest.fixture(scope="module")
def torch() -> Any:
    """torch, imported by the tests that use it (not when the suite is collected)."""
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    manifest, store = make_dataset(tmp_path_factory.mktemp("ds"))
    assemble_tasks(manifest, store)
    return store.root


def test_items_match_records_pil(root) -> None:
    from pipeline.torch_dataset import TaskDataset

    ds = TaskDataset(root, "refAB_detail_sd", "train")
    recs = read_task_file(root / "tasks" / "refAB_detail_sd" / "train.json")
    assert len(ds) == len(recs)
    item = ds[0]
    assert item["id"] == recs[0]["id"]
    assert item["question"] == recs[0]["conversations"][0]["value"]
    assert item["answer"] == recs[0]["conversations"][1]["value"]
    assert item["image_names"] == ["ref", "A", "B"]
    assert all(isinstance(im, Image.Image) and im.size == (W, H) for im in item["images"])
    ref = Image.open(root / recs[0]["image_ref"]).convert("RGB")
    assert item["images"][0].tobytes() == ref.tobytes()


def test_tensors_test_split_and_loader(root, torch) -> None:
    from pipeline.torch_dataset import TaskDataset, collate

    ds = TaskDataset(root, "A_brief_sd", "test", to_tensor=True)
    item = ds[0]
    assert item["image_names"] == ["A"]
    t = item["images"][0]
    assert t.shape == (3, H, W) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    assert item["answer"] == item["record"]["answer"]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate)
    batch = next(iter(loader))
    assert len(batch["images"]) == min(3, len(ds)) and len(batch["question"]) == len(batch["id"])


def test_transform_and_missing_file(root) -> None:
    from pipeline.torch_dataset import TaskDataset

    ds = TaskDataset(root, "AB_brief", "train", transform=lambda im: im.size)
    assert ds[0]["images"] == [(W, H), (W, H)]
    with pytest.raises(FileNotFoundError, match="A_brief_sd.*val"):
        TaskDataset(root, "A_brief_sd", "val")
