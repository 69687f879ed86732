"""Child-process side of the Lava backend: ``python -m neuro_hw.targets.loihi2.lava_worker <workdir>``.

Started by :func:`neuro_hw.targets.loihi2.lava_backend.run_program_lava` through
:func:`~neuro_hw.targets.loihi2.process_guard.run_guarded`, in its own process group.  It reads
``<workdir>/spec.pkl``, builds the Lava process network of each trial (and of each connected
component of the program), runs it with ``Loihi2SimCfg`` and the recording models of
:mod:`.recording`, stops it, and writes into ``workdir``:

* the memory-mapped recordings (pre-created by the parent, layout in the spec);
* ``timings.json`` (build / compile+initialise / run / stop seconds per run);
* ``readback.pkl`` when ``read_back`` was requested (final values through ``Var.get()``);
* on failure ``error.json`` (exception type, message, traceback, and the tracebacks of the Lava
  process models that failed), after which it SIGKILLs its own process group instead of trying
  a graceful ``stop()`` that could hang on dead workers.

Nothing in here is public API; the spec format is private to ``lava_backend``.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .lowering import build_component, components
from .process_guard import hard_exit_group, install_child_guards
from .worker_protocol import READBACK_FILE, SPEC_FILE, TIMINGS_FILE, ModelError, collect_model_errors, write_error


def _read_back(procs: dict[str, Any], spec: dict[str, Any], comp: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Final values through Lava's own ``Var.get()`` (slow: ~50 µs per element)."""
    program = spec["program"]
    out: dict[str, np.ndarray] = {}
    for name in comp["neurons"]:
        out[f"{name}.u"] = np.asarray(procs[name].u.get())
        out[f"{name}.v"] = np.asarray(procs[name].v.get())
    for name in comp["connections"]:
        proc = procs[name]
        out[f"{name}.w"] = np.asarray(proc.weights.get())
        if program.connections[name].learning is not None:
            out[f"{name}.t"] = np.asarray(proc.tag_1.get())
            out[f"{name}.d"] = np.asarray(proc.tag_2.get())
            for k in ("x1", "x2", "y1", "y2", "y3"):
                out[f"{name}.{k}"] = np.asarray(getattr(proc, k).get())
    return out


def run(spec: dict[str, Any]) -> None:
    """Run every trial and component described by ``spec`` (see module doc)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .recording import recording_model_map

    workdir = Path(spec["workdir"])
    steps = int(spec["steps"])
    timings: list[dict[str, float]] = []
    readback: dict[str, list[np.ndarray]] = {}
    comps = components(spec["program"])
    for trial in range(int(spec["batch"])):
        for ci, comp in enumerate(comps):
            t0 = time.perf_counter()
            procs = build_component(spec, comp, trial)
            root = procs[comp["neurons"][0]]
            cfg = Loihi2SimCfg(
                select_tag=spec["select_tag"], exception_proc_model_map=recording_model_map(spec["select_tag"])
            )
            t1 = time.perf_counter()
            try:
                root.create_runtime(run_cfg=cfg)
                t2 = time.perf_counter()
                root.run(condition=RunSteps(num_steps=steps))
            except Exception as err:
                model_tbs = collect_model_errors(root, workdir)
                if model_tbs:
                    raise ModelError(str(err), model_tbs) from err
                raise
            t3 = time.perf_counter()
            if spec["read_back"]:
                for key, value in _read_back(procs, spec, comp).items():
                    readback.setdefault(key, []).append(value)
            t4 = time.perf_counter()
            root.stop()
            t5 = time.perf_counter()
            timings.append(
                {
                    "trial": trial,
                    "component": ci,
                    "build_s": t1 - t0,
                    "compile_init_s": t2 - t1,
                    "run_s": t3 - t2,
                    "read_back_s": t4 - t3,
                    "stop_s": t5 - t4,
                }
            )
    (workdir / TIMINGS_FILE).write_text(json.dumps(timings))
    if spec["read_back"]:
        with open(workdir / READBACK_FILE, "wb") as f:
            pickle.dump({k: np.stack(v) for k, v in readback.items()}, f)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ...lava_worker <workdir>``."""
    argv = sys.argv[1:] if argv is None else argv
    workdir = Path(argv[0])
    with open(workdir / SPEC_FILE, "rb") as f:
        spec = pickle.load(f)
    install_child_guards(workdir, int(spec["parent_pid"]))
    try:
        run(spec)
    except BaseException as err:  # noqa: B036 - report everything, then kill the group
        write_error(workdir, err)
        # A failed Lava runtime cannot be stopped reliably (workers may be blocked on channels):
        # unlink its shared memory and SIGKILL the whole process group, ourselves included.
        hard_exit_group(workdir)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
