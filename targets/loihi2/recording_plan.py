"""What a Lava run records, where, and how the recordings become a Result: shared by the one-shot backend
(:mod:`.lava_backend`, :mod:`.lava_worker`) and the persistent session (:mod:`.lava_session`).

The parent process plans one memory-mapped file per recorded quantity (:func:`plan_arrays`: name, dtype,
``(B, ...)`` shape); each Lava process gets the slice of its trial (:func:`process_recording`), which the
recording models of :mod:`.recording` write at the end of every step; :func:`pack_recordings` turns the
files' arrays into Result ``spikes, states, weights, weight_steps``.

=====================  ===================  ================================================================
key                    shape                content
=====================  ===================  ================================================================
``pop.s|u|v``          ``(B, T, n)``        spikes (bool), ``u``, ``v`` at the end of every step (LIF)
``pop.y``              ``(B, T, n)``        the graded payload a graded population sent (int32)
``conn.w|t|d``         ``(B, K, n_t, n_s)`` plastic weight, tag_1, tag_2 at the sampled steps (row 0: initial)
``conn.w`` (static)    ``(B, 1, n_t, n_s)`` the effective weights (written at step 1)
``conn.x1|x2``         ``(B, T, n_s)``      pre trace registers
``conn.y1|y2|y3``      ``(B, T, n_t)``      post trace registers
=====================  ===================  ================================================================

Values are int32 (``fixed_pt``) or float64 (``floating_pt``, converted back to fixed-point units by
:func:`pack_recordings`, see :mod:`.lowering`).  A persistent session records into ring buffers of ``C``
rows (``"ring": C``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.compiler.program import LEARNING_TRACES, Program


def weight_sampling(steps: int, every: int) -> tuple[np.ndarray, list[int]]:
    """Sampled steps ``[0, e, 2e, ..., T]`` and ``rows[k]`` = their row for step k (-1 = not sampled)."""
    sampled = [0] + [k for k in range(1, steps + 1) if k % every == 0 or k == steps]
    rows = [-1] * (steps + 1)
    for i, k in enumerate(sampled):
        if k > 0:
            rows[k] = i
    return np.asarray(sampled, dtype=np.int64), rows


def plan_arrays(program: Program, steps: int, batch: int, floating: bool, n_samples: int) -> dict[str, dict[str, Any]]:
    """Name, dtype and full ``(B, ...)`` shape of every memory-mapped recording."""
    val = "float64" if floating else "int32"
    plan: dict[str, dict[str, Any]] = {}
    for name, pop in program.graded.items():
        plan[f"{name}.y"] = {"dtype": "int32", "shape": [batch, steps, pop.n]}
    for name, pop in program.lif.items():
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


def process_recording(spec: dict[str, Any], trial: int, label: str, keys: dict[str, str]) -> dict[str, Any]:
    """Recording plan for one process: ``keys`` maps the model's key to the array name in the spec."""
    arrays = {}
    for model_key, array_name in keys.items():
        a = spec["arrays"].get(array_name)
        if a is None:
            continue
        per_trial = tuple(a["shape"][1:])
        itemsize = np.dtype(a["dtype"]).itemsize
        arrays[model_key] = {
            "path": a["path"],
            "dtype": a["dtype"],
            "offset": trial * int(np.prod(per_trial, dtype=np.int64)) * itemsize,
            "shape": list(per_trial),
        }
    rec: dict[str, Any] = {"label": label, "error_dir": str(Path(spec["workdir"]) / "errors"), "arrays": arrays}
    if spec.get("ring"):
        rec["ring"] = int(spec["ring"])  # ring-buffer rows (persistent session, see recording.py)
    return rec


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
    for name, pop in program.graded.items():
        states[f"{name}.y"] = arrays[f"{name}.y"].reshape((batch, steps) + tuple(pop.shape))
    for name, pop in program.lif.items():
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
