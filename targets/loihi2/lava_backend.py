"""Lava backend: run a compiled :class:`~neuro_hw.compiler.program.Program` on Lava processes.

Entry point :func:`run_program_lava`.  The semantics are Lava 0.10's own (what they are, with the Lava
source lines: ``docs/lava-semantics.md``); the backend lowers the Program 1:1 to Lava processes
(:mod:`.lowering`), records every step cheaply and packs a :class:`~neuro_hw.result.Result`.

Lowering
--------
Program -> Lava processes, and the ``floating_pt`` unit conversion: :mod:`.lowering`.  What is recorded
and how it is packed: :mod:`.recording_plan`.

Execution
---------
Each call starts one worker process (``python -m ...lava_worker``) in its own process group; it
runs the B trials one after the other (and, within a trial, each connected component of the program
as its own Lava network -- components cannot interact, so this is exact).  Whatever happens (error,
``KeyboardInterrupt``, ``timeout``) the whole group is SIGKILLed in a ``finally`` and Lava's
shared-memory segments and the recording files are removed (:mod:`.process_guard`).  Errors raised
inside Lava process models are re-raised here as :class:`LavaRunError` carrying the models' real
tracebacks.

Recording
---------
Subclassed process models (:mod:`.recording`) write the state at the **end of every step** into
memory-mapped files (``/dev/shm`` when available).  Index ``k`` of a ``(B, T, ...)`` array is the
value at the end of step ``k+1``; for plastic connections this is after that step's learning phase
(when one ran), i.e. what ``Var.get()`` would return after ``k+1`` steps.  ``floating_pt`` values are
converted back to fixed-point units (:mod:`.lowering`).

Result
------
* ``spikes[pop]``: ``(B, T, *shape)`` bool.
* ``states["pop.u"]``, ``states["pop.v"]``: ``(B, T, *shape)`` int32 (float64 under floating_pt).
* ``states["conn.x1"|"conn.x2"]``: ``(B, T, n_source)``; ``states["conn.y1|y2|y3"]``:
  ``(B, T, n_target)`` -- the learning engine's trace registers (plastic connections only).  In 2F
  mode the first spike of an epoch only adds its impulse in the learning phase (docs/lava-semantics.md
  §4.3), so these are register values, not the ideal traces.
* ``weights["conn.w"]``, ``["conn.t"]`` (tag_1), ``["conn.d"]`` (tag_2) for plastic connections:
  ``(B, K, n_target, n_source)`` at ``weight_steps = [0, e, 2e, ..., T]`` (``e = weights_every``,
  default 1, so ``arange(T+1)``).  **Index 0 is the effective initial value**: the weights after
  Lava's one-time first-step LSB truncation (MIXED sign mode drops the weight LSB:
  ``3 -> 2, -3 -> -4``), before any learning.  Static connections: ``weights["conn.w"]`` once
  (``K=1``, ``weight_steps=[0]``) as the effective weights Lava uses (clip to 8(+sign) bits, then
  LSB truncation).
* ``backend="lava"`` (``"lava-float"`` under floating_pt), ``target``/``circuit_hash``/``dt`` from
  the Program, ``seed`` = the first trial's seed; ``metadata["lava"]`` holds all seeds, the learning
  seeds, timings and the worker pid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.compiler.payloads import normalize_payloads
from neuro_hw.compiler.program import Program, learning_rng_seed
from neuro_hw.compiler.trial_weights import check_trial_weights
from neuro_hw.errors import InputError
from neuro_hw.result import Result

from .lowering import SELECT_TAGS, UnsupportedProgramError, check_lowerable, masked_connections
from .process_guard import run_guarded
from .recording_plan import pack_recordings, plan_arrays, weight_sampling
from .worker_protocol import (
    READBACK_FILE,
    SPEC_FILE,
    TIMINGS_FILE,
    LavaRunError,
    raise_worker_failure,
    workdir_root,
    worker_env,
)

__all__ = [
    "LavaRunError",
    "UnsupportedProgramError",
    "run_program_lava",
]

_WORKER_MODULE = f"{__package__}.lava_worker" if __package__ else "lava_worker"


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _normalize_inputs(
    program: Program, inputs: Mapping[str, Any], steps: int, seed: int | Sequence[int]
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Validate inputs and seeds (:func:`neuro_hw.compiler.payloads.normalize_payloads`): ``{name: (B, steps, n)}``."""
    arrays, seeds, _ = normalize_payloads(program, inputs, steps, seed)
    return arrays, seeds


