"""Benchmark: scoring throughput (global + regions) against a rate-limited loopback model.

The loopback server (tests/support/fake_scorer.py) answers after `--latency` seconds,
enforces `--rpm` requests per minute (429 + Retry-After when exceeded, like a real API),
and answers a level that is a known function of the image it gets: its sharpness (mean
absolute gradient, mapped to 1..7). The images are one textured photo blurred by a
per-image sigma, and their "MOS" falls with the sigma, so the model's scores correlate
with it by construction. Two clients, each on a fresh server:

- scoring: `pipeline.score.run.score_items` with the openai responder (bounded concurrency,
  the respond core's limiter set to the server's limit, tenacity retries), regions on
  (`--regions`, default segments: 1 + up to 4 calls per image);
- baseline: one request in flight, image after image (sync openai client), as a plain
  script would call a scoring model.

Prints calls per minute as a fraction of the limit for both, then `dqgen evaluate`'s SRCC
of the scores against the MOS next to the SRCC computed here from the records' own
sub-scores (they must agree). Writes bench/results/score.json. About 45 s by default.

    .venv/bin/python bench/score.py [--images 60] [--latency 0.5] [--rpm 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.evaluate import evaluate_scores  # noqa: E402
from pipeline.labels.records import LabelledImage, Scale  # noqa: E402
from pipeline.manifest import ResponderConfig, ScoringConfig  # noqa: E402
from pipeline.responders.base import data_url  # noqa: E402
from pipeline.score.levels import load_scoring_prompt  # noqa: E402
from pipeline.score.run import labelled_items, score_items  # noqa: E402
from pipeline.store import Store, read_jsonl  # noqa: E402
from tests.support.fake_scorer import FakeScorer  # noqa: E402

KEY = "sk-bench-not-a-real-key"


def sharpness_level(pixels: np.ndarray) -> int:
    """1..7 from the mean absolute horizontal + vertical gradient of the grey image."""
    g = pixels.astype(float).mean(axis=2)
    grad = np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean()
    return int(np.clip(1 + round(grad / 4.0), 1, 7))


def make_source(root: Path, n: int) -> None:
    """`n` blurred copies of one texture as a labelled source `bench` (MOS falls with blur)."""
    rng = np.random.default_rng(0)
    # small images (128 x 96): the server decodes every request in this same process, so
    # big payloads would measure the harness's CPU, not the scoring run's pacing
    base = Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).resize(
        (128, 96), Image.Resampling.NEAREST)
    src = root / "labels" / "bench" / "src"
    src.mkdir(parents=True)
    rows = []
    for i in range(n):
        sigma = 3.0 * i / max(1, n - 1)
        Image.fromarray(np.asarray(base.filter(ImageFilter.GaussianBlur(sigma)))).save(
            src / f"{i:04d}.png")
        mos = float(np.clip(90 - 25 * sigma + rng.normal(0, 4), 0, 100))
        rows.append(LabelledImage(dataset="bench", image_id=f"{i:04d}.png", path=f"{i:04d}.png",
                                  split="test", labels={"mos": mos}, label="mos",
                                  scale=Scale(min=0, max=100), score=mos / 100,
                                  rule="mos / 100", label_file="bench.csv", row=i + 1))
    (root / "labels" / "bench" / "images.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in rows))


def run_scoring(root: Path, latency: float, rpm: float, concurrency: int, regions: str) -> dict:
    with FakeScorer(level_of=sharpness_level, latency_s=latency, rpm=rpm,
                    burst=max(1.0, rpm / 60)) as srv:
        config = ResponderConfig(kind="openai", model="bench-scorer", base_url=srv.base_url,
                                 timeout_s=30, requests_per_minute=rpm, concurrency=concurrency,
                                 backoff_initial_s=0.2)
        store = Store(root)
        t0 = time.perf_counter()
        summary = score_items(store, {"bench": labelled_items(store, "bench")}, config=config,
                              cfg=ScoringConfig(regions=regions))  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        return {"calls": summary["calls"], "server_requests": srv.chat_calls,
                "rate_limited": srv.rate_limited, "retries": summary["retries"],
                "scored": summary["scored"], "elapsed_s": round(elapsed, 2),
                "calls_per_min": round(summary["calls"] / elapsed * 60, 1)}


def run_baseline(root: Path, calls: int, latency: float, rpm: float) -> dict:
    import openai

    prompt = load_scoring_prompt()
    images = sorted((root / "labels" / "bench" / "src").glob("*.png"))
    with FakeScorer(level_of=sharpness_level, latency_s=latency, rpm=rpm,
                    burst=max(1.0, rpm / 60)) as srv:
        client = openai.OpenAI(api_key=KEY, base_url=srv.base_url, max_retries=0)
        t0 = time.perf_counter()
        done = 0
        while done < calls:
            path = images[done % len(images)]
            try:
                client.chat.completions.create(model="bench-scorer", max_tokens=16, messages=[
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": [
                        {"type": "text", "text": prompt.user(region=False)},
                        {"type": "image_url", "image_url": {"url": data_url(path)}}]}])
                done += 1
            except openai.RateLimitError:
                time.sleep(1.0)
        elapsed = time.perf_counter() - t0
        client.close()
    return {"calls": calls, "elapsed_s": round(elapsed, 2),
            "calls_per_min": round(calls / elapsed * 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--baseline-calls", type=int, default=12)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--rpm", type=float, default=600.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--regions", default="segments", choices=["grid", "segments", "both"])
    args = ap.parse_args()
    os.environ["OPENAI_API_KEY"] = KEY
    from scipy.stats import spearmanr

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_source(root, args.images)
        stage = run_scoring(root, args.latency, args.rpm, args.concurrency, args.regions)
        base = run_baseline(root, args.baseline_calls, args.latency, args.rpm)
        doc = evaluate_scores(Store(root), "openai--bench-scorer", n_boot=200, plots=False)
        rows = list(read_jsonl(root / "scores" / "openai--bench-scorer" / "bench.jsonl"))
        mos = {im["image_id"]: im["labels"]["mos"]
               for im in read_jsonl(root / "labels" / "bench" / "images.jsonl")}
        # independent of the evaluation module: the aggregate recomputed from the sub-scores
        w = 0.5
        finals = [w * r["global_level"] + (1 - w) * sum(p["level"] * p["area"] for p in r["regions"])
                  / sum(p["area"] for p in r["regions"]) for r in rows]
        srcc_here = float(spearmanr(finals, [mos[r["image_id"]] for r in rows]).statistic)
    srcc_eval = doc["datasets"]["bench"]["all"]["srcc"]
    result = {
        "settings": vars(args), "python": platform.python_version(),
        "scoring": stage, "baseline": base,
        "scoring_fraction_of_limit": round(stage["calls_per_min"] / args.rpm, 3),
        "baseline_fraction_of_limit": round(base["calls_per_min"] / args.rpm, 3),
        "speedup_vs_baseline": round(stage["calls_per_min"] / base["calls_per_min"], 2),
        "calls_per_image": round(stage["calls"] / max(1, stage["scored"]), 2),
        "srcc_evaluate": srcc_eval, "srcc_recomputed": srcc_here,
    }
    print(f"scoring : {stage['calls']} calls for {stage['scored']} images "
          f"({result['calls_per_image']} per image, regions {args.regions}) in "
          f"{stage['elapsed_s']} s = {stage['calls_per_min']} calls/min = "
          f"{result['scoring_fraction_of_limit']:.0%} of the {args.rpm:g}/min limit "
          f"(429s from the server: {stage['rate_limited']}, retries {stage['retries']})")
    print(f"baseline: one call in flight: {base['calls_per_min']} calls/min = "
          f"{result['baseline_fraction_of_limit']:.0%} of the limit; scoring is "
          f"{result['speedup_vs_baseline']}x faster")
    print(f"faithfulness: SRCC vs MOS from dqgen evaluate {srcc_eval:.4f}, recomputed here "
          f"{srcc_here:.4f} ({'agree' if abs(srcc_eval - srcc_here) < 1e-9 else 'DIFFER'})")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "score.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
