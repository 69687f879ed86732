"""The Dask worker plugin of :class:`~neuro_hw.sweep.engine.DaskEngine` (imported only when Dask is used)."""

from __future__ import annotations

import os
from typing import Any

from distributed import WorkerPlugin


class EmulatorThreads(WorkerPlugin):
    """Sets the emulator's thread count ``NEURO_HW_THREADS`` in each worker, unless the worker's environment sets it
    already (:func:`neuro_hw.emulator.step_kernel.worker_count` reads it at every batched run)."""

    name = "neuro-hw-emulator-threads"
    idempotent = True

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        self.threads = threads

    def setup(self, worker: Any) -> None:
        os.environ.setdefault("NEURO_HW_THREADS", str(self.threads))
