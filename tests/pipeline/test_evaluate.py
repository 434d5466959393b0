"""Agreement metrics against scipy on known arrays, the 4-parameter logistic fit, bootstrap
intervals, prediction files, and the evaluation of a labelled folder (folds, plots)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

from pipeline.evaluate import (
    bootstrap,
    evaluate_scores,
    fit_logistic,
    krcc,
    load_predictions,
    logistic4,
    metrics,
    plcc,
    rmse,
    srcc,
)
from pipeline.store import Store

X = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.0, 7.0, 3.5])
Y = np.array([10.0, 25.0, 18.0, 40.0, 38.0, 60.0, 66.0, 75.0, 90.0, 30.0])


def test_metrics_match_scipy_on_known_arrays():
    assert srcc(X, Y) == pytest.approx(stats.spearmanr(X, Y).statistic, abs=1e-12)
    assert krcc(X, Y) == pytest.approx(stats.kendalltau(X, Y).statistic, abs=1e-12)
    assert plcc(X, Y) == pytest.approx(stats.pearsonr(X, Y).statistic, abs=1e-12)
    assert rmse(X, Y) == pytest.approx(np.sqrt(np.mean((X - Y) ** 2)))
    # hand-checkable: perfect ranks, reversed ranks
    assert srcc([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert krcc([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rmse([0, 0, 0], [3, 4, 0]) == pytest.approx(np.sqrt(25 / 3))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        plcc([1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        metrics([1, 2, float("nan")], [1, 2, 3])


def test_logistic_fit_recovers_synthetic_parameters():
    rng = np.random.default_rng(7)
    x = np.linspace(0, 10, 200)
    true = (90.0, 10.0, 5.0, 1.2)
    y = logistic4(x, *true) + rng.normal(0, 0.5, x.size)
    fit = fit_logistic(x, y)
    assert fit is not None
    b1, b2, b3, b4 = fit
    assert (b1, b2, b3, abs(b4)) == pytest.approx(true, rel=0.05)
    # the same least-squares problem solved by scipy directly
    ref, _ = curve_fit(logistic4, x, y, p0=[y.max(), y.min(), x.mean(), x.std()], maxfev=20000)
    assert np.allclose(logistic4(x, *fit), logistic4(x, *ref), atol=1e-6)
    m = metrics(x, y)
    fx = logistic4(x, *fit)
    assert m["plcc_fitted"] == pytest.approx(stats.pearsonr(fx, y).statistic, abs=1e-9)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((fx - y) ** 2)), abs=1e-9)
    assert m["rmse"] < 0.7 and m["plcc_fitted"] > m["plcc"]  # the fit removes the S-shape
    assert m["fit_failed"] is False and m["n"] == 200


def test_fit_failure_is_flagged():
    m = metrics([3, 3, 3, 3], [1, 2, 3, 4])  # constant predictions: nothing to fit
    assert m["fit_failed"] is True and m["plcc_fitted"] is None and m["rmse"] is None
    assert m["srcc"] is None  # undefined correlation reads null, not NaN


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    x = rng.random(60)
    y = 3 * x + rng.normal(0, 0.3, 60)
    a = bootstrap(x, y, seed=5, n_boot=200, fit=fit_logistic(x, y))
    assert a == bootstrap(x, y, seed=5, n_boot=200, fit=fit_logistic(x, y))
    assert a != bootstrap(x, y, seed=6, n_boot=200, fit=fit_logistic(x, y))
    for name, value in (("srcc", srcc(x, y)), ("plcc", plcc(x, y)), ("krcc", krcc(x, y))):
        lo, hi = a[name]
        assert lo < value < hi and hi - lo < 0.3
    # resample 0 of the same generator, computed by hand with scipy
    idx = np.random.default_rng(5).integers(0, 60, (200, 60))
    draws = [stats.spearmanr(x[i], y[i]).statistic for i in idx]
    assert a["srcc"][0] == pytest.approx(np.percentile(draws, 2.5), abs=1e-6)
    assert set(a) == {"srcc", "krcc", "plcc", "plcc_fitted", "rmse"}


def _labelled(root, dataset, mos, splits, repeats=None):
    from pipeline.labels.records import LabelledImage, Scale

    rows = []
    for i, (m, s) in enumerate(zip(mos, splits, strict=True)):
        rows.append(LabelledImage(
            dataset=dataset, image_id=f"{i}.jpg", path=f"{i}.jpg", split=s,
            labels={"mos": float(m)}, label="mos", scale=Scale(min=0, max=100),
            score=float(m) / 100, rule="mos / 100", label_file="x.csv", row=i + 1))
    d = root / "labels" / dataset
    d.mkdir(parents=True)
    (d / "images.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in rows))
    if repeats is not None:
        (d / "splits.json").write_text(json.dumps({"repeats": repeats}))


def test_evaluate_a_folder_from_a_predictions_file(tmp_path):
    rng = np.random.default_rng(2)
    mos = rng.uniform(5, 95, 40)
    pred = mos / 20 + rng.normal(0, 0.6, 40)
    splits = ["train"] * 30 + ["test"] * 10
    ids = [f"{i}.jpg" for i in range(40)]
    repeats = [{"train": ids[k * 8:] + ids[:0], "test": ids[k * 8:(k + 1) * 8]} for k in range(3)]
    _labelled(tmp_path, "koniq10k", mos, splits, repeats)
    _labelled(tmp_path, "spaq", mos[:5], ["test"] * 5)
    file = tmp_path / "model_x.json"  # {image id: score}; a dataset/ prefix picks one source
    preds = {f"koniq10k/{i}": float(p) for i, p in zip(ids, pred, strict=True)}
    preds["spaq/0.jpg"] = 1.0
    file.write_text(json.dumps(preds))
    store = Store(tmp_path)
    doc = evaluate_scores(store, str(file), seed=3, n_boot=100)
    assert doc["key"] == "model_x"
    k = doc["datasets"]["koniq10k"]
    assert k["scored"] == 40 and k["all"]["n"] == 40
    assert k["all"]["srcc"] == pytest.approx(stats.spearmanr(pred, mos).statistic)
    assert k["splits"]["test"]["srcc"] == pytest.approx(
        stats.spearmanr(pred[30:], mos[30:]).statistic)
    assert set(k["all"]["ci95"]) >= {"srcc", "plcc", "krcc"}
    folds = k["folds"]
    per = [stats.spearmanr(pred[j * 8:(j + 1) * 8], mos[j * 8:(j + 1) * 8]).statistic
           for j in range(3)]
    assert folds["evaluated"] == 3
    assert folds["srcc"]["mean"] == pytest.approx(np.mean(per), abs=1e-6)
    assert folds["srcc"]["std"] == pytest.approx(np.std(per), abs=1e-6)
    assert (tmp_path / "eval" / "model_x" / "koniq10k.png").stat().st_size > 1000
    assert doc["datasets"]["spaq"]["all"] == {"n": 1, "error": "fewer than 3 scored images"}
    on_disk = json.loads((tmp_path / "eval" / "model_x" / "metrics.json").read_text())
    assert on_disk["datasets"]["koniq10k"]["all"]["srcc"] == k["all"]["srcc"]
    # the same inputs give the same bytes (plots included)
    before = {p.name: p.read_bytes() for p in (tmp_path / "eval" / "model_x").iterdir()}
    evaluate_scores(store, str(file), seed=3, n_boot=100)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "eval" / "model_x").iterdir()}


def test_prediction_sources_and_errors(tmp_path):
    store = Store(tmp_path)
    lines = tmp_path / "preds.jsonl"
    lines.write_text('{"image_id": "a.jpg", "prediction": 3.5}\n{"dataset": "spaq", '
                     '"image_id": "b.jpg", "final": 2}\n')
    assert load_predictions(store, str(lines))[1] == {(None, "a.jpg"): 3.5, ("spaq", "b.jpg"): 2.0}
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.jpg": "high"}')
    with pytest.raises(ValueError, match="bad.json: the value of 'a.jpg' is not a number"):
        load_predictions(store, str(bad))
    (tmp_path / "scores" / "openai--m").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="scoring keys present: openai--m"):
        load_predictions(store, "openai--other")


def test_vectorised_bootstrap_statistics_match_scipy():
    from pipeline.evaluate import _rowwise_kendall

    rng = np.random.default_rng(4)
    a = rng.integers(0, 6, (20, 30)).astype(float)  # many ties
    b = a + rng.integers(0, 3, (20, 30))
    ref = [stats.kendalltau(x, y).statistic for x, y in zip(a, b, strict=True)]
    assert np.allclose(_rowwise_kendall(a, b), ref)
