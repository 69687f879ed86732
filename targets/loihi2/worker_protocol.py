"""The protocol between the parent process and a Lava worker process: files, errors, environment.

A Lava run happens in a worker process in its own process group (:mod:`.process_guard`); the parent writes
``<workdir>/spec.pkl``, the worker writes ``timings.json``, ``readback.pkl`` or, on failure, ``error.json``
(:func:`write_error`) and per-model tracebacks in ``errors/``; :func:`raise_worker_failure` turns whatever
the worker left into one :class:`LavaRunError` with the process models' real tracebacks.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuro_hw.errors import NeuroHWError

ERROR_FILE = "error.json"
TIMINGS_FILE = "timings.json"
READBACK_FILE = "readback.pkl"
SPEC_FILE = "spec.pkl"


class LavaRunError(NeuroHWError):
    """A Lava run failed: an exception in a process model or in building the network, a crash, or a timeout.

    Attributes
    ----------
    model_tracebacks:
        The tracebacks of the Lava process models that raised (what Lava itself only prints).
    worker_traceback:
        Traceback of the exception in the worker process.
    log:
        Combined output of the worker and its Lava processes.
    worker_pid:
        Pid (= process-group id) of the worker; the group has been killed.
    """

    def __init__(
        self,
        reason: str,
        *,
        model_tracebacks: Sequence[str] = (),
        worker_traceback: str = "",
        log: str = "",
        worker_pid: int | None = None,
        **where: str | None,
    ) -> None:
        self.model_tracebacks = list(model_tracebacks)
        self.worker_traceback = worker_traceback
        self.log = log
        self.worker_pid = worker_pid
        super().__init__(reason, **where)


class ModelError(Exception):
    """A Lava process model raised; carries the models' own tracebacks."""

    def __init__(self, message: str, model_tracebacks: list[str]) -> None:
        super().__init__(message)
        self.model_tracebacks = model_tracebacks


def workdir_root() -> str | None:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if __package__ and not __package__.startswith("neuro_hw."):
        # imported as a plain package (e.g. ``targets.loihi2`` from the repository root): make the
        # same top-level package importable in the worker
        root = Path(__file__).resolve().parents[len(__package__.split("."))]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    return env


def raise_worker_failure(workdir: Path, run: Any) -> None:
    error_path = workdir / ERROR_FILE
    if error_path.exists():
        info = json.loads(error_path.read_text())
        model_tbs = info.get("model_tracebacks") or []
        reason = f"Lava run failed: {info['type']}: {info['message']}"
        if model_tbs:
            reason += "\n--- exception(s) raised inside Lava process models ---\n" + "\n".join(
                tb.rstrip() for tb in model_tbs
            )
        else:
            reason += "\n--- worker traceback ---\n" + info.get("traceback", "").rstrip()
        raise LavaRunError(
            reason,
            model_tracebacks=model_tbs,
            worker_traceback=info.get("traceback", ""),
            log=run.log,
            worker_pid=run.pid,
        )
    model_tbs = [f.read_text(errors="replace") for f in sorted((workdir / "errors").glob("*.txt"))]
    if model_tbs:
        # a process model raised and Lava blocked (its peers wait on the failed model's ports)
        raise LavaRunError(
            "Lava run failed: exception(s) raised inside Lava process models (Lava itself blocked "
            "instead of reporting them; its process group was killed)\n" + "\n".join(tb.rstrip() for tb in model_tbs),
            model_tracebacks=model_tbs,
            log=run.log,
            worker_pid=run.pid,
        )
    if run.timed_out:
        raise LavaRunError(
            f"Lava run timed out after {run.seconds:.1f} s; its process group was killed",
            log=run.log,
            worker_pid=run.pid,
        )
    tail = "\n".join(run.log.strip().splitlines()[-30:])
    raise LavaRunError(
        f"Lava worker exited with status {run.returncode} without reporting an error; output:\n{tail}",
        log=run.log,
        worker_pid=run.pid,
    )


def collect_model_errors(proc: Any, workdir: Path) -> list[str]:
    """Tracebacks of the Lava process models that raised.

    Our recording models write theirs (with node name and time step) into ``workdir/errors``; for
    other models (e.g. the RingBuffer) fall back to Lava's ``SystemProcess.exception`` records.
    """
    err_dir = workdir / "errors"
    if err_dir.is_dir():
        texts = [f.read_text(errors="replace") for f in sorted(err_dir.iterdir())]
        if texts:
            return texts
    texts = []
    runtime = getattr(proc, "runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None) if runtime is not None else None
    for actor in getattr(infra, "actors", None) or []:
        try:
            exc = actor.exception
        except Exception:  # the pipe may already be closed
            exc = None
        if exc:
            texts.append(str(exc[1]))
    return texts


def write_error(workdir: Path, err: BaseException) -> None:
    """Write ``workdir/error.json`` (read by ``lava_backend.raise_worker_failure``) for ``err``.

    Call it from the ``except`` clause that caught ``err`` (the traceback is ``format_exc()``).
    """
    info = {
        "type": type(err).__name__,
        "message": str(err),
        "traceback": traceback.format_exc(),
        "model_tracebacks": getattr(err, "model_tracebacks", []),
    }
    tmp = workdir / (ERROR_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, workdir / ERROR_FILE)
