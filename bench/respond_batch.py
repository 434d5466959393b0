"""Demo + measurement: the same split answered online and in batch mode (OpenAI Batch API)
against the loopback server (tests/support/fake_openai.py), with the same answers (one
in ten rejected by the validator at first, then re-asked).

Prints, per mode: samples accepted, HTTP requests (chat calls, uploads, batch creates,
polls), rounds, cost, and whether the responses files are equal (all fields but cost_usd).
Then a kill -9-free resume check: a second batch run submits nothing. Writes
bench/results/respond_batch.json. A few seconds.

    .venv/bin/python bench/respond_batch.py [--samples 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.respond import respond_split  # noqa: E402
from pipeline.store import Store  # noqa: E402
from tests.support.fake_openai import Answer, FakeOpenAI  # noqa: E402
from tests.support.respond_samples import fast_openai_config, make_samples  # noqa: E402

RKEY = "openai--gpt-4o"


def _rows(root: Path) -> list[dict]:
    path = Store(root).responses_path(RKEY, "refAB_sd", "train")
    return [json.loads(x) for x in path.read_text().splitlines()]


def _count(srv: FakeOpenAI) -> dict:
    paths = [r.path for r in srv.requests]
    return {"http_requests": len(paths), "chat_calls": srv.chat_calls,
            "uploads": len(srv.file_uploads), "batch_creates": len(srv.batch_creates),
            "batch_polls": sum(1 for p in paths if "/batches/" in p),
            "downloads": sum(1 for p in paths if p.endswith("/content"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("online", "batch"):
            root = Path(tmp) / mode
            recs = make_samples(root, "refAB_sd", "train", args.samples)
            bad = {r.image_A.sha256: [Answer("Image A is better.")] for r in recs[::10]}
            with FakeOpenAI(by_image=bad) as srv:
                cfg = fast_openai_config(srv.base_url, "gpt-4o", mode=mode, batch_poll_s=0.0,
                                         concurrency=8)
                s = respond_split(None, Store(root), "refAB_sd", "train", config=cfg)
                out[mode] = {"accepted": s["accepted"], "rejected": s["rejected_answers"],
                             "cost_usd": round(sum(r["cost_usd"] for r in _rows(root)), 6),
                             **_count(srv)}
                if mode == "batch":
                    before = len(srv.requests)
                    again = respond_split(None, Store(root), "refAB_sd", "train", config=cfg)
                    out["batch_rerun_http_requests"] = len(srv.requests) - before
                    out["batch_rerun_todo"] = again["todo"]
        strip = [[{k: v for k, v in r.items() if k != "cost_usd"} for r in _rows(Path(tmp) / m)]
                 for m in ("online", "batch")]
        out["same_responses_but_cost"] = strip[0] == strip[1]
    out["batch_cost_ratio"] = round(out["batch"]["cost_usd"] / out["online"]["cost_usd"], 4)
    for mode in ("online", "batch"):
        print(f"{mode:>6}: {out[mode]}")
    print(f"batch / online cost: {out['batch_cost_ratio']}; same responses (but cost_usd): "
          f"{out['same_responses_but_cost']}; batch re-run: {out['batch_rerun_todo']} todo, "
          f"{out['batch_rerun_http_requests']} HTTP requests")
    dest = ROOT / "bench" / "results" / "respond_batch.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
