"""Lava backend: run a compiled :class:`~neuro_hw.compiler.program.Program` on Lava processes.

Entry point :func:`run_program_lava`.  The semantics are Lava 0.10's own (the source of truth is
``../shared/docs/lava-semantics.md``); this module only lowers the Program 1:1 to Lava processes,
records every step cheaply and packs a :class:`~neuro_hw.result.Result`.

Lowering
--------
* ``InputProgram``  -> ``lava.proc.io.source.RingBuffer`` with data ``(n, steps)``; column k-1 is
  sent at step k (int32 payloads under ``fixed_pt``).  Spike inputs must be 0/1, graded payloads
  must lie in ``0..max_payload`` and need ``num_message_bits > 0`` on a Dense they feed (a binary
  Dense counts any nonzero payload as one spike); both are checked.
* ``NeuronProgram`` (``model="lif"``) -> ``LIF`` (``PyLifModelBitAcc``): ``du``, ``dv``, ``vth`` as
  Python ints, ``bias_mant``, ``bias_exp``, ``u``, ``v`` as int32 arrays, passed unchanged (Lava
  wraps ``bias_mant`` into int16 silently; the compiler keeps it in 13 bits).
* ``ConnectionProgram`` -> ``Dense`` / ``DelayDense`` (``delays`` set) / ``LearningDense``
  (``learning`` set) with ``weight_exp``, ``num_weight_bits``, ``sign_mode`` (Lava ``SignMode``,
  always passed explicitly) and ``num_message_bits``.  ``source.s_out -> conn.s_in``,
  ``conn.a_out -> target.a_in``.
* ``LearningProgram`` -> ``Loihi2FLearningRule`` (``Loihi3FLearningRule`` when ``third_factor``
  is set) with the rule strings, impulses, taus, ``t_epoch`` and
  ``rng_seed = learning_rng_seed(seed_b, i)`` for the i-th plastic connection (Program order).
  Post spikes: ``target.s_out -> conn.s_in_bap``; third factors: ``source.s_out -> conn.s_in_y<k>``
  (the y-trace is *overwritten* every step by what the source sends; §4.3).  A fresh rule object is
  built for every connection and trial (Lava mutates rule objects).

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
(when one ran), i.e. what ``Var.get()`` would return after ``k+1`` steps.

Result
------
* ``spikes[pop]``: ``(B, T, *shape)`` bool.
* ``states["pop.u"]``, ``states["pop.v"]``: ``(B, T, *shape)`` int32 (float64 under floating_pt).
* ``states["conn.x1"|"conn.x2"]``: ``(B, T, n_source)``; ``states["conn.y1|y2|y3"]``:
  ``(B, T, n_target)`` -- the learning engine's trace registers (plastic connections only).  In 2F
  mode the first spike of an epoch only adds its impulse in the learning phase (§4.3), so these are
  register values, not the ideal traces.
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

floating_pt
-----------
``select_tag="floating_pt"`` runs Lava's float models on the *same* Program.  Lava's float LIF has
other units (``u = u(1-du) + a``, ``v > vth``, no ``<<6`` scaling, ``bias_exp`` ignored), so the
backend converts the integer parameters, for a population ``p`` with unit exponent ``e_p``
(the ``weight_exp`` of the plastic connections into ``p``, 0 if none)::

    S_p = 2**(6 + e_p);  du_f = (du+1)/4096;  dv_f = dv/4096;  vth_f = vth*64/S_p
    u_f = u/S_p;  v_f = v/S_p;  bias_f = bias_mant*2**bias_exp/S_p
    weights_f = W * 2**(weight_exp - e_p)    (plastic connections: W itself)

and reports ``u``, ``v`` multiplied back by ``S_p`` and weights divided back by
``2**(weight_exp - e_p)``, so float and fixed results are in the same units and can be compared
statistically.  Plastic connections into one population must share their ``weight_exp``.
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

from neuro_hw.compiler.checks import check_program
from neuro_hw.compiler.payloads import normalize_payloads
from neuro_hw.compiler.program import LEARNING_TRACES, Program, learning_rng_seed
from neuro_hw.errors import InputError, NeuroHWError
from neuro_hw.result import Result

from .process_guard import run_guarded

__all__ = [
    "LavaRunError",
    "UnsupportedProgramError",
    "run_program_lava",
]

SELECT_TAGS = ("fixed_pt", "floating_pt")
_WORKER_MODULE = f"{__package__}.lava_worker" if __package__ else "lava_worker"


class UnsupportedProgramError(NeuroHWError):
    """The Program uses a feature that Lava 0.10 cannot express (or would silently ignore)."""


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


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _validate_program(program: Program, select_tag: str) -> dict[str, int]:
    """Check that the Program can be lowered (:func:`~neuro_hw.compiler.checks.check_program`); return the
    float unit exponent ``e_p`` of each population (floating_pt: the ``weight_exp`` of its plastic inputs)."""
    check_program(program, UnsupportedProgramError, max_delay=None)  # Lava's DelayDense checks its own bound
    float_exp: dict[str, int | None] = {name: None for name in program.neurons}
    for name, conn in program.connections.items():
        if conn.learning is None or select_tag != "floating_pt":
            continue
        prev = float_exp[conn.target]
        if prev is not None and prev != int(conn.weight_exp):
            raise UnsupportedProgramError(
                f"floating_pt: plastic connections into {conn.target!r} have different weight_exp "
                f"({prev} and {conn.weight_exp}); their learning rates cannot share one float unit",
                node=name,
                field="weight_exp",
            )
        float_exp[conn.target] = int(conn.weight_exp)
    return {k: (0 if v is None else v) for k, v in float_exp.items()}


def _normalize_inputs(
    program: Program, inputs: Mapping[str, Any], steps: int, seed: int | Sequence[int]
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Validate inputs and seeds (:func:`neuro_hw.compiler.payloads.normalize_payloads`): ``{name: (B, steps, n)}``."""
    arrays, seeds, _ = normalize_payloads(program, inputs, steps, seed)
    return arrays, seeds


