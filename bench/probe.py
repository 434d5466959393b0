"""Benchmark of the training side: loader images/s (0/2/4 workers) and training images/s.

    .venv/bin/python bench/probe.py DATASET [--batch-sizes 64,128,256] [--steps 6]

DATASET: a built dataset folder (A_brief_sd and refAB_brief task files). Prints each
figure with its ratio to a baseline measured in the same run (loader: 0 workers; training:
CPU float32 at the first batch size), and writes bench/results/probe-<time>.json.

- loader: `PairDataset` (ref, A, B: 3 PNG decodes + crops per item) through `make_loader`
  for one epoch, images/s decoded, with 0, 2 and 4 workers (no cache: every item decoded);
- training: `ProbeNet` steps (identify + compare, as the probe runs them) on random uint8
  batches, images/s, on CPU float32 and, when CUDA is present, on CUDA with and without
  mixed precision (bfloat16 autocast), each batch size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.train import PairDataset, make_loader  # noqa: E402
from pipeline.train.model import ProbeNet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def loader_rate(root: Path, workers: int, batch: int, crop: int, max_items: int) -> float:
    ds = PairDataset(root, "refAB_brief", "train", crop=crop, augment=True, seed=0)
    ds.records = ds.records[:max_items]
    loader = make_loader(ds, batch, shuffle=True, seed=0, workers=workers)
    loader.sampler.set_epoch(0)
    t = time.perf_counter()
    n = sum(b["images"].shape[0] * b["images"].shape[1] for b in loader)
    return n / (time.perf_counter() - t)


def train_rate(device: str, batch: int, crop: int, steps: int, amp: bool) -> float:
    dev = torch.device(device)
    torch.manual_seed(0)
    model = ProbeNet().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, 3, crop, crop), dtype=torch.uint8, generator=gen).to(dev)
    label = torch.randint(0, 13, (batch,), generator=gen).to(dev)
    better = torch.randint(0, 2, (batch,), generator=gen).float().to(dev)
    ctx = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if amp
           else torch.autocast(device_type=dev.type, enabled=False))

    def step() -> int:
        with ctx:
            logits, sev = model.single(x[:, 1])
            loss = F.cross_entropy(logits.float(), label) + sev.float().pow(2).mean()
            loss = loss + F.binary_cross_entropy_with_logits(
                model.compare(x[:, 0], x[:, 1], x[:, 2]).float(), better)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return 4 * batch  # images through the network: A, then ref + A + B

    step()  # warm-up (allocator, cuDNN autotune)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    n = sum(step() for _ in range(steps))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--batch-sizes", default="64,128,256")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per setting")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--loader-items", type=int, default=256, help="pairs per loader epoch")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    out: dict[str, Any] = {"dataset": str(args.dataset), "cpu_count": os.cpu_count(),
                           "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                           "crop": args.crop, "loader": {}, "train": {}}
    print(f"loader (refAB_brief, {args.crop} px crops, images/s decoded):")
    base = None
    for workers in (0, 2, 4):
        rate = loader_rate(args.dataset, workers, 32, args.crop, args.loader_items)
        base = base or rate
        out["loader"][str(workers)] = {"images_per_s": rate, "ratio": rate / base}
        print(f"  workers {workers}: {rate:8.1f} img/s  x{rate / base:.2f}")
    print(f"training (ProbeNet, identify + compare steps, {args.crop} px, images/s):")
    settings = [("cpu", False)]
    if torch.cuda.is_available():
        settings += [("cuda", False), ("cuda", True)]
    base = None
    for device, amp in settings:
        for b in batches:
            rate = train_rate(device, b, args.crop, args.steps, amp)
            base = base or rate
            key = f"{device}{'+amp' if amp else ''}/b{b}"
            out["train"][key] = {"images_per_s": rate, "ratio": rate / base}
            print(f"  {key:16s} {rate:10.1f} img/s  x{rate / base:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"probe-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
