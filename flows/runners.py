"""Task runner selection for the dqgen flows: local threads (default) or a Dask cluster.

`RunnerSpec` is the JSON-able choice a user makes (`dqgen build --runner dask
--dask-address tcp://...`); `compute(spec)` opens what one build needs for it and yields
the spec the flows use:

* ``threads``: Prefect's `ThreadPoolTaskRunner` of `workers` threads in the flow's
  process. The chunk functions spend their time in OpenCV, NumPy, ImageMagick and zlib,
  which release the GIL, so threads scale over cores without a process pool (measured:
  the demo's synthesis chunks on 2 threads ran 1.8x faster than on one).
* ``dask``: prefect-dask's `DaskTaskRunner`. Without an address a `LocalCluster` of
  `workers` single-threaded worker processes is started once for the whole build;
  with `--dask-address tcp://host:8786` an existing scheduler is used, so a multi-machine
  build needs no code change (the workers must be able to import `dqgen` and reach the
  dataset folder and the Prefect API).

The dask runner needs the `dask` extra (dask, distributed, prefect-dask). Every import of
those goes through `dask_modules()`, which raises `DaskNotInstalledError` naming
`pip install 'dqgen[dask]'`; a `RunnerSpec(runner="dask")` checks it when it is made, so
the CLI refuses the option before any run starts.

Dask workers report their task runs to the Prefect API themselves. In Prefect's ephemeral
mode (no PREFECT_API_URL) each worker process would otherwise start a private temporary
server; `compute` pins the API URL of the flow's own server for the workers instead.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from types import ModuleType
from typing import Any, ContextManager, NamedTuple

__all__ = [
    "DASK_INSTALL",
    "RUNNERS",
    "DaskModules",
    "DaskNotInstalledError",
    "RunnerSpec",
    "api_url_for_workers",
    "compute",
    "dask_modules",
    "local_cluster_kwargs",
]

log = logging.getLogger(__name__)

RUNNERS: tuple[str, ...] = ("threads", "dask")
DASK_INSTALL = "pip install 'dqgen[dask]'"


class DaskNotInstalledError(ImportError, ValueError):
    """The dask runner was chosen but the `dask` extra is not (fully) installed.

    An ImportError, and a ValueError like any other runner choice this installation cannot
    honour (the CLI reports those as a one-line error, without a traceback).
    """


class DaskModules(NamedTuple):
    """The modules of the `dask` extra, imported."""

    dask: ModuleType
    distributed: ModuleType
    prefect_dask: ModuleType


def dask_modules() -> DaskModules:
    """Import dask, distributed and prefect_dask: the one place the flows import them.

    Raises:
        DaskNotInstalledError: one of them cannot be imported; the message names it and
            `pip install 'dqgen[dask]'`.
    """
    mods: dict[str, ModuleType] = {}
    for name in DaskModules._fields:
        try:
            mods[name] = importlib.import_module(name)
        except ImportError as err:
            package = name.replace("_", "-")
            msg = (f"the dask runner needs dask, distributed and prefect-dask; {package} "
                   f"cannot be imported ({err}): {DASK_INSTALL}")
            raise DaskNotInstalledError(msg, name=name) from err
    return DaskModules(**mods)


@dataclass(frozen=True)
class RunnerSpec:
    """Which task runner the flows use, as plain data (CLI options, serve settings)."""

    runner: str = "threads"
    workers: int = 1
    dask_address: str | None = None

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            msg = f"runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}"
            raise ValueError(msg)
        if not isinstance(self.workers, int) or self.workers < 1:
            msg = f"workers must be an integer >= 1, got {self.workers!r}"
            raise ValueError(msg)
        if self.dask_address is not None and self.runner != "dask":
            msg = f"dask_address {self.dask_address!r} needs runner 'dask', got {self.runner!r}"
            raise ValueError(msg)
        if self.runner == "dask":
            dask_modules()  # DaskNotInstalledError now, not a traceback once a run started

    @classmethod
    def from_dict(cls, data: dict[str, Any] | RunnerSpec | None) -> RunnerSpec:
        if isinstance(data, RunnerSpec):
            return data
        return cls(**(data or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def task_runner(self) -> Any:
        """A fresh Prefect task runner for one flow run of this spec."""
        if self.runner == "threads":
            from prefect.task_runners import ThreadPoolTaskRunner

            return ThreadPoolTaskRunner(max_workers=self.workers)
        DaskTaskRunner = dask_modules().prefect_dask.DaskTaskRunner  # noqa: N806
        if self.dask_address:
            return DaskTaskRunner(address=self.dask_address)
        return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(self.workers))


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """LocalCluster settings: `workers` processes of one thread each (one core per chunk)."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": None}


def api_url_for_workers() -> str | None:
    """The Prefect API URL that other processes must use to report to this flow's server.

    PREFECT_API_URL when set; in ephemeral mode the URL of the temporary server this process
    started (None when none is running yet).
    """
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    if server is not None and server.running:
        return server.api_url
    return None


def _pin_api_url() -> ContextManager[Any]:
    url = api_url_for_workers()
    if url is None:
        return nullcontext()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: url})


@contextmanager
def compute(spec: RunnerSpec) -> Iterator[RunnerSpec]:
    """Open what a build of `spec` needs; yield the spec its flows use.

    threads: nothing to open. dask without an address: a LocalCluster for the whole
    build (the yielded spec carries its scheduler address). dask: the API URL pinned for
    the workers (see module docstring).

    Raises:
        DaskNotInstalledError: runner "dask" without the dask extra.
    """
    if spec.runner == "threads":
        yield spec
        return
    mods = dask_modules()
    with _pin_api_url():
        if spec.dask_address:
            yield spec
            return
        dask, distributed = mods.dask, mods.distributed
        # Worker chatter (nanny start/stop lines) would drown the build's own log.
        with dask.config.set({"distributed.logging.distributed": "warning"}):
            _quiet_distributed()
            started = _now()
            with distributed.LocalCluster(**local_cluster_kwargs(spec.workers)) as cluster:
                log.info("started a Dask LocalCluster of %d workers at %s in %.1f s",
                         spec.workers, cluster.scheduler_address, _now() - started)
                yield replace(spec, dask_address=cluster.scheduler_address)


def _quiet_distributed() -> None:
    for name in ("distributed", "distributed.scheduler", "distributed.nanny",
                 "distributed.worker", "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _now() -> float:
    import time

    return time.perf_counter()