# --------------------------------------------------------------------------------------------------
# recording plan and read-out
# --------------------------------------------------------------------------------------------------
def _weight_sampling(steps: int, every: int) -> tuple[np.ndarray, list[int]]:
    """Sampled steps ``[0, e, 2e, ..., T]`` and ``rows[k]`` = their row for step k (-1 = not sampled)."""
    sampled = [0] + [k for k in range(1, steps + 1) if k % every == 0 or k == steps]
    rows = [-1] * (steps + 1)
    for i, k in enumerate(sampled):
        if k > 0:
            rows[k] = i
    return np.asarray(sampled, dtype=np.int64), rows


def _plan_arrays(program: Program, steps: int, batch: int, floating: bool, n_samples: int) -> dict[str, dict[str, Any]]:
    """Name, dtype and full ``(B, ...)`` shape of every memory-mapped recording."""
    val = "float64" if floating else "int32"
    plan: dict[str, dict[str, Any]] = {}
    for name, pop in program.neurons.items():
        plan[f"{name}.s"] = {"dtype": "bool", "shape": [batch, steps, pop.n]}
        plan[f"{name}.u"] = {"dtype": val, "shape": [batch, steps, pop.n]}
        plan[f"{name}.v"] = {"dtype": val, "shape": [batch, steps, pop.n]}
    for name, conn in program.connections.items():
        n_t, n_s = conn.weights.shape
        if conn.learning is None:
            plan[f"{name}.w"] = {"dtype": val, "shape": [batch, 1, n_t, n_s]}
            continue
        for k in ("w", "t", "d"):
            plan[f"{name}.{k}"] = {"dtype": val, "shape": [batch, n_samples, n_t, n_s]}
        for k in ("x1", "x2"):
            plan[f"{name}.{k}"] = {"dtype": val, "shape": [batch, steps, n_s]}
        for k in ("y1", "y2", "y3"):
            plan[f"{name}.{k}"] = {"dtype": val, "shape": [batch, steps, n_t]}
    return plan


