"""Fixtures of the flow tests: a tiny manifest and a real Prefect server on 127.0.0.1.

The server is the session's one `prefect server start` in a subprocess with its own
PREFECT_HOME and SQLite database (tests/support/prefect_server.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import prefect_server as _server
from tests.support.prefect_server import PREFECT_BIN, server_env, stop

__all__ = ["DQGEN_BIN", "PREFECT_BIN", "TINY_MANIFEST", "server_env", "stop"]

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

DQGEN_BIN = Path(sys.executable).with_name("dqgen")


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 4 demo photos at 64 px, 17 samples over the four kinds (chunks of 2)."""
    path = tmp_path_factory.mktemp("manifest") / "tiny.yaml"
    path.write_text(TINY_MANIFEST, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prefect_server() -> dict[str, object]:
    """The session's `prefect server start` on 127.0.0.1 (tests/support/prefect_server.py),
    healthy; {"api_url", "home", "log"}."""
    return _server.server()
