"""One real Prefect server for the whole test session, on 127.0.0.1.

A Prefect server costs 15-25 s of CPU to start (importing the server, migrating a fresh
SQLite database), and every process that talks to Prefect in ephemeral mode starts one of
its own: on a 2-core machine that was a quarter of the suite. So the suite starts one
`prefect server start` (its own PREFECT_HOME and database) when pytest starts, without
waiting for it: under pytest-xdist the controller starts it before the workers are
spawned (they inherit its URL in `URL_ENV`); without xdist the first test that asks for it
starts it. A test that talks to Prefect asks for the `prefect_api` fixture, which waits
for /health once per process and points Prefect (the settings of this process and the
PREFECT_API_URL of its subprocesses) at the server.

Ephemeral mode is switched off in the test processes (PREFECT_SERVER_ALLOW_EPHEMERAL_MODE
false, set in tests/conftest.py), so a test that talks to Prefect without asking for the
server fails at once instead of quietly starting a private one; the tests of ephemeral
mode itself ask for `prefect_ephemeral`, which turns it back on and seeds this process's
PREFECT_HOME with a copy of the shared server's migrated database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

URL_ENV = "DQGEN_TEST_PREFECT_API_URL"
HOME_ENV = "DQGEN_TEST_PREFECT_SERVER_HOME"
PREFECT_BIN = Path(sys.executable).with_name("prefect")

# The server's loop services that no test needs (schedules, late runs, work-pool health,
# pauses, cancellations, triggers, vacuum): off, so the session's server costs no CPU
# between requests. The event persister and the task-run recorder (which the tests read
# through the API) stay on.
QUIET_SERVICES = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (
    "SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
    "REPOSSESSOR", "TRIGGERS", "DB_VACUUM", "CLEANUP_RECONCILER")}

_proc: subprocess.Popen[bytes] | None = None
_healthy: set[str] = set()


def scratch_dir() -> str | None:
    """Where Prefect's homes and SQLite databases go: a RAM disk (/dev/shm) when there is
    a writable one, else the default temp folder. Every Prefect API call commits to
    SQLite, and each commit's fsync on a disk is latency that the waiting tests pay."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment of the server and client subprocesses: isolated home, no analytics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'server.db'}",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_API_TLS_INSECURE_SKIP_VERIFY": "true",  # plain HTTP on 127.0.0.1
        # the server registers Prefect's block types (1.7 s of CPU) only when a test asks:
        # none stores blocks
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
        # a served deployment (`dqgen serve` in test_serve.py) picks up its scheduled run
        # within a second instead of the default 10 s: time the test would only wait
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        **QUIET_SERVICES,
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start() -> str:
    """Start the session's server (not waiting for it); sets `URL_ENV` and `HOME_ENV` in
    os.environ for the processes started after this. Idempotent."""
    global _proc
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    home = Path(tempfile.mkdtemp(prefix="dqgen-test-prefect-server-", dir=scratch_dir()))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    with open(home / "server.log", "wb") as out:
        _proc = subprocess.Popen(
            [str(PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(home), stdout=out, stderr=subprocess.STDOUT)
    os.environ[URL_ENV], os.environ[HOME_ENV] = api_url, str(home)
    atexit.register(shutdown)
    return api_url


def shutdown() -> None:
    """Stop the server this process started and remove its home."""
    global _proc
    if _proc is not None:
        stop(_proc)
        _proc = None
        shutil.rmtree(os.environ.get(HOME_ENV, ""), ignore_errors=True)


def wait_healthy(api_url: str, timeout: float = 180.0) -> None:
    if api_url in _healthy:
        return
    log = Path(os.environ.get(HOME_ENV, ".")) / "server.log"
    deadline = time.monotonic() + timeout
    # one client for all the polls (plain HTTP: no CA bundle loaded, ~50 ms each time)
    with httpx.Client(verify=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if _proc is not None and _proc.poll() is not None:
                msg = f"prefect server exited with code {_proc.returncode}: {log}"
                raise RuntimeError(msg)
            try:
                if client.get(f"{api_url}/health").status_code == 200:
                    _healthy.add(api_url)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    msg = f"prefect server at {api_url} not healthy after {timeout} s ({log})"
    raise TimeoutError(msg)


def server() -> dict[str, object]:
    """The session's server, healthy: {"api_url", "home", "log"}."""
    api_url = start()
    wait_healthy(api_url)
    home = Path(os.environ[HOME_ENV])
    return {"api_url": api_url, "home": home, "log": home / "server.log"}


def drain_events() -> None:
    """Send what Prefect's events worker still holds, and stop it.

    The worker is one per process and keeps the API URL it was started with: without this,
    a test in ephemeral mode after a `prefect_api` test in the same xdist worker sent its
    flow's task-run events to the session's server, which rejected them (no such flow run)
    and retried each six times. The Prefect fixtures (tests/conftest.py) drain it at both
    ends of every test, so each test's events reach its own server before the test ends."""
    worker = sys.modules.get("prefect.events.worker")
    if worker is not None:
        worker.EventsWorker.drain_all(timeout=30, at_exit=False)


def seed_database(home: Path) -> None:
    """Copy the shared server's (migrated) database to `home`/prefect.db, where an
    ephemeral server of that PREFECT_HOME looks for it: it then starts without migrating."""
    target = home / "prefect.db"
    if target.exists():
        return
    source = Path(str(server()["home"])) / "server.db"
    tmp = target.with_suffix(".db.tmp")
    with sqlite3.connect(source) as src, sqlite3.connect(tmp) as dst:
        src.backup(dst)  # a consistent copy while the server writes to it
    tmp.replace(target)
