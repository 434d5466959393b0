"""Fixtures of the flow tests: a tiny manifest and a real Prefect server on 127.0.0.1.

The server runs as `prefect server start` in a subprocess with its own PREFECT_HOME and
SQLite database (a fresh database takes 15-30 s to migrate, so it is started once per
session, and only by the tests that need a standalone server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TINY_MANIFEST = """\
name: tiny
seed: 7
output: out/{name}
references:
  root: "@skimage"
  splits:
    train: [astronaut.png, coffee.png, chelsea.png]
    test: [camera.png]
resize: {short_side: 64}
chunk_size: 2
counts:
  refA_sd: {train: 4, test: 2}
  refA_md: {train: 3, test: 1}
  refAB_sd: {train: 3, test: 1}
  refAB_md: {train: 2, test: 1}
responder: {kind: template}
tasks: {report: false}
"""

PREFECT_BIN = Path(sys.executable).with_name("prefect")
DQGEN_BIN = Path(sys.executable).with_name("dqgen")


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 4 demo photos at 64 px, 17 samples over the four kinds (chunks of 2)."""
    path = tmp_path_factory.mktemp("manifest") / "tiny.yaml"
    path.write_text(TINY_MANIFEST, encoding="utf-8")
    return path


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
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def wait_healthy(api_url: str, proc: subprocess.Popen[bytes], timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"prefect server exited with code {proc.returncode}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    msg = f"prefect server at {api_url} not healthy after {timeout} s"
    raise TimeoutError(msg)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """`prefect server start` on a free 127.0.0.1 port; yields {"api_url", "home", "log"}."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(home), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(api_url, proc)
        yield {"api_url": api_url, "home": home, "log": log}
    finally:
        stop(proc)
