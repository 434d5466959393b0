"""Shared test setup: Prefect isolated in a temporary home, no analytics, loopback only.

Prefect: one real server for the whole session (tests/support/prefect_server.py); a test
that talks to Prefect asks for `prefect_api` (or `prefect_ephemeral` for the tests of
ephemeral mode itself); ephemeral mode is off otherwise, so a test that forgets fails.

Bytecode: the suite starts well over a hundred Python processes (xdist workers, pool
workers, CLI subprocesses, Prefect's). With PYTHONDONTWRITEBYTECODE set (as in some
containers) each of them compiles dqgen's sources and pytest rewrites every test module
again: a sixth of the suite's CPU on 2 cores. The tests let Python write __pycache__/
(git-ignored) so later processes read it.
"""

from __future__ import annotations

import atexit
import fnmatch
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # see the module docstring
sys.dont_write_bytecode = False

from tests.support import prefect_server  # noqa: E402 - imports no Prefect

from pipeline.build import POOL_PRELOAD  # noqa: E402

# One forkserver per process serves every process pool of it. A build's pool preloads the
# distortion library in it (pipeline.build.make_executor), but a torch DataLoader test that
# starts a test process's forkserver first would start it without, and then every pool
# worker of every later build in that process imports cv2, the distortions and pydantic
# again (0.4 s of CPU each). The preload is set before any of them starts it.
multiprocessing.set_forkserver_preload(list(POOL_PRELOAD))

# Must be set before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="dqgen-test-prefect-", dir=prefect_server.scratch_dir())
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"  # see prefect_api / prefect_ephemeral
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"  # flows log here, not to the server
# The API is plain HTTP on 127.0.0.1: no TLS to verify. Without this every Prefect client
# loads the CA bundle (~50 ms of CPU each, thousands of clients in the suite).
os.environ["PREFECT_API_TLS_INSECURE_SKIP_VERIFY"] = "true"
# Tests never reach a real API: make sure no real key or URL leaks in from the environment.
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.pop("PREFECT_API_URL", None)
# An ephemeral server started by a test (prefect_ephemeral) lives as long as its worker:
# without the loop services no test needs, like the session's server.
os.environ.update(prefect_server.QUIET_SERVICES)



_FLOW_TESTS = Path(__file__).resolve().parent / "flows"  # every test that talks to Prefect


def _collects_flow_tests(config: pytest.Config) -> bool:
    """Whether this session's paths include tests/flows (and no --ignore or --ignore-glob
    leaves it out). Paths only: a session selecting by -k, -m or --pyargs is not looked
    into (with -k/-m the server is started; with --pyargs each worker starts its own)."""
    here = config.invocation_params.dir
    ignored = [(here / p).resolve() for p in (config.getoption("ignore") or [])]
    globs = config.getoption("ignore_glob") or []
    if any(p == _FLOW_TESTS or p in _FLOW_TESTS.parents for p in ignored) or any(
            fnmatch.fnmatch(str(_FLOW_TESTS), str(here / g)) for g in globs):
        return False
    paths = [here / a.split("::")[0] for a in config.args]
    for path in paths or [Path(str(config.rootpath)) / "tests"]:
        path = path.resolve()
        if path == _FLOW_TESTS or path in _FLOW_TESTS.parents or _FLOW_TESTS in path.parents:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist: the controller starts the session's Prefect server before it spawns the
    # workers (they inherit its URL) and does not wait for it: it boots while they collect
    # and run the tests that need no Prefect. Without xdist the first `prefect_api` starts it.
    # A session without tests/flows (the quick run of docs/development.md) starts none.
    if (not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None)
            and _collects_flow_tests(config)):
        prefect_server.start()


@pytest.fixture
def prefect_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Prefect (this process and the subprocesses a test starts) talks to the session's
    server; yields its API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = str(prefect_server.server()["api_url"])
    monkeypatch.setenv("PREFECT_API_URL", url)
    prefect_server.drain_events()
    with temporary_settings({PREFECT_API_URL: url}):
        yield url
        prefect_server.drain_events()


@pytest.fixture
def prefect_ephemeral(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Prefect's ephemeral mode, as a user without PREFECT_API_URL gets it: a temporary
    server of this process's PREFECT_HOME (seeded with a migrated database)."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    prefect_server.seed_database(Path(_PREFECT_HOME))
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
    prefect_server.drain_events()
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_ENABLED: True}):
        yield
        prefect_server.drain_events()
