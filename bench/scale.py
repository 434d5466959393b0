"""Scale: builds of growing size, per-stage time and peak RSS of the process tree, the
no-op re-run, and a fitted extrapolation to the counts of data_manifest/dq495k.yaml.

Each size is one `run_build` (no Prefect, template responder, `--workers`, chunk 256) in a
child process over the demo's bundled photos, with the dq495k mix of kinds and splits
scaled to the size (and detail counts scaled likewise where the manifest has them). The
parent samples the RSS of the child and all its descendants (the pool, the forkserver)
every 20 ms; stage boundaries come from the child. Then the same build is run again (a
no-op re-run: everything is done) and timed, and the files outside logs/ are compared
before and after it (the re-run must write nothing).

The extrapolation fits time = a + b*N and peak RSS = a + b*N per stage over the sizes and
evaluates them at the 234,300 synthetic samples of dq495k; stages that use the worker pool
are divided by `--cores / --workers` (ideal scaling, an upper bound on the gain). The
~215k human-judged pairs of dq495k (labels stage) are not part of this benchmark.

    .venv/bin/python bench/scale.py                  # 1k, 5k, 20k
    .venv/bin/python bench/scale.py --quick          # 200, 600 (CI size)
    .venv/bin/python bench/scale.py --sizes 1000 2000 5000 --workers 2 --cores 16

Prints a table and writes bench/results/scale.json (`--tag` names the result file, e.g.
`--tag before` -> scale.before.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts named like packages (bench/distortions.py): import the real ones.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
RESULTS = ROOT / "bench" / "results"

# data_manifest/dq495k.yaml: samples per kind and split, and the detail counts.
DQ495K_COUNTS = {"refA_sd": {"train": 112000, "test": 5000},
                 "refA_md": {"train": 84000, "test": 5000},
                 "refAB_sd": {"train": 20000, "test": 200},
                 "refAB_md": {"train": 8000, "test": 100}}
DQ495K_DETAIL = {"refA_sd": {"train": 20000, "test": 200},
                 "refA_md": {"train": 8000, "test": 100},
                 "refAB_sd": {"train": 20000, "test": 200},
                 "refAB_md": {"train": 8000, "test": 100}}
DQ495K_TOTAL = sum(n for v in DQ495K_COUNTS.values() for n in v.values())
POOL_STAGES = {"ingest", "synthesize", "respond"}  # stages that use the worker pool


def _scaled(table: dict[str, dict[str, int]], n: int) -> dict[str, dict[str, int]]:
    return {k: {s: max(1, round(c * n / DQ495K_TOTAL)) for s, c in v.items()}
            for k, v in table.items()}


def _manifest_dict(n: int, out: Path, chunk: int) -> dict[str, Any]:
    import yaml

    demo = yaml.safe_load((ROOT / "data_manifest" / "demo.yaml").read_text())
    return {"name": f"scale{n}", "seed": 495, "output": str(out),
            "references": demo["references"], "chunk_size": chunk,
            "counts": _scaled(DQ495K_COUNTS, n), "responder": {"kind": "template"},
            "judge": {"kind": "fr_score"}}


# --------------------------------------------------------------------------- child
def _child(args: argparse.Namespace) -> None:
    import pipeline.build as build
    from pipeline.manifest import Manifest

    data = json.loads(Path(args.child).read_text())
    if "detail_counts" in Manifest.model_fields:  # detail counts (after issue 13)
        data["detail_counts"] = _scaled(DQ495K_DETAIL, args.n)
    manifest = Manifest.model_validate(data)
    emit = sys.stdout

    def timed(name: str, fn: Any) -> Any:
        def run(ctx: Any) -> Any:
            print(json.dumps({"stage": name, "start": time.time()}), file=emit, flush=True)
            out = fn(ctx)
            print(json.dumps({"stage": name, "end": time.time()}), file=emit, flush=True)
            return out
        return run

    build.STAGES[:] = [(n, timed(n, f)) for n, f in build.STAGES]
    build.run_build(manifest, workers=args.workers)


def _tree_rss(pid: int) -> tuple[int, int]:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total = own = 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        total += rss
        if p.pid == pid:
            own = rss
    return total, own


def _run_child(n: int, manifest_path: Path, workers: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(manifest_path), "--n", str(n),
           "--workers", str(workers)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total, own = _tree_rss(proc.pid)
            samples.append((time.time(), total, own))
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    events = [json.loads(line) for line in proc.stdout or [] if line.startswith("{")]
    rc = proc.wait()
    done.set()
    th.join()
    wall = time.time() - t0
    if rc != 0:
        msg = f"build of {n} failed (exit {rc})"
        raise SystemExit(msg)
    stages: dict[str, dict[str, float]] = {}
    for e in events:
        st = stages.setdefault(e["stage"], {})
        st.update({k: v for k, v in e.items() if k != "stage"})
    out: dict[str, Any] = {"wall_s": round(wall, 3), "stages": {}}
    for name, st in stages.items():
        inside = [s for s in samples if st["start"] <= s[0] <= st.get("end", 1e18)]
        out["stages"][name] = {
            "s": round(st.get("end", st["start"]) - st["start"], 3),
            "peak_tree_mb": round(max((s[1] for s in inside), default=0) / 2**20, 1),
            "peak_parent_mb": round(max((s[2] for s in inside), default=0) / 2**20, 1)}
    out["peak_tree_mb"] = round(max((s[1] for s in samples), default=0) / 2**20, 1)
    out["peak_parent_mb"] = round(max((s[2] for s in samples), default=0) / 2**20, 1)
    return out


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return 0.0, (ys[0] / xs[0] if xs else 0.0)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    return my - b * mx, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--quick", action="store_true", help="sizes 200 and 600 (CI size)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cores", type=int, default=16, help="cores of the extrapolation")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--tag", default="", help="result file bench/results/scale.<tag>.json")
    ap.add_argument("--keep", action="store_true", help="keep the built folders")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    sizes = [200, 600] if args.quick else sorted(args.sizes)
    results: dict[str, Any] = {"workers": args.workers, "chunk": args.chunk,
                               "cpu_count": os.cpu_count(), "sizes": {}}
    tmp = Path(tempfile.mkdtemp(prefix="dqgen-scale-"))
    for n in sizes:
        out = tmp / f"n{n}"
        mpath = tmp / f"n{n}.json"
        mpath.write_text(json.dumps(_manifest_dict(n, out, args.chunk)))
        print(f"building {n} samples ...", flush=True)
        build = _run_child(n, mpath, args.workers)
        before = _snapshot(out)
        print(f"  {build['wall_s']:.1f} s; no-op re-run ...", flush=True)
        rerun = _run_child(n, mpath, args.workers)
        after = _snapshot(out)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        results["sizes"][str(n)] = {"build": build, "rerun": rerun,
                                    "rerun_ratio": round(rerun["wall_s"] / build["wall_s"], 4),
                                    "rerun_changed_files": len(changed),
                                    "rerun_changed_examples": changed[:5]}
        if not args.keep:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
    xs = [float(n) for n in sizes]
    rows = results["sizes"]
    stage_names = list(rows[str(sizes[-1])]["build"]["stages"])
    extra: dict[str, Any] = {}
    speed = args.cores / args.workers
    for name in stage_names:
        ys = [rows[str(n)]["build"]["stages"].get(name, {}).get("s", 0.0) for n in sizes]
        a, b = _fit(xs, ys)
        full = a + b * DQ495K_TOTAL
        extra[name] = {"ms_per_sample": round(b * 1000, 4),
                       f"full_s_{args.workers}w": round(full, 1),
                       f"full_s_{args.cores}c": round(full / speed if name in POOL_STAGES
                                                      else full, 1)}
    tree = [rows[str(n)]["build"]["peak_tree_mb"] for n in sizes]
    parent = [rows[str(n)]["build"]["peak_parent_mb"] for n in sizes]
    _, bt = _fit(xs, tree)
    _, bp = _fit(xs, parent)
    ra, rb = _fit(xs, [rows[str(n)]["rerun"]["wall_s"] for n in sizes])
    rerun_full = max(0.0, ra) + max(0.0, rb) * DQ495K_TOTAL  # fixed cost + per-sample cost
    results["extrapolation"] = {
        "rerun_s_full": round(rerun_full, 1),
        "samples": DQ495K_TOTAL, "cores": args.cores, "stages": extra,
        f"total_s_{args.workers}w": round(sum(v[f"full_s_{args.workers}w"] for v in extra.values()), 1),
        f"total_s_{args.cores}c": round(sum(v[f"full_s_{args.cores}c"] for v in extra.values()), 1),
        "tree_kb_per_sample": round(bt * 1024, 3), "parent_kb_per_sample": round(bp * 1024, 3),
        "tree_mb_full": round(tree[-1] + bt * (DQ495K_TOTAL - sizes[-1]), 1)}

    # table
    print()
    head = f"{'stage':<11}" + "".join(f"{n:>10}" for n in sizes) + f"{'ms/sample':>11}" \
        + f"{'full ' + str(args.workers) + 'w':>10}{'full ' + str(args.cores) + 'c':>10}"
    print(head)
    for name in stage_names:
        cells = "".join(f"{rows[str(n)]['build']['stages'].get(name, {}).get('s', 0):>9.2f}s"
                        for n in sizes)
        e = extra[name]
        print(f"{name:<11}{cells}{e['ms_per_sample']:>11.3f}"
              f"{e[f'full_s_{args.workers}w'] / 60:>8.1f}mn{e[f'full_s_{args.cores}c'] / 60:>8.1f}mn")
    print(f"{'build':<11}" + "".join(f"{rows[str(n)]['build']['wall_s']:>9.2f}s" for n in sizes))
    print(f"{'no-op rerun':<11}" + "".join(f"{rows[str(n)]['rerun']['wall_s']:>9.2f}s" for n in sizes))
    print(f"{'rerun/build':<11}" + "".join(f"{rows[str(n)]['rerun_ratio'] * 100:>9.1f}%" for n in sizes))
    print(f"{'changed':<11}" + "".join(f"{rows[str(n)]['rerun_changed_files']:>10}" for n in sizes))
    print(f"{'tree MB':<11}" + "".join(f"{t:>10.0f}" for t in tree))
    print(f"{'parent MB':<11}" + "".join(f"{t:>10.0f}" for t in parent))
    x = results["extrapolation"]
    print(f"\ntree RSS growth {x['tree_kb_per_sample']:.2f} KB/sample (parent "
          f"{x['parent_kb_per_sample']:.2f}); dq495k ({DQ495K_TOTAL} synthetic samples): "
          f"{x[f'total_s_{args.workers}w'] / 60:.1f} min on {args.workers} workers, "
          f"{x[f'total_s_{args.cores}c'] / 60:.1f} min on {args.cores} cores (ideal pool "
          f"scaling), tree ~{x['tree_mb_full']:.0f} MB; no-op re-run ~{x['rerun_s_full']:.0f} s")
    if x[f"total_s_{args.workers}w"] <= 0:
        print("the fits are not usable (times fell with size: a loaded machine?); "
              "re-run on a quiet machine or with more sizes")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"scale.{args.tag}.json" if args.tag else "scale.json")
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
