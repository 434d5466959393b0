"""Orchestration overhead: the demo build through Prefect vs the bare run (`--no-prefect`).

Measured in one run, fresh output folders each time, the same worker count:

* in-process: `run_build` (bare, process pool) against `run_build_flow` (the Prefect flow,
  threads) with Prefect's temporary server already up, alternating, `--repeats` times; the
  median ratio is the orchestration overhead proper (target <= 1.15; the best-of-N ratio
  is printed too, as the machine may be shared);
* command line: `dqgen build --no-prefect` against `dqgen build` as subprocesses, once
  with a fresh PREFECT_HOME (the temporary server migrates a new database), once with
  that home reused (what a user's second build costs): these include the temporary
  server's start; and once with PREFECT_API_URL of a running `prefect server start`.

Also checks that both write the same bytes. Prints ratios and writes
bench/results/orchestration.json.

    .venv/bin/python bench/orchestration.py [--workers 2] [--repeats 3] [--manifest PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts named like packages (bench/distortions.py): import the real ones.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
RESULTS = ROOT / "bench" / "results" / "orchestration.json"
DQGEN = Path(sys.executable).with_name("dqgen")


def _files(root: Path) -> dict[str, bytes]:
    """Every output file; logs/ holds the run history (origin, times), not outputs."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def _env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
               PREFECT_LOGGING_LEVEL="WARNING", PREFECT_UI_ENABLED="false")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` on a free loopback port; returns (process, API URL)."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([str(DQGEN.with_name("prefect")), "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return proc, api_url
        except httpx.HTTPError:
            time.sleep(0.25)
    proc.terminate()
    msg = "prefect server did not start"
    raise RuntimeError(msg)


def _cli(args: list[str], home: Path, api_url: str | None = None) -> float:
    env = _env(home, api_url)
    started = time.perf_counter()
    subprocess.run([str(DQGEN), "build", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=str(ROOT / "data_manifest" / "demo.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dqgen-bench-orch-"))
    home = work / "prefect-home"
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
                      PREFECT_LOGGING_LEVEL="WARNING")
    os.environ.pop("PREFECT_API_URL", None)

    from prefect import get_client

    from flows.build_flow import run_build_flow
    from pipeline.build import run_build
    from pipeline.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    t0 = time.perf_counter()
    with get_client(sync_client=True) as client:  # the temporary server, started once
        client.hello()
    server_start = time.perf_counter() - t0
    print(f"temporary Prefect server started in {server_start:.1f} s (fresh database)")

    bare_s: list[float] = []
    flow_s: list[float] = []
    for i in range(args.repeats):
        out_b, out_p = work / f"bare{i}", work / f"prefect{i}"
        t = time.perf_counter()
        run_build(manifest, out=out_b, workers=args.workers)
        bare_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_build_flow(manifest, out=out_p, workers=args.workers)
        flow_s.append(time.perf_counter() - t)
        print(f"  repeat {i}: bare {bare_s[-1]:.2f} s, prefect {flow_s[-1]:.2f} s "
              f"(x{flow_s[-1] / bare_s[-1]:.3f})", flush=True)
    a, b = _files(work / "bare0"), _files(work / "prefect0")
    identical = a == b
    if not identical:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"  files that differ: {diff[:10]}{' ...' if len(diff) > 10 else ''}")
    ratio = statistics.median(flow_s) / statistics.median(bare_s)
    best = min(flow_s) / min(bare_s)  # best of N: less sensitive to a shared, busy machine
    print(f"in-process: median bare {statistics.median(bare_s):.2f} s, prefect "
          f"{statistics.median(flow_s):.2f} s -> overhead x{ratio:.3f} (best of "
          f"{args.repeats}: x{best:.3f}; target <= 1.15); same bytes: {identical}")

    cli_home = work / "cli-home"
    w = ["-w", str(args.workers)]
    cli = {
        "bare": _cli([args.manifest, "--no-prefect", *w, "--out", str(work / "c-bare")],
                     cli_home),
        "prefect_fresh_home": _cli([args.manifest, *w, "--out", str(work / "c-p1")], cli_home),
        "prefect_warm_home": _cli([args.manifest, *w, "--out", str(work / "c-p2")], cli_home),
    }
    server, api_url = _server(work / "server-home")
    try:
        cli["prefect_running_server"] = _cli(
            [args.manifest, *w, "--out", str(work / "c-p3")], cli_home, api_url)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"command line: bare {cli['bare']:.1f} s, prefect {cli['prefect_fresh_home']:.1f} s "
          f"(fresh PREFECT_HOME, x{cli['prefect_fresh_home'] / cli['bare']:.2f}), "
          f"{cli['prefect_warm_home']:.1f} s (warm, x{cli['prefect_warm_home'] / cli['bare']:.2f}), "
          f"{cli['prefect_running_server']:.1f} s (PREFECT_API_URL of a running server, "
          f"x{cli['prefect_running_server'] / cli['bare']:.2f})")
    result = {
        "manifest": args.manifest, "workers": args.workers, "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "server_start_s": round(server_start, 2),
        "in_process": {"bare_s": [round(x, 3) for x in bare_s],
                       "prefect_s": [round(x, 3) for x in flow_s],
                       "overhead_ratio": round(ratio, 3), "best_of_n_ratio": round(best, 3),
                       "target": 1.15, "meets_target": ratio <= 1.15,
                       "identical_bytes": identical},
        "cli_s": {k: round(v, 2) for k, v in cli.items()},
        "cli_ratio": {k: round(v / cli["bare"], 3) for k, v in cli.items() if k != "bare"},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