# --------------------------------------------------------------------------------------------------
# recording plan and read-out
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def run_program_lava(
    program: Program,
    inputs: dict[str, np.ndarray],
    steps: int,
    *,
    seed: int | Sequence[int] = 0,
    select_tag: str = "fixed_pt",
    weights_every: int = 1,
    read_back: bool = False,
    timeout: float | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
) -> Result:
    """Run ``program`` for ``steps`` steps on Lava (``Loihi2SimCfg``) and record every step.

    Parameters
    ----------
    program:
        The compiled circuit (see module doc for the lowering).
    inputs:
        ``{name: array}`` for every ``program.inputs`` entry, shaped ``(B, T, n)`` or ``(T, n)``
        (broadcast to all trials) with ``T >= steps`` (only the first ``steps`` are used).  Values
        are 0/1 spikes, or integer payloads for ``graded`` inputs.
    steps:
        Number of time steps ``T`` to run.
    seed:
        One int for all trials, or a sequence of ``B`` ints (it defines ``B`` when no input has a
        batch axis).  The learning rule of the i-th plastic connection in trial b gets
        ``rng_seed = learning_rng_seed(seed[b], i)``.  LIF and Dense are deterministic.
    select_tag:
        ``"fixed_pt"`` (bit-accurate integer models) or ``"floating_pt"`` (float models, converted
        units -- see module doc).
    weights_every:
        Record plastic weights/tags every ``weights_every`` steps (and at the last step); 1 = every
        step.  Use it to bound memory (``K * n_target * n_source * 4`` bytes per variable and trial).
    read_back:
        After each run, also read the final values through Lava's own ``Var.get()`` (slow, ~50 µs
        per element) into ``metadata["lava_get"][key]`` (nested lists, ``(B, ...)``); for checking
        that the recordings equal Lava's view.
    timeout:
        Optional wall-clock limit in seconds for the whole call; on expiry the worker's process
        group is killed and :class:`LavaRunError` is raised.  ``None`` waits forever.
    weights:
        Optional integer weights per trial, ``{connection: (B, n_target, n_source)}``, in place of the
        Program's (each trial builds its processes with its own; see
        :func:`neuro_hw.compiler.trial_weights.trial_weights`).

    Returns
    -------
    Result
        See module doc (``backend="lava"`` or ``"lava-float"``).

    Raises
    ------
    InputError
        Missing/extra inputs, wrong shapes or values, bad ``steps``/``seed``.
    ValidationError, UnsupportedProgramError
        The Program is inconsistent or uses something Lava cannot express.
    LavaRunError
        Lava failed (with the process models' tracebacks), the worker crashed or timed out.
    """
    if select_tag not in SELECT_TAGS:
        raise InputError(f"select_tag must be one of {SELECT_TAGS}, got {select_tag!r}", field="select_tag")
    if isinstance(weights_every, bool) or not isinstance(weights_every, (int, np.integer)) or weights_every < 1:
        raise InputError(f"weights_every must be a positive integer, got {weights_every!r}", field="weights_every")
    float_exp = check_lowerable(program, select_tag)
    masked = masked_connections(program)
    if read_back and masked:
        raise UnsupportedProgramError(
            "read_back reads Lava's Var.get(), which fails on a LearningSparse that stores zero-valued synapses "
            "(Lava 0.10); the recorded weights are the same values",
            node=masked[0],
            field="read_back",
        )
    arrays_in, seeds = _normalize_inputs(program, inputs, steps, seed)
    steps = int(steps)
    batch = len(seeds)
    per_trial = check_trial_weights(program, weights or {}, batch)
    floating = select_tag == "floating_pt"
    weight_steps, rows = weight_sampling(steps, int(weights_every))
    plastic = [name for name, c in program.connections.items() if c.learning is not None]
    learning_seeds = {name: [learning_rng_seed(s, i) for s in seeds] for i, name in enumerate(plastic)}

    plan = plan_arrays(program, steps, batch, floating, len(weight_steps))
    meta: dict[str, Any] = {
        "select_tag": select_tag,
        "seeds": seeds,
        "learning_rng_seeds": learning_seeds,
        "weight_index0": "effective initial weights (after Lava's first-step clip/LSB truncation), before learning",
        "record_time": "end of step (after the learning phase of that step)",
    }
    if floating:
        meta["float_unit_exp"] = float_exp

    result_arrays: dict[str, np.ndarray] = {}
    readback: dict[str, np.ndarray] = {}
    if program.neurons:
        workdir = Path(tempfile.mkdtemp(prefix="neuro_hw_lava_", dir=workdir_root()))
        try:
            for i, a in enumerate(plan.values()):
                path = workdir / f"rec.{i}.bin"
                a["path"] = str(path)
                nbytes = int(np.prod(a["shape"], dtype=np.int64)) * np.dtype(a["dtype"]).itemsize
                with open(path, "wb") as f:
                    f.truncate(nbytes)  # zero-filled, sparse until written
            spec = {
                "workdir": str(workdir),
                "program": dataclasses.replace(program, report=None, metadata={}),
                "inputs": arrays_in,
                "steps": steps,
                "batch": batch,
                "select_tag": select_tag,
                "read_back": bool(read_back),
                "arrays": plan,
                "rows": rows,
                "learning_seeds": learning_seeds,
                "trial_weights": per_trial,
                "float_exp": float_exp,
                "parent_pid": os.getpid(),
            }
            with open(workdir / SPEC_FILE, "wb") as f:
                pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)
            run = run_guarded(_WORKER_MODULE, workdir, timeout=timeout, env=worker_env(), error_dir=workdir / "errors")
            meta["worker_pid"] = run.pid
            meta["wall_s"] = run.seconds
            if run.returncode != 0 or run.timed_out or run.aborted:
                raise_worker_failure(workdir, run)
            timings_path = workdir / TIMINGS_FILE
            if not timings_path.exists():
                raise_worker_failure(workdir, run)
            meta["timings"] = json.loads(timings_path.read_text())
            for key, a in plan.items():
                result_arrays[key] = np.fromfile(a["path"], dtype=np.dtype(a["dtype"])).reshape(a["shape"])
            if read_back:
                with open(workdir / READBACK_FILE, "rb") as f:
                    readback = pickle.load(f)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    spikes, states, weights, wsteps = pack_recordings(
        program, result_arrays, batch, steps, weight_steps, float_exp if floating else None
    )
    metadata: dict[str, Any] = {"lava": meta}
    if read_back:
        metadata["lava_get"] = {key: np.asarray(v).tolist() for key, v in readback.items()}

    return Result(
        spikes=spikes,
        states=states,
        weights=weights,
        weight_steps=wsteps,
        dt=float(program.dt),
        steps=steps,
        batch=batch,
        backend="lava-float" if floating else "lava",
        circuit_hash=program.circuit_hash,
        seed=seeds[0],
        target=program.target,
        metadata=metadata,
    )


def _main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - manual smoke test
    """``python -m neuro_hw.targets.loihi2.lava_backend``: run a tiny bias-driven LIF and print it."""
    from neuro_hw.compiler.program import NeuronProgram

    prog = Program(
        target="loihi2",
        dt=1.0,
        inputs={},
        neurons={
            "p": NeuronProgram("p", 3, du=0, dv=0, vth=10, bias_mant=[100, 200, 300], bias_exp=0, u_init=0, v_init=0)
        },
        connections={},
    )
    res = run_program_lava(prog, {}, 20)
    print(res.summary())
    print(res.metadata["lava"]["timings"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
