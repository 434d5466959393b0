"""A small torch `Dataset` over one task file (torch is the `train` extra).

    from pipeline.torch_dataset import TaskDataset
    ds = TaskDataset("out/demo", "A_detail_sd", "train")          # PIL images
    ds = TaskDataset("out/demo", "refAB_brief", "test", to_tensor=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate)

Each item is a dict: `id`, `task_type`, `question`, `answer`, `images` (the record's images
in the order reference, A, B; PIL RGB images, or float tensors C x H x W in [0, 1] with
`to_tensor=True`, or whatever `transform` returns), `image_names` (["ref", "A", "B"] for
the images present; A_score_isp records put their examples "example1".."exampleK" first),
`record` (the full record, provenance included). Images are decoded
lazily in `__getitem__`, so workers of a DataLoader share nothing but paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as err:  # pragma: no cover - torch is installed in the test environment
    _msg = ("pipeline.torch_dataset needs torch: install the CPU wheel first "
            "(pip install torch==2.13.0) or pip install 'dqgen[train]'")
    raise ImportError(_msg) from err

import numpy as np
from PIL import Image

from pipeline.assemble import read_task_file
from pipeline.schema import validate_task_record
from pipeline.store import Store

__all__ = ["TaskDataset", "collate"]

_NAMES = (("image_ref", "ref"), ("image_A", "A"), ("image_B", "B"))


class TaskDataset(Dataset):
    """Records of tasks/<task>/<split>.json with their images.

    Args:
        root: the dataset folder.
        task: task name, e.g. "A_brief_sd".
        split: split name ("train" records have conversations; others query/answer).
        transform: applied to each PIL image (e.g. a torchvision transform).
        to_tensor: without a transform, return float tensors C x H x W in [0, 1].
        validate: check every record against pipeline.schema when loading.

    Raises:
        FileNotFoundError: the task file does not exist (the message names it).
    """

    def __init__(self, root: str | Path, task: str, split: str, *,
                 transform: Callable[[Image.Image], Any] | None = None,
                 to_tensor: bool = False, validate: bool = True) -> None:
        self.store = Store(root)
        self.path = self.store.task_path(task, split)
        if not self.path.is_file():
            msg = f"{self.path}: no task file for task {task!r}, split {split!r}"
            raise FileNotFoundError(msg)
        self.task, self.split = task, split
        self.records = read_task_file(self.path)
        if validate:
            for rec in self.records:
                validate_task_record(rec, split)
        self.transform = transform
        self.to_tensor = to_tensor

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, rel: str) -> Any:
        with Image.open(self.store.abs(rel)) as im:
            image = im.convert("RGB")
        if self.transform is not None:
            return self.transform(image)
        if self.to_tensor:
            arr = np.asarray(image, dtype=np.float32) / 255.0
            return torch.from_numpy(arr.transpose(2, 0, 1).copy())
        return image

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        if "conversations" in rec:
            question, answer = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
        else:
            question, answer = rec["query"], rec["answer"]
        present = [(rec[key], name) for key, name in _NAMES if rec.get(key) is not None]
        # A_score_isp records: the scored examples first, then the image to score (A)
        examples = [(p, f"example{i + 1}") for i, p in enumerate(rec.get("isp_images") or [])]
        present = examples + present
        return {"id": rec["id"], "task_type": rec["task_type"], "question": question,
                "answer": answer, "images": [self._load(p) for p, _ in present],
                "image_names": [name for _, name in present], "record": rec}


def collate(batch: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Keep a batch as lists (records have 2 or 3 images of possibly different sizes)."""
    return {key: [item[key] for item in batch] for key in batch[0]} if batch else {}
