"""Shared test setup: Prefect isolated in a temporary home, no analytics, loopback only."""

from __future__ import annotations

import os
import tempfile

# Must be set before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="dqgen-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Tests never reach a real API: make sure no real key or URL leaks in from the environment.
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
