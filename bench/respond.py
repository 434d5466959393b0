"""Benchmark: respond-stage throughput against a rate-limited chat-completions server.

The loopback server (tests/support/fake_openai.py) answers after `--latency` seconds and
enforces `--rpm` requests per minute with a token bucket (429 + Retry-After, like a real
API). Two clients run in the same process, one after the other, each on a fresh server:

- stage: `pipeline.respond.respond_split` with the openai responder (asyncio, bounded
  concurrency, requests-per-minute limiter set to the server's limit, tenacity retries);
- baseline: a one-request-in-flight loop like the original build's (sync client, one
  sample after another, sleeping on 429s).

Prints achieved requests per minute as a fraction of the limit (target >= 90% for the
stage) and writes bench/results/respond.json. About 35 s with the defaults.

    .venv/bin/python bench/respond.py [--samples 200] [--baseline-samples 20]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.manifest import ResponderConfig  # noqa: E402
from pipeline.respond import respond_split  # noqa: E402
from pipeline.responders.base import data_url  # noqa: E402
from pipeline.responders.prompting import build_request, load_instruction  # noqa: E402
from pipeline.store import Store  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.respond_samples import make_samples  # noqa: E402

KEY = "sk-bench-not-a-real-key"


def _first_ids(root: Path, n: int) -> list[str]:
    """The first `n` sample ids of refA_sd/train (the split holds enough for both runs)."""
    from pipeline.records import SampleRecord
    from pipeline.store import read_jsonl

    ids = [s.sample_id for s in read_jsonl(Store(root).samples_path("refA_sd", "train"),
                                           SampleRecord)][:n]
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} samples in refA_sd/train, {n} asked")
    return ids


def run_stage(root: Path, n: int, latency: float, rpm: float, concurrency: int) -> dict:
    """The stage over exactly the first `n` samples (`--samples`), not the whole split."""
    ids = _first_ids(root, n)
    with FakeOpenAI(latency_s=latency, rpm=rpm, burst=max(1.0, rpm / 60)) as srv:
        cfg = ResponderConfig(kind="openai", model="gpt-4o", base_url=srv.base_url,
                              timeout_s=30, requests_per_minute=rpm, concurrency=concurrency,
                              backoff_initial_s=0.2, retry_after_max_s=5)
        t0 = time.perf_counter()
        s = respond_split(None, Store(root), "refA_sd", "train", config=cfg, only_ids=ids,
                          origin="bench")
        elapsed = time.perf_counter() - t0
        if s["todo"] != n:
            raise SystemExit(f"stage ran {s['todo']} samples, {n} asked")
        return {"samples": n, "accepted": s["accepted"], "calls": s["calls"],
                "failed": s["failed"],
                "server_429": srv.rate_limited, "elapsed_s": round(elapsed, 3),
                "rate_per_min": round(s["accepted"] / elapsed * 60, 1)}


def run_baseline(root: Path, n: int, latency: float, rpm: float) -> dict:
    """One request in flight: build, call, wait for the answer, next sample."""
    import openai

    from pipeline.records import SampleRecord
    from pipeline.store import read_jsonl

    store = Store(root)
    samples = list(read_jsonl(store.samples_path("refA_sd", "train"), SampleRecord))[:n]
    ins = load_instruction("refA_sd")
    with FakeOpenAI(latency_s=latency, rpm=rpm, burst=max(1.0, rpm / 60)) as srv:
        client = openai.OpenAI(api_key=KEY, base_url=srv.base_url, max_retries=0, timeout=30)
        done = 0
        t0 = time.perf_counter()
        for sample in samples:
            req = build_request(sample, store, ins)
            while True:
                try:
                    client.chat.completions.create(
                        model="gpt-4o", messages=req.messages(lambda i: data_url(i.path)),
                        max_tokens=req.max_tokens, temperature=req.temperature)
                    done += 1
                    break
                except openai.RateLimitError as err:
                    time.sleep(float(err.response.headers.get("retry-after", "1")))
        elapsed = time.perf_counter() - t0
        client.close()
        return {"samples": len(samples), "accepted": done, "calls": srv.chat_calls,
                "server_429": srv.rate_limited,
                "elapsed_s": round(elapsed, 3), "rate_per_min": round(done / elapsed * 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=200, help="samples for the stage run")
    ap.add_argument("--baseline-samples", type=int, default=20, help="samples for the loop")
    ap.add_argument("--latency", type=float, default=0.5, help="server latency per request (s)")
    ap.add_argument("--rpm", type=float, default=600.0, help="server limit, requests/minute")
    ap.add_argument("--concurrency", type=int, default=16, help="stage requests in flight")
    args = ap.parse_args()
    os.environ["OPENAI_API_KEY"] = KEY
    os.environ.pop("OPENAI_BASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="dqgen-bench-respond-") as tmp:
        make_samples(tmp, "refA_sd", "train", max(args.samples, args.baseline_samples))
        base = run_baseline(Path(tmp), args.baseline_samples, args.latency, args.rpm)
        stage = run_stage(Path(tmp), args.samples, args.latency, args.rpm, args.concurrency)
    for r in (base, stage):
        r["fraction_of_limit"] = round(r["rate_per_min"] / args.rpm, 3)
    result = {
        "benchmark": "respond throughput vs a rate-limited server",
        "latency_s": args.latency, "limit_rpm": args.rpm, "concurrency": args.concurrency,
        "baseline_one_in_flight": base, "stage": stage,
        "speedup_vs_baseline": round(stage["rate_per_min"] / base["rate_per_min"], 2),
        "target_fraction": 0.9, "meets_target": stage["fraction_of_limit"] >= 0.9,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(f"server: {args.latency * 1000:.0f} ms latency, limit {args.rpm:.0f} requests/min")
    print(f"{'client':<28}{'answers':>8}{'calls':>7}{'429s':>6}{'time s':>9}{'req/min':>9}"
          f"{'of limit':>10}")
    for name, r in (("one-in-flight loop", base), (f"stage (concurrency {args.concurrency})",
                                                   stage)):
        print(f"{name:<28}{r['accepted']:>8}{r['calls']:>7}{r['server_429']:>6}"
              f"{r['elapsed_s']:>9.2f}{r['rate_per_min']:>9.1f}{r['fraction_of_limit']:>10.1%}")
    print(f"stage / loop: {result['speedup_vs_baseline']:.2f}x; target >= 90% of the limit: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    out = ROOT / "bench" / "results" / "respond.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
