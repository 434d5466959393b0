"""Map-style torch datasets over dqgen task files, seeded augmentation, collate, loaders.

Reads the dataset folder as dqgen writes it: ``tasks/<task>/<split>.json`` (a JSON list of
records; image paths ``image_ref`` / ``image_A`` / ``image_B`` relative to the dataset
root; the ground truth in ``distortions`` {"A": [...], "B": [...]} and, for comparisons,
``A_better_B``). Torch, numpy, Pillow and the standard library only.

Determinism: an item's crop and flip come from `sample_rng(seed, epoch, index)`, a numpy
Generator of its own, never from global state or the worker that decodes it. The epoch
travels inside the index: `EpochSampler` yields ``epoch * len(dataset) + i``, so persistent
workers (which never see a `set_epoch` made in the main process) still draw the new
epoch's crops, and any worker count gives the same batches.

Images are returned as uint8 tensors (C x H x W): a quarter of the bytes of float32 through
pinned memory to the GPU; the model scales them there.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["CATEGORIES", "EpochSampler", "PairDataset", "TaskImageDataset", "collate",
           "crop_params", "image_labels", "make_loader", "read_task", "sample_rng"]

# "clean" + the twelve distortion categories of the spec (distortions/ registry; a test
# checks the two agree). Index = class id of the identification head.
CATEGORIES: tuple[str, ...] = (
    "clean", "blur", "brighten", "compression", "contrast_strengthen", "contrast_weaken",
    "darken", "noise", "oversharpen", "pixelate", "quantization", "saturate_strengthen",
    "saturate_weaken",
)
_CLASS = {c: i for i, c in enumerate(CATEGORIES)}
_KEYS = (("image_ref", "ref"), ("image_A", "A"), ("image_B", "B"))
_SEED_MASK = (1 << 63) - 1


def read_task(root: str | Path, task: str, split: str) -> list[dict[str, Any]]:
    """Records of ``<root>/tasks/<task>/<split>.json``.

    Raises:
        FileNotFoundError: no such task file (the message names it and the splits present).
        ValueError: the file is not a JSON list.
    """
    path = Path(root) / "tasks" / task / f"{split}.json"
    if not path.is_file():
        present = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        msg = (f"{path}: no task file for task {task!r}, split {split!r} "
               f"(splits present: {', '.join(present) or 'none'})")
        raise FileNotFoundError(msg)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        msg = f"{path}: a task file must hold a JSON list, got {type(data).__name__}"
        raise ValueError(msg)
    return data


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The Generator of one item in one epoch (independent of workers and order)."""
    return np.random.default_rng([seed & _SEED_MASK, epoch, index])


def crop_params(rng: np.random.Generator | None, height: int, width: int, crop: int,
                *, flip: bool = True) -> tuple[int, int, bool]:
    """(top, left, horizontal flip) of a `crop` x `crop` window; centred when `rng` is None.

    Draw order is fixed (top, left, flip), whatever the sizes, so a change of image size
    does not shift the other draws.
    """
    if rng is None:
        return max(0, (height - crop) // 2), max(0, (width - crop) // 2), False
    u_top, u_left, u_flip = rng.random(3)
    top = int(u_top * (max(0, height - crop) + 1))
    left = int(u_left * (max(0, width - crop) + 1))
    return top, left, bool(flip and u_flip < 0.5)


def _window(arr: np.ndarray, top: int, left: int, crop: int, flip: bool) -> np.ndarray:
    out = arr[top:top + crop, left:left + crop]
    ph, pw = crop - out.shape[0], crop - out.shape[1]
    if ph > 0 or pw > 0:  # an image smaller than the crop: mirror its border
        out = np.pad(out, ((0, max(0, ph)), (0, max(0, pw)), (0, 0)), mode="symmetric")
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def image_labels(distortions: Sequence[dict[str, Any]] | None) -> tuple[int, float]:
    """(class id, severity) of one image's distortion list.

    Clean (empty list): (0, 0.0). One distortion: its category and severity. Two or
    more (md kinds), or an unknown category: class -1 (no single label) and the largest
    severity. No list at all (a human-labelled pair): (-1, nan).
    """
    if distortions is None:
        return -1, float("nan")
    if not distortions:
        return 0, 0.0
    severity = float(max(d.get("severity", 0) for d in distortions))
    if len(distortions) > 1:
        return -1, severity
    return _CLASS.get(distortions[0].get("category", ""), -1), severity


class TaskImageDataset(Dataset):
    """The images of one task file with their labels, cropped and flipped from a seed.

    Args:
        root: the dataset folder.
        task: task name, e.g. "A_brief_sd" or "refAB_brief" (any task file works).
        split: split name ("train", "test", ...).
        crop: side of the square window taken from every image (the same window in all
            images of a record: ref, A and B stay aligned); None keeps whole images
            (then a batch needs images of one size).
        augment: random window and horizontal flip (train); False: centred, no flip.
        seed: seed of the augmentation draws.
        cache: keep decoded images in memory (per worker process) for later epochs.

    Each item is a dict: ``images`` uint8 tensor (K x 3 x H x W, K = images of the record
    in the order ref, A, B), ``names`` (["ref", "A", "B"] present), ``label`` (class id of
    A, see `image_labels`), ``severity`` (of A), ``better`` (1.0: A is better than B, 0.0:
    B is, -1.0: no comparison), ``human`` (bool: a human-judged pair), ``index``, ``id``.

    Raises:
        FileNotFoundError / ValueError: see `read_task`.
    """

    def __init__(self, root: str | Path, task: str, split: str, *, crop: int | None = 96,
                 augment: bool = False, seed: int = 0, cache: bool = False) -> None:
        self.root = Path(root)
        self.task, self.split = task, split
        self.records = read_task(root, task, split)
        self.crop, self.augment, self.seed, self.cache = crop, augment, seed, cache
        self._decoded: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _decode(self, rel: str) -> np.ndarray:
        arr = self._decoded.get(rel)
        if arr is None:
            path = self.root / rel
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"))
            except (OSError, ValueError) as err:
                msg = f"{path}: cannot read image ({err})"
                raise OSError(msg) from err
            if self.cache:
                self._decoded[rel] = arr
        return arr

    def _images(self, rec: dict[str, Any], epoch: int, index: int) -> tuple[torch.Tensor, list[str]]:
        present = [(key, name) for key, name in _KEYS if rec.get(key)]
        arrays = [self._decode(rec[key]) for key, _ in present]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1 and self.crop is not None:
            msg = f"{rec.get('id')}: images of one record differ in size {sorted(shapes)}"
            raise ValueError(msg)
        if self.crop is not None:
            h, w = arrays[0].shape[:2]
            rng = sample_rng(self.seed, epoch, index) if self.augment else None
            top, left, flip = crop_params(rng, h, w, self.crop)
            arrays = [_window(a, top, left, self.crop, flip) for a in arrays]
        stacked = np.stack(arrays).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(stacked)), [n for _, n in present]

    def __getitem__(self, key: int) -> dict[str, Any]:
        index, epoch = key % len(self.records), key // len(self.records)
        rec = self.records[index]
        images, names = self._images(rec, epoch, index)
        dist = rec.get("distortions") or {}
        label, severity = image_labels(dist.get("A") if isinstance(dist, dict) else None)
        better = rec.get("A_better_B")
        return {"images": images, "names": names, "label": label, "severity": severity,
                "better": -1.0 if better is None else float(bool(better)),
                "human": rec.get("provenance") == "human", "index": index,
                "id": rec.get("id", str(index))}


