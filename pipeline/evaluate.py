"""Agreement of predicted scores with human labels: SRCC, KRCC, PLCC, RMSE, with intervals.

Reads the labelled sources of a dataset folder (`labels/<dataset>/images.jsonl`, their
splits and `splits.json`) and a set of predictions, and writes

    eval/<key>/metrics.json     per dataset: "all" and every split, k-fold mean/std
    eval/<key>/<dataset>.png    scatter of prediction vs MOS with the fitted logistic

Predictions (`load_predictions`) are one of:

- a scoring run's key (`openai--gpt-4o`): `scores/<key>/<dataset>.jsonl` (ScoreRecord,
  `final`), written by `dqgen score`;
- `probe`: the learnability probe's `probe/predictions.json` when present;
- a file: JSON `{image id: score}` (keys `image_id` or `dataset/image_id`), or JSON Lines
  with `image_id`, a score field (`final`, `score` or `prediction`) and optionally `dataset`.

Metrics (`metrics`), as in the IQA literature (pyiqa's conventions): SRCC and KRCC on the raw
predictions; PLCC raw and after the 4-parameter logistic

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

fitted by least squares (scipy `curve_fit`, start b1 = max MOS, b2 = min MOS, b3 = mean x,
b4 = std x); RMSE of the fitted predictions against the MOS (native units), and `rmse_raw`
of the raw predictions against the MOS (meaningful only for predictions on the MOS scale).
A fit that does not converge is flagged (`fit_failed`) and the fitted metrics are null.
Intervals: percentile bootstrap (95%, `n_boot` resamples of the images, seeded from the
manifest seed, the dataset and the split); the logistic is fitted once and kept fixed
across resamples (refitting 1000 times costs minutes on KonIQ-10k for a marginal change).
For sources with several split repeats (AGIQA-3k's 10 prompt splits), each repeat's test
split is evaluated and the mean and std over repeats are reported (`folds`).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.labels.records import LabelledImage
from pipeline.seeds import stable_hash
from pipeline.store import Store, atomic_write_json, read_jsonl

__all__ = ["METRICS", "bootstrap", "evaluate_scores", "evaluation_section", "fit_logistic", "krcc", "load_predictions",
           "logistic4", "metrics", "plcc", "rmse", "srcc"]

log = logging.getLogger(__name__)


def _check(pred: Sequence[float], mos: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, float)
    y = np.asarray(mos, float)
    if x.shape != y.shape or x.ndim != 1:
        msg = f"predictions and MOS must be 1-D of one length, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    if len(x) < 3:
        msg = f"at least 3 images are needed for correlations, got {len(x)}"
        raise ValueError(msg)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        msg = "predictions and MOS must be finite numbers (NaN or inf found)"
        raise ValueError(msg)
    return x, y


def _nan_to_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def srcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    from scipy.stats import spearmanr

    x, y = _check(pred, mos)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def krcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Kendall rank correlation (tau-b)."""
    from scipy.stats import kendalltau

    x, y = _check(pred, mos)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y).statistic)


def plcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Pearson linear correlation of the raw predictions."""
    from scipy.stats import pearsonr

    x, y = _check(pred, mos)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(pearsonr(x, y).statistic)


def rmse(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Root mean squared error."""
    x, y = _check(pred, mos)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic of the IQA literature (see the module docstring)."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def fit_logistic(pred: Sequence[float], mos: Sequence[float]) -> tuple[float, ...] | None:
    """Least-squares fit of `logistic4` mapping predictions to MOS; None when it fails."""
    from scipy.optimize import OptimizeWarning, curve_fit

    x, y = _check(pred, mos)
    if np.ptp(x) == 0 or len(x) < 5:  # 4 parameters need more points than that
        return None
    start = [float(y.max()), float(y.min()), float(x.mean()), float(x.std()) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, x, y, p0=start, maxfev=20000)
    except (RuntimeError, ValueError, TypeError):
        return None
    if not np.isfinite(params).all():
        return None
    return tuple(float(p) for p in params)