def _workdir_root() -> str | None:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if __package__ and not __package__.startswith("neuro_hw."):
        # imported as a plain package (e.g. ``targets.loihi2`` from the repository root): make the
        # same top-level package importable in the worker
        root = Path(__file__).resolve().parents[len(__package__.split("."))]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    return env


def _raise_worker_failure(workdir: Path, run: Any) -> None:
    from .lava_worker import ERROR_FILE

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


def pack_recordings(
    program: Program,
    arrays: Mapping[str, np.ndarray],
    batch: int,
    steps: int,
    weight_steps: np.ndarray,
    float_exp: Mapping[str, int] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The recorded arrays (keys ``"pop.s|u|v"``, ``"conn.w|t|d|x1..y3"``) as Result ``spikes, states,
    weights, weight_steps``; plastic variables at ``weight_steps``, static weights once at step 0.

    ``float_exp`` (floating_pt): convert ``u``, ``v`` and weights back to the fixed-point units (module doc).
    """
    spikes: dict[str, np.ndarray] = {}
    states: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    wsteps: dict[str, np.ndarray] = {}
    for name, pop in program.neurons.items():
        shape = (batch, steps) + tuple(pop.shape)
        spikes[name] = arrays[f"{name}.s"].reshape(shape)
        for var in ("u", "v"):
            arr = arrays[f"{name}.{var}"]
            if float_exp is not None:
                arr = arr * 2.0 ** (6 + float_exp[name])
            states[f"{name}.{var}"] = arr.reshape(shape)
    for name, conn in program.connections.items():
        w = arrays[f"{name}.w"]
        if float_exp is not None:
            w = w / 2.0 ** (int(conn.weight_exp) - float_exp[conn.target])
        weights[f"{name}.w"] = w
        if conn.learning is None:
            wsteps[f"{name}.w"] = np.zeros(1, dtype=np.int64)
            continue
        wsteps[f"{name}.w"] = weight_steps.copy()
        for k in ("t", "d"):
            weights[f"{name}.{k}"] = arrays[f"{name}.{k}"]
            wsteps[f"{name}.{k}"] = weight_steps.copy()
        for k in LEARNING_TRACES:
            states[f"{name}.{k}"] = arrays[f"{name}.{k}"]
    return spikes, states, weights, wsteps


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
    float_exp = _validate_program(program, select_tag)
    arrays_in, seeds = _normalize_inputs(program, inputs, steps, seed)
    steps = int(steps)
    batch = len(seeds)
    floating = select_tag == "floating_pt"
    weight_steps, rows = _weight_sampling(steps, int(weights_every))
    plastic = [name for name, c in program.connections.items() if c.learning is not None]
    learning_seeds = {name: [learning_rng_seed(s, i) for s in seeds] for i, name in enumerate(plastic)}

    plan = _plan_arrays(program, steps, batch, floating, len(weight_steps))
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
        workdir = Path(tempfile.mkdtemp(prefix="neuro_hw_lava_", dir=_workdir_root()))
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
                "float_exp": float_exp,
                "parent_pid": os.getpid(),
            }
            with open(workdir / "spec.pkl", "wb") as f:
                pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)
            run = run_guarded(_WORKER_MODULE, workdir, timeout=timeout, env=_worker_env(), error_dir=workdir / "errors")
            meta["worker_pid"] = run.pid
            meta["wall_s"] = run.seconds
            if run.returncode != 0 or run.timed_out or run.aborted:
                _raise_worker_failure(workdir, run)
            timings_path = workdir / "timings.json"
            if not timings_path.exists():
                _raise_worker_failure(workdir, run)
            meta["timings"] = json.loads(timings_path.read_text())
            for key, a in plan.items():
                result_arrays[key] = np.fromfile(a["path"], dtype=np.dtype(a["dtype"])).reshape(a["shape"])
            if read_back:
                with open(workdir / "readback.pkl", "rb") as f:
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