class PairDataset(TaskImageDataset):
    """A comparison task with its reference (refAB_brief): items hold ref, A and B.

    Same arguments and items as `TaskImageDataset` (``images`` is 3 x 3 x H x W in the
    order ref, A, B; ``better`` is 1.0 when A is the better image). Records without a
    reference or without a verdict are left out (`skipped` counts them).

    Raises:
        ValueError: no record of the file has ref, A, B and a verdict.
    """

    def __init__(self, root: str | Path, task: str = "refAB_brief", split: str = "train",
                 **kwargs: Any) -> None:
        super().__init__(root, task, split, **kwargs)
        keep = [r for r in self.records if r.get("image_ref") and r.get("image_A")
                and r.get("image_B") and r.get("A_better_B") is not None]
        self.skipped = len(self.records) - len(keep)
        self.records = keep


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a batch: ``images`` N x K x 3 x H x W uint8, labels as tensors, ids as a list."""
    if not batch:
        return {}
    return {
        "images": torch.stack([b["images"] for b in batch]),
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.long),
        "severity": torch.tensor([b["severity"] for b in batch], dtype=torch.float32),
        "better": torch.tensor([b["better"] for b in batch], dtype=torch.float32),
        "human": torch.tensor([b["human"] for b in batch], dtype=torch.bool),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "id": [b["id"] for b in batch],
        "names": batch[0]["names"],
    }


class EpochSampler(Sampler[int]):
    """Indices of one epoch, shuffled from (seed, epoch), carrying the epoch (see module doc).

    `set_epoch(e)` before iterating; yields ``e * n + i`` for a permutation of i in [0, n).
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed & _SEED_MASK, self.epoch, 1]).permutation(self.n)
        base = self.epoch * self.n
        return iter((base + order).tolist())


def _worker_init(worker_id: int) -> None:
    # Augmentation never reads these; seeded anyway so user transforms that do stay
    # reproducible (torch gives each worker base_seed + id from the loader's generator).
    seed = torch.initial_seed() & 0xFFFFFFFF
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)  # workers decode; the main process computes


def make_loader(dataset: Dataset, batch_size: int, *, device: str | torch.device = "cpu",
                shuffle: bool = False, seed: int = 0, workers: int | None = None,
                drop_last: bool = False, prefetch_factor: int = 4) -> DataLoader:
    """A DataLoader set up for `device`: pinned memory on CUDA, persistent workers.

    Workers start from a clean process (forkserver where the platform has it, else spawn),
    never as a fork of the caller: a fork of a process that runs threads (a Prefect flow,
    an HTTP client, the `train_probe` deployment) inherits their locks and at-fork hooks,
    and its workers died at start ("DataLoader worker exited unexpectedly"). They stay
    alive across epochs (persistent), so that start is paid once per loader.

    Args:
        dataset: a dataset indexed by ``epoch * len + i`` (the datasets of this module).
        batch_size: items per batch.
        device: where batches go; "cuda" turns on pin_memory.
        shuffle: a new seeded order every epoch (`loader.sampler.set_epoch`).
        seed: seed of the order and of the workers' base seed.
        workers: decoding processes (None: min(4, CPUs - 1) on CUDA, 0 on CPU).
        drop_last: drop a last incomplete batch (train: keeps batch statistics steady).
        prefetch_factor: batches each worker prepares ahead (workers > 0 only).
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if workers is None:
        workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if cuda else 0
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed & _SEED_MASK)
    extra: dict[str, Any] = {}
    if workers > 0:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods
                                              else "spawn")
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor,
                 "worker_init_fn": _worker_init, "multiprocessing_context": context}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, pin_memory=cuda, drop_last=drop_last,
                      generator=generator, **extra)