def metrics(pred: Sequence[float], mos: Sequence[float]) -> dict[str, Any]:
    """Every agreement figure of one set of predictions against its MOS (module docstring)."""
    x, y = _check(pred, mos)
    fit = fit_logistic(x, y)
    out: dict[str, Any] = {
        "n": int(len(x)), "srcc": _nan_to_none(srcc(x, y)), "krcc": _nan_to_none(krcc(x, y)),
        "plcc": _nan_to_none(plcc(x, y)), "rmse_raw": _nan_to_none(rmse(x, y)),
        "plcc_fitted": None, "rmse": None, "fit": None, "fit_failed": fit is None,
    }
    if fit is not None:
        fx = logistic4(x, *fit)
        out["plcc_fitted"] = _nan_to_none(plcc(fx, y))
        out["rmse"] = _nan_to_none(rmse(fx, y))
        out["fit"] = [round(p, 8) for p in fit]
    return out


METRICS: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "srcc": srcc, "krcc": krcc, "plcc": plcc, "rmse_raw": rmse,
}
_BETTER = {"srcc": "higher", "krcc": "higher", "plcc": "higher", "plcc_fitted": "higher",
           "rmse": "lower", "rmse_raw": "lower"}


def bootstrap(pred: Sequence[float], mos: Sequence[float], *, seed: int, n_boot: int = 1000,
              fit: Sequence[float] | None = None) -> dict[str, list[float | None]]:
    """Percentile 95% intervals of srcc, krcc, plcc (and plcc_fitted, rmse with `fit` held
    fixed) over `n_boot` resamples drawn from `np.random.default_rng(seed)`."""
    from scipy.stats import rankdata

    x, y = _check(pred, mos)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    bx, by = x[idx], y[idx]
    draws: dict[str, np.ndarray] = {
        "srcc": _rowwise_pearson(rankdata(bx, axis=1), rankdata(by, axis=1)),
        "krcc": _rowwise_kendall(bx, by),
        "plcc": _rowwise_pearson(bx, by),
    }
    if fit is not None:
        fx = logistic4(x, *fit)[idx]
        draws["plcc_fitted"] = _rowwise_pearson(fx, by)
        draws["rmse"] = np.sqrt(np.mean((fx - by) ** 2, axis=1))
    out: dict[str, list[float | None]] = {}
    for k, arr in draws.items():
        arr = arr[np.isfinite(arr)]
        out[k] = ([None, None] if len(arr) == 0
                  else [round(float(np.percentile(arr, 2.5)), 6),
                        round(float(np.percentile(arr, 97.5)), 6)])
    return out


