"""Benchmark of the synthesis stage: samples/s against baselines measured in the same run.

    python bench/synthesis.py [--samples 600] [--workers 2] [--out bench/results/synthesis.json]

On the demo references (data_manifest/demo.yaml, ingested to 224 px) repeated to
`--samples` refA_sd samples, it times:

* synthesis: `synthesize_chunk` over all chunks + `merge_samples` (one process), i.e. the
  real stage with reference decode, distortions, PNG encode, atomic writes, sha256 and
  records;
* floor (a): for the same plans, PNG decode of the reference + the bare distortion calls +
  PNG encode of the output with the same encoder settings, nothing written;
  target: synthesis <= 1.3 x floor;
* workers (b): the same synthesis on a warm pool of 1 and of N processes;
  target: N = 2 gives >= 1.7 x the samples/s of 1;
* PNG level 1 vs 6 (Pillow's default): encode time and size of the same outputs, and the
  full synthesis at level 6;
* dealing (c): many references with few samples each (`--deal-refs` aliases of the demo
  references, `--deal-samples` samples, chunk 256 as dq495k): reference decodes per sample
  and synthesis time with chunks dealt by reference (`chunk_plans`) against consecutive
  chunks of plans (the dealing before), same plans, one process, same merged bytes.

Writes the figures as JSON (bench/results/ is git-ignored) and prints ratios. The machine's
load changes absolute numbers; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import distortions  # noqa: E402
from pipeline.build import make_executor  # noqa: E402
from pipeline.ingest import chunk_items, decode_png, encode_png, ingest_references  # noqa: E402
from pipeline.manifest import Manifest, load_manifest  # noqa: E402
from pipeline.plan import load_references, make_plans  # noqa: E402
from pipeline.records import ReferenceRecord, SamplePlan  # noqa: E402
from pipeline.seeds import rng_for  # noqa: E402
from pipeline.store import Store, atomic_write_jsonl, read_jsonl  # noqa: E402
from pipeline.synthesize import (  # noqa: E402
    chunk_plans,
    merge_samples,
    render_image,
    synthesize_chunk,
)

REPO = Path(__file__).resolve().parents[1]
KIND, SPLIT = "refA_sd", "train"


def _fresh_store(base: Path, refs_store: Store, name: str) -> Store:
    """A dataset folder holding only the ingested references (copied)."""
    root = base / name
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(refs_store.root / "references", root / "references")
    shutil.copy2(refs_store.references_index, root / "references.jsonl")
    return Store(root)


def _timed_chunk(*args: object) -> float:
    """synthesize_chunk in a worker; returns the CPU seconds it used there."""
    t0 = time.process_time()
    synthesize_chunk(*args)  # type: ignore[arg-type]
    return time.process_time() - t0


def time_synthesis(manifest: Manifest, store: Store, plans: list[SamplePlan],
                   executor: Executor | None = None,
                   chunks: list[tuple[int, list[SamplePlan]]] | None = None
                   ) -> tuple[float, float]:
    """(wall s, CPU s spent in synthesize_chunk) of the stage over `plans` (`chunks`:
    another cut of the plans into chunks; default `chunk_plans`)."""
    atomic_write_jsonl(store.plan_path(KIND, SPLIT), plans)
    if chunks is None:
        chunks = chunk_plans(plans, manifest.chunk_size)
    t0 = time.perf_counter()
    if executor is None:
        cpu = sum(_timed_chunk(manifest, store, KIND, SPLIT, i, c) for i, c in chunks)
    else:
        futures = [executor.submit(_timed_chunk, manifest, store.root, KIND, SPLIT, i, c)
                   for i, c in chunks]
        cpu = sum(f.result() for f in futures)
    merge_samples(store, KIND, SPLIT)
    return time.perf_counter() - t0, cpu


def time_floor(manifest: Manifest, store: Store, plans: list[SamplePlan], level: int
               ) -> tuple[float, float, list[np.ndarray]]:
    """(wall s, CPU s, outputs): decode ref + distort + encode, nothing written."""
    outputs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for p in plans:
        ref = decode_png(store.reference_image(p.ref_id).read_bytes())
        img, _ = render_image(ref, p.A, rng_for(p.seed, "A")) if p.A else (ref, [])
        if p.A:
            encode_png(img, level)
            outputs.append(img)
    return time.perf_counter() - t0, time.process_time() - c0, outputs


def _aliased_store(base: Path, refs_store: Store, n_refs: int) -> Store:
    """A dataset folder with `n_refs` train references: hard links of the demo's under new
    ids (one decode costs the same; only the count of distinct references grows)."""
    root = base / "aliases"
    shutil.rmtree(root, ignore_errors=True)
    (root / "references").mkdir(parents=True)
    refs = list(read_jsonl(refs_store.references_index, ReferenceRecord))
    rows = []
    for k in range(n_refs):
        ref = refs[k % len(refs)]
        ref_id = f"{ref.ref_id}-{k:05d}"
        os.link(refs_store.abs(ref.path), root / "references" / f"{ref_id}.png")
        rows.append(ref.model_copy(update={"ref_id": ref_id, "split": SPLIT,
                                           "path": f"references/{ref_id}.png"}))
    atomic_write_jsonl(root / "references.jsonl", rows)
    return Store(root)


def time_dealing(manifest: Manifest, refs_store: Store, base: Path, n_refs: int,
                 samples: int) -> dict[str, object]:
    """Decodes per sample and synthesis time, chunks dealt by reference vs consecutive."""
    m = manifest.model_copy(update={"chunk_size": 256})
    store = _aliased_store(base, refs_store, n_refs)
    refs = list(read_jsonl(store.references_index, ReferenceRecord))
    plans = make_plans(m, KIND, SPLIT, [r.ref_id for r in refs], count=samples,
                       grey=[r.ref_id for r in refs if r.grey])
    cuts = {"dealt": chunk_plans(plans, m.chunk_size),
            "consecutive": chunk_items(plans, m.chunk_size)}
    out: dict[str, object] = {"references": n_refs, "samples": samples,
                              "chunk_size": m.chunk_size}
    merged = {}
    for name, chunks in cuts.items():
        for folder in ("images", "samples"):
            shutil.rmtree(store.root / folder, ignore_errors=True)
        decodes = sum(len({p.ref_id for p in c}) for _, c in chunks)
        wall, cpu = time_synthesis(m, store, plans, chunks=chunks)
        merged[name] = store.samples_path(KIND, SPLIT).read_bytes()
        out[name] = {"decodes_per_sample": decodes / samples, "s": wall, "cpu_s": cpu,
                     "ms_per_sample": 1000 * wall / samples}
    out["same_samples_file"] = merged["dealt"] == merged["consecutive"]
    return out


def _warm(executor: Executor, workers: int) -> None:
    for f in [executor.submit(cv2.getNumThreads) for _ in range(workers * 2)]:
        f.result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=600, help="refA_sd samples per run")
    ap.add_argument("--workers", type=int, default=2, help="pool size compared with 1")
    ap.add_argument("--repeat", type=int, default=2,
                    help="alternate synthesis and floor runs this often; keep the fastest")
    ap.add_argument("--manifest", default=str(REPO / "data_manifest" / "demo.yaml"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "synthesis.json"))
    ap.add_argument("--deal-refs", type=int, default=250,
                    help="references of the dealing comparison (0: skip it)")
    ap.add_argument("--deal-samples", type=int, default=1000,
                    help="samples of the dealing comparison")
    args = ap.parse_args()

    cv2.setNumThreads(1)  # as in the pool's workers: one thread per process
    base = Path(tempfile.mkdtemp(prefix="dqgen-bench-"))
    try:
        demo = load_manifest(args.manifest)
        refs_store = Store(base / "refs")
        ingest_references(demo, refs_store)
        ref_ids = [r.ref_id for r in load_references(refs_store)]  # all splits: repetition
        manifest = demo.model_copy(update={"png_compress_level": 1})
        plans = make_plans(manifest, KIND, SPLIT, ref_ids, count=args.samples)
        n_images = sum(1 for p in plans if p.A)
        print(f"{args.samples} samples ({n_images} distorted images) over {len(ref_ids)} "
              f"references, {len(distortions.REGISTRY)} distortions registered, "
              f"chunk_size {manifest.chunk_size}", flush=True)

        # Alternate the two and keep the fastest of each: other jobs' load comes and goes.
        floor_runs, synth_runs = [], []
        for r in range(args.repeat):
            wall, cpu, outputs = time_floor(manifest, refs_store, plans, 1)
            floor_runs.append((wall, cpu))
            synth_runs.append(time_synthesis(manifest, _fresh_store(base, refs_store, f"s{r}"),
                                             plans))
        floor_s, floor_cpu = min(w for w, _ in floor_runs), min(c for _, c in floor_runs)
        synth_s, synth_cpu = min(w for w, _ in synth_runs), min(c for _, c in synth_runs)

        m6 = manifest.model_copy(update={"png_compress_level": 6})
        synth6_s, _ = time_synthesis(m6, _fresh_store(base, refs_store, "s6"), plans)
        t0 = time.perf_counter()
        size1 = sum(len(encode_png(o, 1)) for o in outputs)
        enc1_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        size6 = sum(len(encode_png(o, 6)) for o in outputs)
        enc6_s = time.perf_counter() - t0

        pool_times, pool_cpu = {}, {}
        for w in (1, args.workers):
            with make_executor(w) as ex:
                _warm(ex, w)
                pool_times[w], pool_cpu[w] = time_synthesis(
                    manifest, _fresh_store(base, refs_store, f"w{w}"), plans, ex)
        dealing = (time_dealing(manifest, refs_store, base, args.deal_refs, args.deal_samples)
                   if args.deal_refs else None)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rate = args.samples / synth_s
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "samples": args.samples, "distorted_images": n_images,
        "distortions_registered": len(distortions.REGISTRY),
        "synthesis_s": synth_s, "synthesis_samples_per_s": rate,
        "floor_s": floor_s, "floor_samples_per_s": args.samples / floor_s,
        "synthesis_over_floor": synth_s / floor_s, "target_synthesis_over_floor": 1.3,
        "synthesis_cpu_s": synth_cpu, "floor_cpu_s": floor_cpu,
        "synthesis_over_floor_cpu": synth_cpu / floor_cpu,
        # cores_busy: CPU seconds the workers spent in synthesize_chunk / wall seconds; on
        # a machine shared with other jobs it shows how many cores the pool actually got.
        "pool": {str(w): {"s": s, "samples_per_s": args.samples / s, "cpu_s": pool_cpu[w],
                          "cores_busy": pool_cpu[w] / s} for w, s in pool_times.items()},
        "speedup_workers": pool_times[1] / pool_times[args.workers],
        "target_speedup_2_workers": 1.7,
        "png": {"level1_encode_ms_per_image": 1000 * enc1_s / max(n_images, 1),
                "level6_encode_ms_per_image": 1000 * enc6_s / max(n_images, 1),
                "level1_kib_per_image": size1 / 1024 / max(n_images, 1),
                "level6_kib_per_image": size6 / 1024 / max(n_images, 1),
                "synthesis_level6_s": synth6_s,
                "synthesis_level6_over_level1": synth6_s / synth_s},
        "dealing": dealing,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"synthesis (1 process)       {rate:8.1f} samples/s   {synth_s:6.2f} s")
    print(f"floor: decode+distort+encode {args.samples / floor_s:8.1f} samples/s"
          f"   {floor_s:6.2f} s")
    print(f"  synthesis / floor          {synth_s / floor_s:8.2f} x wall, "
          f"{synth_cpu / floor_cpu:.2f} x CPU   (target <= 1.3)")
    for w, s in pool_times.items():
        print(f"pool of {w} (warm)            {args.samples / s:8.1f} samples/s   {s:6.2f} s"
              f"   ({pool_cpu[w] / s:.2f} cores busy)")
    speedup = pool_times[1] / pool_times[args.workers]
    print(f"  speed-up {args.workers} vs 1 workers      {speedup:8.2f} x"
          f"   (target >= 1.7 on {args.workers} free cores)")
    print(f"PNG level 1: {result['png']['level1_encode_ms_per_image']:.2f} ms, "
          f"{result['png']['level1_kib_per_image']:.0f} KiB per image; level 6: "
          f"{result['png']['level6_encode_ms_per_image']:.2f} ms, "
          f"{result['png']['level6_kib_per_image']:.0f} KiB")
    print(f"  synthesis at level 6 / level 1 {synth6_s / synth_s:6.2f} x")
    if dealing is not None:
        d, c = dealing["dealt"], dealing["consecutive"]
        print(f"dealing: {dealing['samples']} samples over {dealing['references']} references, "
              f"chunk {dealing['chunk_size']}: decodes per sample {d['decodes_per_sample']:.2f}"
              f" dealt vs {c['decodes_per_sample']:.2f} consecutive; "
              f"{d['ms_per_sample']:.2f} vs {c['ms_per_sample']:.2f} ms per sample "
              f"(CPU {c['cpu_s'] / d['cpu_s']:.2f} x); same samples file: "
              f"{dealing['same_samples_file']}")
    print(f"load average {os.getloadavg()}; JSON: {out}")


if __name__ == "__main__":
    main()
