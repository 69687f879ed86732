"""Where tasks run: in this process (:class:`SerialEngine`) or on Dask (:class:`DaskEngine`).

Both run :func:`~neuro_hw.sweep.task.run_task` on every task and hand back its rows as each task finishes, so the
same sweep gives the same rows either way (the evaluation gets the same parameters, target and seeds; the
emulator's results do not depend on how many threads run a batch).

:class:`DaskEngine` uses, in this order of preference, a ``distributed.Client`` passed in (left open), a scheduler
address (``tcp://host:port``: an existing cluster, e.g. started with ``dask scheduler`` and ``dask worker``), or a
``LocalCluster`` it starts on first use and closes on :meth:`close`: ``workers`` processes (default: the cores of
this machine) with one task thread each, no dashboard.  Every worker gets a plugin that sets the emulator's
thread count (``NEURO_HW_THREADS``, default 1 unless the worker's environment already sets it): the workers fill
the cores with one task each, so a batched emulator run inside a task should not start a thread per core as well.
Each worker process keeps the emulator kernels it loaded (and the targets it resolved) for its later tasks, and
compiled kernels are shared between processes through the on-disk kernel cache (``NEURO_HW_CACHE``).

A task the cluster cannot run (a worker killed by a crash or out of memory, an unpicklable result) becomes error
rows like an exception of the evaluation; Ctrl-C cancels the tasks still queued and re-raises.  Closing a
LocalCluster stops its worker processes and the multiprocessing resource tracker that starting them launched:
nothing is left running under this process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from neuro_hw.sweep.spec import Task
from neuro_hw.sweep.task import error_rows, run_task

#: Called with a finished task and its rows.
OnRows = Callable[[Task, list[dict[str, Any]]], None]


class Engine:
    """Runs tasks and reports each one's rows through ``on_rows`` as it finishes (in any order)."""

    #: Short description for messages ("serial", "LocalCluster(2 workers)", ...).
    description = "engine"

    def run(self, tasks: Sequence[Task], on_rows: OnRows) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine started (nothing for the serial engine)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialEngine(Engine):
    """Every task in this process, one after another, in order."""

    description = "serial (this process)"

    def run(self, tasks: Sequence[Task], on_rows: OnRows) -> None:
        for task in tasks:
            on_rows(task, run_task(task))


class DaskEngine(Engine):
    """Tasks on a Dask cluster (see module doc).

    Parameters
    ----------
    client:
        A ``distributed.Client`` to use (not closed by :meth:`close`).
    scheduler:
        Address of an existing scheduler, ``tcp://host:port`` (a Client is opened and closed by this engine).
    workers:
        Worker processes of the LocalCluster started when neither is given (default: the cores available).
    threads_per_task:
        Emulator threads per task in the workers (``NEURO_HW_THREADS``), 1 by default.
    """

    def __init__(
        self,
        client: Any = None,
        scheduler: str | None = None,
        workers: int | None = None,
        threads_per_task: int = 1,
    ) -> None:
        if client is not None and scheduler is not None:
            raise ValueError("give a client or a scheduler address, not both")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        self._client = client
        self._owns_client = client is None
        self.scheduler = scheduler
        self.workers = workers
        self.threads_per_task = threads_per_task
        self._cluster: Any = None
        self._plugin_registered = False
        self._tracker_was_running = True

    @property
    def description(self) -> str:  # type: ignore[override]
        if self.scheduler:
            return f"Dask cluster at {self.scheduler}"
        if self._cluster is not None or self._owns_client:
            return f"Dask LocalCluster ({self.n_local_workers()} worker processes)"
        return "Dask client given"

    def n_local_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover
            return max(1, os.cpu_count() or 1)

    @property
    def client(self) -> Any:
        """The Client, starting the LocalCluster (or connecting to the scheduler) on first use."""
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.scheduler:
                self._client = Client(self.scheduler)
            else:
                self._tracker_was_running = _resource_tracker_running()
                self._cluster = LocalCluster(
                    n_workers=self.n_local_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._cluster)
        if not self._plugin_registered:
            from neuro_hw.sweep.worker_plugin import EmulatorThreads

            self._client.register_plugin(EmulatorThreads(self.threads_per_task), name=EmulatorThreads.name)
            self._plugin_registered = True
        return self._client

    def start(self) -> DaskEngine:
        """Start the cluster (or connect) now rather than on the first sweep."""
        _ = self.client
        return self

    def run(self, tasks: Sequence[Task], on_rows: OnRows) -> None:
        from distributed import as_completed

        if not tasks:
            return
        client = self.client
        futures = {client.submit(run_task, task, pure=False): task for task in tasks}
        try:
            for future in as_completed(list(futures)):
                task = futures[future]
                try:
                    rows = future.result()
                except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: reported as the task's rows
                    rows = error_rows(task, type(err).__name__, str(err), f"{type(err).__name__} on the cluster")
                future.release()
                on_rows(task, rows)
        except BaseException:
            client.cancel(list(futures))
            raise

    def close(self) -> None:
        """Close the Client and LocalCluster this engine opened (a Client passed in stays open)."""
        if self._owns_client and self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
                self._plugin_registered = False
        if self._cluster is not None:
            try:
                self._cluster.close()
            finally:
                self._cluster = None
                if not self._tracker_was_running:
                    _stop_resource_tracker()


def _resource_tracker_running() -> bool:
    """Whether this process runs multiprocessing's resource tracker (started with the first spawned process)."""
    from multiprocessing import resource_tracker

    return getattr(resource_tracker._resource_tracker, "_pid", None) is not None


def _stop_resource_tracker() -> None:
    """Stop the resource tracker that starting the LocalCluster's worker processes started, so that closing the
    cluster leaves no child process behind (a later spawn starts it again).  Uses the private ``_stop`` of
    CPython's tracker; skipped where it does not exist."""
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        try:
            stop()
        except OSError:  # pragma: no cover - already gone
            pass


def make_engine(
    serial: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_task: int = 1,
) -> Engine:
    """:class:`SerialEngine` when ``serial``, else a :class:`DaskEngine` (see its parameters)."""
    if serial:
        if client is not None or scheduler is not None:
            raise ValueError("serial runs take no client or scheduler")
        return SerialEngine()
    return DaskEngine(client=client, scheduler=scheduler, workers=workers, threads_per_task=threads_per_task)