def _rowwise_kendall(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair: pairwise sign matrices for small n (in chunks that
    keep memory bounded), scipy's O(n log n) per row for large n."""
    n = a.shape[1]
    if n > 400:
        return np.array([krcc(x, y) for x, y in zip(a, b, strict=True)])
    out = np.empty(a.shape[0])
    step = max(1, 2_000_000 // (n * n))
    for start in range(0, a.shape[0], step):
        ca, cb = a[start:start + step], b[start:start + step]
        da = np.sign(ca[:, :, None] - ca[:, None, :])
        db = np.sign(cb[:, :, None] - cb[:, None, :])
        den = np.sqrt((da * da).sum(axis=(1, 2)) * (db * db).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + step] = np.where(den > 0, (da * db).sum(axis=(1, 2))
                                               / np.where(den > 0, den, 1.0), np.nan)
    return out


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b` (NaN if constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


# predictions ---------------------------------------------------------------------------
Predictions = dict[tuple[str | None, str], float]  # (dataset or None, image id) -> score


def _score_field(row: dict[str, Any]) -> float | None:
    for k in ("final", "score", "prediction"):
        if isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool):
            return float(row[k])
    return None


def _read_file(path: Path) -> Predictions:
    text = path.read_text(encoding="utf-8")
    out: Predictions = {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                msg = f"{path}: the value of {k!r} is not a number"
                raise ValueError(msg)
            ds, _, image = k.rpartition("/")
            out[(ds or None, image)] = float(v)
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            msg = f"{path}: line {n} is not JSON"
            raise ValueError(msg) from None
        score = _score_field(row) if isinstance(row, dict) else None
        if score is None or "image_id" not in row:
            if isinstance(row, dict) and row.get("failed"):
                continue
            msg = f"{path}: line {n} has no image_id and numeric final/score/prediction"
            raise ValueError(msg)
        out[(row.get("dataset"), str(row["image_id"]))] = score
    return out


def load_predictions(store: Store, scores: str) -> tuple[str, Predictions]:
    """(key, predictions) for `scores`: an existing file, `probe`, or a scoring run's key.

    Raises:
        FileNotFoundError: nothing of that name (the message lists the scoring keys present).
        ValueError: a file that is not in one of the accepted formats (names file and line).
    """
    path = Path(scores).expanduser()
    if path.is_file():
        return path.stem, _read_file(path)
    if scores == "probe" and (store.root / "probe" / "predictions.json").is_file():
        return "probe", _read_file(store.root / "probe" / "predictions.json")
    folder = store.root / "scores" / scores
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        present = sorted(p.name for p in (store.root / "scores").glob("*") if p.is_dir())
        msg = (f"--scores {scores}: not a file, and {folder} holds no scores "
               f"(scoring keys present: {', '.join(present) or 'none'})")
        raise FileNotFoundError(msg)
    out: Predictions = {}
    for f in files:
        for row in read_jsonl(f):
            if row.get("final") is not None:
                out[(row.get("dataset") or f.stem, row["image_id"])] = float(row["final"])
    return scores, out


# the evaluation -------------------------------------------------------------------------
def _labelled_sources(store: Store) -> dict[str, list[LabelledImage]]:
    out = {}
    for path in sorted((store.root / "labels").glob("*/images.jsonl")):
        rows = list(read_jsonl(path, LabelledImage))
        if rows:
            out[path.parent.name] = rows
    return out


def _group(images: list[LabelledImage], preds: Predictions, dataset: str,
           ids: set[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    names, x, y = [], [], []
    for im in images:
        if ids is not None and im.image_id not in ids:
            continue
        p = preds.get((dataset, im.image_id), preds.get((None, im.image_id)))
        if p is None:
            continue
        names.append(im.image_id)
        x.append(p)
        y.append(im.labels[im.label])
    return names, np.asarray(x, float), np.asarray(y, float)


def _seed(seed: int, *parts: object) -> int:
    return int(stable_hash(seed, "evaluate", *parts)[:16], 16) >> 1


def _block(x: np.ndarray, y: np.ndarray, *, seed: int, n_boot: int) -> dict[str, Any]:
    if len(x) < 3:
        return {"n": int(len(x)), "error": "fewer than 3 scored images"}
    m = metrics(x, y)
    if n_boot > 0:
        m["ci95"] = bootstrap(x, y, seed=seed, n_boot=n_boot, fit=m["fit"])
    return m


def _folds(store: Store, dataset: str, images: list[LabelledImage], preds: Predictions,
           seed: int) -> dict[str, Any] | None:
    path = store.root / "labels" / dataset / "splits.json"
    try:
        repeats = json.loads(path.read_text(encoding="utf-8")).get("repeats") or []
    except (OSError, ValueError):
        return None
    if len(repeats) < 2:
        return None
    per: list[dict[str, Any]] = []
    for i, rep in enumerate(repeats):
        _, x, y = _group(images, preds, dataset, set(rep.get("test", [])))
        if len(x) >= 3:
            per.append({"repeat": i, **metrics(x, y)})
    if not per:
        return None
    out: dict[str, Any] = {"repeats": len(repeats), "evaluated": len(per), "split": "test"}
    for k in ("srcc", "krcc", "plcc", "plcc_fitted", "rmse"):
        vals = [p[k] for p in per if p[k] is not None]
        out[k] = ({"mean": round(float(np.mean(vals)), 6), "std": round(float(np.std(vals)), 6)}
                  if vals else None)
    out["per_repeat"] = [{k: p[k] for k in ("repeat", "n", "srcc", "plcc", "plcc_fitted")}
                         for p in per]
    return out


def _scatter(path: Path, title: str, x: np.ndarray, y: np.ndarray,
             fit: Sequence[float] | None, m: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.scatter(x, y, s=8, alpha=0.6, color="#1f77b4", edgecolors="none")
    if fit is not None and np.ptp(x) > 0:
        xs = np.linspace(float(x.min()), float(x.max()), 200)
        ax.plot(xs, logistic4(xs, *fit), color="#d62728", lw=1.5, label="4-parameter logistic")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("predicted score")
    ax.set_ylabel("MOS")
    srcc_v, plcc_v = m.get("srcc"), m.get("plcc_fitted")
    ax.set_title(f"{title}: SRCC {srcc_v if srcc_v is None else f'{srcc_v:.3f}'}, PLCC "
                 f"{plcc_v if plcc_v is None else f'{plcc_v:.3f}'} (n={len(x)})", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # fixed metadata: the same numbers give the same bytes
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def evaluate_scores(store: Store, scores: str, *, seed: int = 0, n_boot: int = 1000,
                    datasets: list[str] | None = None, plots: bool = True) -> dict[str, Any]:
    """Evaluate predictions (`load_predictions`) against every labelled source of `store`.

    Returns the metrics document written to `eval/<key>/metrics.json`.

    Raises:
        FileNotFoundError: see `load_predictions`; or the folder has no labelled sources.
    """
    key, preds = load_predictions(store, scores)
    sources = _labelled_sources(store)
    if datasets:
        sources = {k: v for k, v in sources.items() if k in datasets}
    else:  # pseudo-labels are a model's scores, not human labels: only when asked for
        sources = {k: v for k, v in sources.items()
                   if v[0].attributes.get("provenance") != "mllm_score"}
    if not sources:
        msg = f"{store.root}: no labelled sources (labels/<dataset>/images.jsonl); run `dqgen labels build`"
        raise FileNotFoundError(msg)
    out_dir = store.root / "eval" / key
    doc: dict[str, Any] = {"key": key, "scores": scores if not Path(scores).is_file() else
                           Path(scores).name, "seed": seed, "n_boot": n_boot, "datasets": {}}
    for dataset, images in sources.items():
        names, x, y = _group(images, preds, dataset)
        entry: dict[str, Any] = {"images": len(images), "scored": len(names),
                                 "label": images[0].label}
        if not names:
            entry["error"] = "no predictions for this dataset"
            doc["datasets"][dataset] = entry
            continue
        entry["all"] = _block(x, y, seed=_seed(seed, dataset, "all"), n_boot=n_boot)
        entry["splits"] = {}
        for split in sorted({im.split or "none" for im in images}):
            ids = {im.image_id for im in images if (im.split or "none") == split}
            _, sx, sy = _group(images, preds, dataset, ids)
            entry["splits"][split] = _block(sx, sy, seed=_seed(seed, dataset, split),
                                            n_boot=n_boot)
        folds = _folds(store, dataset, images, preds, seed)
        if folds is not None:
            entry["folds"] = folds
        if plots and "srcc" in entry["all"]:
            png = out_dir / f"{dataset}.png"
            _scatter(png, dataset, x, y, entry["all"].get("fit"), entry["all"])
            entry["plot"] = store.rel(png)
        doc["datasets"][dataset] = entry
    doc["better"] = _BETTER
    atomic_write_json(out_dir / "metrics.json", doc)
    return doc


def evaluation_section(store: Store) -> list[str]:
    """Markdown lines of the report's "Agreement with human labels" section: one table row
    per evaluated key and dataset (`eval/*/metrics.json`), with its scatter plot; nothing
    when no evaluation was run."""
    docs = []
    for path in sorted((store.root / "eval").glob("*/metrics.json")):
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            log.warning("report: unreadable %s", path)
    if not docs:
        return []

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    out = ["## Agreement with human labels", "",
           "Predicted scores against each source's MOS (`dqgen evaluate`): SRCC with its "
           "bootstrap 95% interval, PLCC after the 4-parameter logistic fit, KRCC, RMSE (MOS "
           "units, fitted). Folds: mean ± std of SRCC over the split repeats' test splits.", "",
           "| scores | dataset | n | SRCC [95% CI] | PLCC (fit) | PLCC (raw) | KRCC | RMSE | folds |",
           "|---|---|---|---|---|---|---|---|---|"]
    plots = []
    for doc in docs:
        for ds, e in doc.get("datasets", {}).items():
            m = e.get("all", {})
            if "srcc" not in m:
                out.append(f"| {doc['key']} | {ds} | {m.get('n', 0)} | "
                           f"{e.get('error') or m.get('error', '-')} | | | | | |")
                continue
            ci = (m.get("ci95") or {}).get("srcc")
            fo = (e.get("folds") or {}).get("srcc")
            out.append(f"| {doc['key']} | {ds} | {m['n']} | {f(m['srcc'])}"
                       + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")
                       + f" | {f(m['plcc_fitted'])} | {f(m['plcc'])} | {f(m['krcc'])} | "
                       f"{f(m['rmse'])} | "
                       + (f"{f(fo['mean'])} ± {f(fo['std'])}" if fo else "-") + " |")
            if e.get("plot"):
                plots.append(f"![{doc['key']} {ds}](../{e['plot']})")
    return out + [""] + plots + ([""] if plots else [])
