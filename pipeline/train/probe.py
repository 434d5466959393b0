"""The learnability probe: train `ProbeNet` on a dataset's train split, evaluate on test.

Tasks (records of the dataset's own task files):

- identify: the category of image A (clean + 12), from A alone: ``A_brief_sd``;
- severity: the severity of A (0 = clean ... 5), a regression on the same records;
- compare: which of A and B is closer to the reference: ``refAB_brief`` (synthetic pairs
  judged by the build's judge, and human-judged pairs when the dataset has them).

`run_probe(root, config)` writes ``<out>/metrics.json``, ``confusion.png``, ``curves.png``
and ``checkpoint.pt`` (out defaults to ``<root>/probe``) and returns the metrics.

Device: chosen once (`resolve_device`); on CUDA mixed precision (bfloat16 where supported,
else float16 with a GradScaler), ``torch.compile``, channels-last, pinned memory and
persistent loader workers; on CPU plain float32, deterministic algorithms and a fixed
thread count, so two CPU runs with one seed give the same metrics. `minutes` caps the
whole run (training stops early enough to leave time for the final evaluation), and the
metrics say whether the cap stopped it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.train.data import CATEGORIES, PairDataset, TaskImageDataset, make_loader
from pipeline.train.model import ProbeNet

__all__ = ["IDENTIFY_TASK", "COMPARE_TASK", "ProbeConfig", "resolve_device", "run_probe",
           "spearman"]

IDENTIFY_TASK = "A_brief_sd"
COMPARE_TASK = "refAB_brief"
METRICS_VERSION = 1


@dataclass
class ProbeConfig:
    """Settings of one probe run (all recorded in metrics.json).

    Args:
        epochs: passes over the train split (identify and compare records interleaved).
        seed: seeds the initial weights, the order and the crops.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        minutes: cap on the whole run's wall time (None: no cap).
        batch_size: items per batch (compare batches hold 3 images per item).
        crop: training window (px); eval_crop: centred window of evaluation.
        lr / weight_decay: AdamW with a cosine schedule over the planned steps.
        width: channels of the first trunk stage.
        workers: loader processes (None: 0 on CPU, up to 4 on CUDA).
        threads: torch CPU threads (None: min(4, CPUs); fixed for reproducible sums).
        amp / compile: None: on for CUDA, off on CPU.
        eval_each_epoch: score the test split after every epoch (the curves' test points);
            None: on CUDA yes, on CPU only after the last epoch (a CPU's time goes to
            training; train loss and accuracy are drawn per epoch either way).
    """

    epochs: int = 6
    seed: int = 0
    device: str = "auto"
    minutes: float | None = None
    batch_size: int = 64
    crop: int = 64
    eval_crop: int = 96
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    workers: int | None = None
    threads: int | None = None
    amp: bool | None = None
    compile: bool | None = None
    eval_each_epoch: bool | None = None


def resolve_device(name: str) -> torch.device:
    """The torch device for "auto" | "cpu" | "cuda" (| "cuda:N").

    Raises:
        ValueError: an unknown name, or "cuda" without a CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            msg = f"device {name!r}: no CUDA device here (torch {torch.__version__}); use cpu or auto"
            raise ValueError(msg)
        return torch.device(name)
    msg = f"device must be auto, cpu or cuda, got {name!r}"
    raise ValueError(msg)


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (average ranks for ties); nan under 3 items or no spread."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        msg = f"spearman: lengths differ ({a.size} vs {b.size})"
        raise ValueError(msg)
    if a.size < 3:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.arange(v.size, dtype=np.float64)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


# --------------------------------------------------------------------------- setup
@dataclass
class _Run:
    device: torch.device
    amp_dtype: torch.dtype | None
    compiled: bool
    threads: int


def _setup(config: ProbeConfig) -> _Run:
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    threads = config.threads or min(4, os.cpu_count() or 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        use_amp = True if config.amp is None else config.amp
        amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if use_amp else None
    else:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        amp_dtype = torch.bfloat16 if config.amp else None  # CPU autocast only when asked
    compiled = (cuda if config.compile is None else config.compile) and hasattr(torch, "compile")
    return _Run(device=device, amp_dtype=amp_dtype, compiled=compiled, threads=threads)


def _autocast(run: _Run) -> contextlib.AbstractContextManager[Any]:
    if run.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=run.device.type, dtype=run.amp_dtype)


def _to(batch: dict[str, Any], run: _Run) -> dict[str, Any]:
    nb = run.device.type == "cuda"
    out = dict(batch)
    for key in ("images", "label", "severity", "better"):
        out[key] = batch[key].to(run.device, non_blocking=nb)
    return out


def _schedule(n_id: int, n_cmp: int) -> list[str]:
    """Which loader each step of an epoch draws from, both spread evenly over the epoch."""
    steps: list[str] = []
    i = j = 0
    while i < n_id or j < n_cmp:
        if j >= n_cmp or (i < n_id and (i + 0.5) / n_id <= (j + 0.5) / n_cmp):
            steps.append("identify")
            i += 1
        else:
            steps.append("compare")
            j += 1
    return steps


# --------------------------------------------------------------------------- progress
class TextProgress:
    """A plain progress line on stderr (the CLI passes a richer one)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self._last = 0.0

    def __call__(self, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if not info.get("final") and now - self._last < 0.5:
            return
        self._last = now
        frac = info["step"] / max(1, info["total_steps"])
        bar = "#" * int(30 * frac)
        self.stream.write(f"\rprobe [{bar:<30}] epoch {info['epoch'] + 1}/{info['epochs']} "
                          f"{info['images_per_s']:.0f} img/s loss {info['loss']:.3f}")
        if info.get("final"):
            self.stream.write("\n")
        self.stream.flush()


# --------------------------------------------------------------------------- train/eval
def _loss(model: Any, step_kind: str, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
    images = batch["images"]
    if step_kind == "identify":
        a = images[:, 0]
        logits, sev = model.single(a)
        label = batch["label"]
        known = label >= 0
        ce = F.cross_entropy(logits[known].float(), label[known]) if bool(known.any()) else logits.sum() * 0
        sev_loss = F.smooth_l1_loss(sev.float(), batch["severity"] / 5.0)
        correct = float((logits.argmax(1)[known] == label[known]).float().sum())
        return ce + sev_loss, {"identify": float(ce.detach()), "severity": float(sev_loss.detach()),
                               "identify_correct": correct, "identify_n": float(known.sum())}, a.shape[0]
    ref, a, b = images[:, 0], images[:, 1], images[:, 2]
    logit = model.compare(ref, a, b)
    bce = F.binary_cross_entropy_with_logits(logit.float(), batch["better"])
    correct = float(((logit > 0).float() == batch["better"]).float().sum())
    return bce, {"compare": float(bce.detach()), "compare_correct": correct,
                 "compare_n": float(a.shape[0])}, 3 * a.shape[0]


@torch.no_grad()
def _evaluate(model: Any, id_loader: Any, cmp_loader: Any, run: _Run) -> dict[str, Any]:
    model.eval()
    true: list[int] = []
    pred: list[int] = []
    sev_true: list[float] = []
    sev_pred: list[float] = []
    for batch in id_loader:
        batch = _to(batch, run)
        with _autocast(run):
            logits, sev = model.single(batch["images"][:, 0])
        true += batch["label"].tolist()
        pred += logits.float().argmax(1).tolist()
        sev_true += batch["severity"].tolist()
        sev_pred += (sev.float() * 5.0).tolist()
    cmp_ok: list[bool] = []
    cmp_human: list[bool] = []
    if cmp_loader is not None:
        for batch in cmp_loader:
            batch = _to(batch, run)
            im = batch["images"]
            with _autocast(run):
                logit = model.compare(im[:, 0], im[:, 1], im[:, 2])
            cmp_ok += ((logit.float() > 0).float() == batch["better"]).tolist()
            cmp_human += batch["human"].tolist()
    model.train()
    return {"true": true, "pred": pred, "sev_true": sev_true, "sev_pred": sev_pred,
            "cmp_ok": cmp_ok, "cmp_human": cmp_human}


def _acc(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def _identify_metrics(ev: dict[str, Any], train_labels: list[int]) -> dict[str, Any]:
    true, pred = np.asarray(ev["true"], dtype=np.int64), np.asarray(ev["pred"], dtype=np.int64)
    known = true >= 0
    k = len(CATEGORIES)
    conf = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(true[known], pred[known], strict=True):
        conf[t, p] += 1
    counts = np.bincount([t for t in train_labels if t >= 0], minlength=k)
    majority = int(counts.argmax()) if counts.sum() else 0
    n = int(known.sum())
    per_cat = {}
    for i, name in enumerate(CATEGORIES):
        n_i = int(conf[i].sum())
        if n_i:
            per_cat[name] = {"accuracy": float(conf[i, i] / n_i), "n": n_i}
    return {
        "task": IDENTIFY_TASK,
        "test_accuracy": float(np.trace(conf) / n) if n else None,
        "n_test": int(true.size),
        "n_test_labelled": n,
        # a constant answer: the most frequent class of the train split, scored on test
        "chance": float((true[known] == majority).mean()) if n else None,
        "chance_rule": f"most frequent train class ({CATEGORIES[majority]}) on test",
        "chance_uniform": 1.0 / k,
        "classes": list(CATEGORIES),
        "per_category": per_cat,
        "confusion": conf.tolist(),
    }


def _eval_estimate(images_seen: int, train_s: float, n_eval_images: int,
                   config: ProbeConfig) -> float:
    """Seconds the final evaluation will take, before one has been timed: a forward pass
    costs about a third of a training step, per pixel."""
    if not images_seen:
        return 1.0
    per_image = train_s / images_seen / 3.0 * (config.eval_crop / config.crop) ** 2
    return 1.0 + 1.2 * n_eval_images * per_image


def _epoch_row(epoch: float, sums: dict[str, float], steps: dict[str, int],
               ev: dict[str, Any] | None) -> dict[str, Any]:
    def mean(key: str, kind: str) -> float | None:
        return sums[key] / steps[kind] if steps[kind] else None

    true = np.asarray(ev["true"] if ev else [], dtype=np.int64)
    pred = np.asarray(ev["pred"] if ev else [], dtype=np.int64)
    known = true >= 0
    return {
        "epoch": round(epoch, 4),
        "loss_identify": mean("identify", "identify"),
        "loss_severity": mean("severity", "identify"),
        "loss_compare": mean("compare", "compare"),
        "train_identify_accuracy": (sums["identify_correct"] / sums["identify_n"]
                                    if sums["identify_n"] else None),
        "train_compare_accuracy": (sums["compare_correct"] / sums["compare_n"]
                                   if sums["compare_n"] else None),
        "test_identify_accuracy": float((true[known] == pred[known]).mean()) if known.any() else None,
        "test_compare_accuracy": _acc(ev["cmp_ok"]) if ev else None,
    }


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _datasets(root: Path, config: ProbeConfig) -> dict[str, Any]:
    common = {"seed": config.seed, "cache": True}
    out: dict[str, Any] = {
        "id_train": TaskImageDataset(root, IDENTIFY_TASK, "train", crop=config.crop,
                                     augment=True, **common),
        "id_test": TaskImageDataset(root, IDENTIFY_TASK, "test", crop=config.eval_crop,
                                    augment=False, **common),
        "cmp_train": None, "cmp_test": None,
    }
    cmp_dir = root / "tasks" / COMPARE_TASK
    if (cmp_dir / "train.json").is_file():
        ds = PairDataset(root, COMPARE_TASK, "train", crop=config.crop, augment=True, **common)
        out["cmp_train"] = ds if len(ds) else None
    if (cmp_dir / "test.json").is_file():
        ds = PairDataset(root, COMPARE_TASK, "test", crop=config.eval_crop, augment=False,
                         **common)
        out["cmp_test"] = ds if len(ds) else None
    if not len(out["id_train"]):
        msg = f"{root / 'tasks' / IDENTIFY_TASK / 'train.json'}: no records to train on"
        raise ValueError(msg)
    return out


def _cycle_epochs(loader: Any, start: int) -> Iterator[Any]:
    loader.sampler.set_epoch(start)
    return iter(loader)


def run_probe(root: str | Path, config: ProbeConfig | None = None, *,
              out: str | Path | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the probe on ``train``, evaluate on ``test``, write metrics, figures, checkpoint.

    Args:
        root: the dataset folder (with tasks/A_brief_sd/{train,test}.json; refAB_brief too
            for the comparison figures).
        config: settings (default `ProbeConfig()`).
        out: output folder (default ``<root>/probe``).
        progress: called with a dict (step, total_steps, epoch, epochs, images_per_s, loss,
            final) as training goes (default: a text line on stderr; pass
            ``lambda info: None`` for silence).

    Returns:
        The metrics written to metrics.json.

    Raises:
        FileNotFoundError: a task file the probe needs is missing (the message names it).
        ValueError: a bad setting (device, epochs) or an empty train split.
    """
    config = config or ProbeConfig()
    if config.epochs < 1:
        msg = f"epochs must be >= 1, got {config.epochs}"
        raise ValueError(msg)
    t_start = time.monotonic()
    cap_s = config.minutes * 60.0 if config.minutes is not None else None
    root = Path(root)
    out_dir = Path(out) if out is not None else root / "probe"
    run = _setup(config)
    progress = progress or TextProgress()
    data = _datasets(root, config)
    bs = config.batch_size
    dev = run.device
    mk = {"device": dev, "seed": config.seed, "workers": config.workers}
    id_loader = make_loader(data["id_train"], bs, shuffle=True, drop_last=len(data["id_train"]) > bs, **mk)
    cmp_loader = (make_loader(data["cmp_train"], bs, shuffle=True,
                              drop_last=len(data["cmp_train"]) > bs, **mk)
                  if data["cmp_train"] is not None else None)
    id_eval = make_loader(data["id_test"], 2 * bs, **mk)
    cmp_eval = make_loader(data["cmp_test"], bs, **mk) if data["cmp_test"] is not None else None

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed & ((1 << 63) - 1))
        model = ProbeNet(n_classes=len(CATEGORIES), width=config.width)
    model = model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if run.compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_id = len(id_loader)
    n_cmp = len(cmp_loader) if cmp_loader is not None else 0
    schedule = _schedule(n_id, n_cmp)
    total_steps = config.epochs * len(schedule)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps,
                                                pct_start=0.15)
    scaler = torch.amp.GradScaler("cuda", enabled=run.amp_dtype == torch.float16)
    train_labels = [_label_of(r) for r in data["id_train"].records]

    each_epoch = dev.type == "cuda" if config.eval_each_epoch is None else config.eval_each_epoch
    n_eval_images = len(data["id_test"]) + 3 * (len(data["cmp_test"]) if data["cmp_test"] else 0)
    ev: dict[str, Any] | None = None
    curves: list[dict[str, Any]] = []
    images_seen = 0
    train_s = 0.0
    eval_s = 0.0
    step = 0
    capped = False
    epochs_done = 0.0
    loss_ema = float("nan")
    model.train()
    for epoch in range(config.epochs):
        id_iter = _cycle_epochs(id_loader, epoch)
        cmp_iter = _cycle_epochs(cmp_loader, epoch) if cmp_loader is not None else None
        sums = dict.fromkeys(("identify", "severity", "compare", "identify_correct",
                              "identify_n", "compare_correct", "compare_n"), 0.0)
        steps = {"identify": 0, "compare": 0}
        t_epoch = time.monotonic()
        for i, kind in enumerate(schedule):
            if cap_s is not None and time.monotonic() - t_start + (
                    eval_s or _eval_estimate(images_seen, train_s + time.monotonic() - t_epoch,
                                             n_eval_images, config)) >= cap_s:
                capped = True
                break
            batch = _to(next(id_iter if kind == "identify" else cmp_iter), run)  # type: ignore[arg-type]
            with _autocast(run):
                loss, parts, n_images = _loss(net, kind, batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            for key, value in parts.items():
                sums[key] += value
            steps[kind] += 1
            step += 1
            images_seen += n_images
            lv = float(loss.detach())
            loss_ema = lv if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * lv
            elapsed = train_s + time.monotonic() - t_epoch
            progress({"step": step, "total_steps": total_steps, "epoch": epoch,
                      "epochs": config.epochs, "images_per_s": images_seen / max(elapsed, 1e-9),
                      "loss": loss_ema, "final": False})
            epochs_done = epoch + (i + 1) / len(schedule)
        train_s += time.monotonic() - t_epoch
        last = capped or epoch == config.epochs - 1
        ev = None
        if last or each_epoch:
            t_eval = time.monotonic()
            ev = _evaluate(net, id_eval, cmp_eval, run)
            eval_s = time.monotonic() - t_eval
        curves.append(_epoch_row(epochs_done, sums, steps, ev))
        if capped:
            break
    progress({"step": step, "total_steps": total_steps, "epoch": max(0, math.ceil(epochs_done) - 1),
              "epochs": config.epochs, "images_per_s": images_seen / max(train_s, 1e-9),
              "loss": loss_ema, "final": True})

    assert ev is not None  # the last epoch (or the capped one) was scored
    identify = _identify_metrics(ev, train_labels)
    sev_true, sev_pred = np.asarray(ev["sev_true"]), np.asarray(ev["sev_pred"])
    ok = ~np.isnan(sev_true)
    severity = {"task": IDENTIFY_TASK, "test_spearman": _finite(spearman(sev_true[ok], sev_pred[ok])),
                "test_mae": float(np.abs(sev_true[ok] - sev_pred[ok]).mean()) if ok.any() else None,
                "n_test": int(ok.sum()), "target": "severity of A, 0 = clean ... 5 (regression)"}
    human = np.asarray(ev["cmp_human"], dtype=bool)
    cmp_ok = np.asarray(ev["cmp_ok"], dtype=bool)
    compare = {"task": COMPARE_TASK, "test_accuracy": _acc(cmp_ok.tolist()),
               "n_test": int(cmp_ok.size), "chance": 0.5,
               "synthetic": {"test_accuracy": _acc(cmp_ok[~human].tolist()),
                             "n_test": int((~human).sum())},
               "human": {"test_accuracy": _acc(cmp_ok[human].tolist()), "n_test": int(human.sum())},
               "n_train": len(data["cmp_train"]) if data["cmp_train"] is not None else 0,
               "skipped_test": data["cmp_test"].skipped if data["cmp_test"] is not None else 0}
    identify["n_train"] = len(data["id_train"])
    wall_s = time.monotonic() - t_start
    metrics: dict[str, Any] = {
        "metrics_version": METRICS_VERSION,
        "dataset": str(root.resolve()),
        "device": str(dev) if dev.type != "cuda" else f"cuda ({torch.cuda.get_device_name(dev)})",
        "identify": identify,
        "severity": severity,
        "compare": compare,
        "epochs_requested": config.epochs,
        "epochs_completed": round(epochs_done, 4),
        "steps": step,
        "time_capped": capped,
        "minutes_cap": config.minutes,
        "train_images": images_seen,
        "train_images_per_s": images_seen / max(train_s, 1e-9),
        "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3),
        "wall_s": round(wall_s, 3),
        "amp": str(run.amp_dtype).replace("torch.", "") if run.amp_dtype else None,
        "compiled": run.compiled,
        "threads": run.threads if dev.type == "cpu" else None,
        "torch": torch.__version__,
        "config": asdict(config),
        "curves": curves,
        "files": {"confusion": "confusion.png", "curves": "curves.png",
                  "checkpoint": "checkpoint.pt"},
    }
    from pipeline.train.plots import plot_confusion, plot_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(identify, out_dir / "confusion.png")
    plot_curves(curves, identify.get("chance"), out_dir / "curves.png")
    _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                  "epoch": epochs_done, "config": asdict(config), "classes": list(CATEGORIES),
                  "metrics_version": METRICS_VERSION}, out_dir / "checkpoint.pt")
    _atomic_text(json.dumps(metrics, indent=2) + "\n", out_dir / "metrics.json")
    return metrics


def _finite(v: float) -> float | None:
    return None if v is None or math.isnan(v) else v


def _label_of(rec: dict[str, Any]) -> int:
    from pipeline.train.data import image_labels

    dist = rec.get("distortions") or {}
    return image_labels(dist.get("A") if isinstance(dist, dict) else None)[0]
