"""`run(program, inputs, steps, backend=...)`: execute a compiled Program on a fixed-point backend.

Backends:

* ``"emulator"``: the vectorised bit-exact emulator (:mod:`neuro_hw.emulator`);
* ``"lava"``: Lava processes on ``Loihi2SimCfg(select_tag="fixed_pt")``;
* ``"lava-float"``: the same processes with ``select_tag="floating_pt"``;
* ``"lava-hw"``: ``Loihi2HwCfg`` on a Loihi 2 board (needs Intel's lava-loihi runtime).

Stimuli are given in the circuit's float units, ``(T, n)`` or ``(B, T, n)`` per input, and converted with
the Program's input scales: spike inputs must be 0/1; graded inputs become ``round(value * scale)`` and must
fit ``0..max_payload``.  Nothing is clipped silently: out-of-range values raise
:class:`~neuro_hw.errors.InputError` naming the input, step and value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numba
import numpy as np

from neuro_hw.compile.program import Program
from neuro_hw.compile.quantize import round_half_away
from neuro_hw.errors import InputError
from neuro_hw.result import Result

BACKENDS = ("emulator", "lava", "lava-float", "lava-hw")


@numba.njit(cache=True, nogil=True)
def binary_to_bool(flat: np.ndarray, out: np.ndarray) -> int:
    """``out[k] = flat[k] != 0`` for a 0/1 array; returns the index of the first value that is neither
    0 nor 1 (NaN and inf included), or -1.

    The conversion pass counts the values with ``v * (v - 1) != 0`` -- exactly the values other than 0
    and 1, also for int64 (``v`` and ``v - 1`` are coprime, so ``2**64`` divides the product only for
    ``v = 0, 1``) -- without a branch, so it vectorises; only a refused array is searched again."""
    bad = 0
    for k in range(flat.size):
        v = flat[k]
        out[k] = v != 0
        bad += v * (v - 1) != 0
    if bad:
        for k in range(flat.size):
            if not (flat[k] == 0 or flat[k] == 1):
                return k
    return -1


def _refuse(name: str, arr: np.ndarray, bad: np.ndarray, reason: str) -> None:
    """Raise :class:`InputError` for input ``name`` with the reason and the first bad value and its index."""
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise InputError(f"{reason}; value {arr[idx]:g} at index {idx}", node=name, field="inputs")


def stimulus_to_payloads(program: Program, inputs: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Float stimuli -> payloads per the Program's inputs (shape-preserving): bool spikes, int32 graded values."""
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - set(program.inputs))
    if unknown:
        raise InputError(f"{unknown} are not inputs of the program ({sorted(program.inputs)})", node=unknown[0])
    out = {}
    for name, spec in program.inputs.items():
        if name not in inputs:
            raise InputError("no stimulus given for this input", node=name, field="inputs")
        arr = np.asarray(inputs[name])
        if arr.dtype.kind not in "biuf":
            raise InputError(f"stimulus must be numeric, got dtype {arr.dtype}", node=name, field="inputs")
        if not spec.graded:
            # spikes: no scaling, only 0/1 (one compiled pass: stimuli are often long and batched)
            spikes = np.empty(arr.shape, dtype=bool)
            if arr.dtype == bool:
                spikes[...] = arr
            elif binary_to_bool(np.ascontiguousarray(arr).reshape(-1), spikes.reshape(-1)) >= 0:
                _refuse(
                    name, arr, (arr != 0) & (arr != 1),
                    "spike inputs must be 0 or 1 (declare input_ranges at compile time for graded values)",
                )  # fmt: skip
            out[name] = spikes
            continue
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise InputError("stimulus contains NaN or inf", node=name, field="inputs")
        payload = round_half_away(arr * spec.scale)
        bad = (payload < 0) | (payload > spec.max_payload)
        if np.any(bad):
            reason = f"graded payloads must lie in 0..{spec.max_payload} after scaling by {spec.scale:g}"
            _refuse(name, arr, bad, reason)
        out[name] = payload.astype(np.int32)
    return out


def run(
    program: Program,
    inputs: Mapping[str, np.ndarray] | None,
    steps: int,
    backend: str = "emulator",
    seed: int | Sequence[int] = 0,
    weights_every: int = 1,
) -> Result:
    """Run ``program`` for ``steps`` steps on ``backend`` and return the Result (integer states).

    Plastic weights, tags and delays are recorded every ``weights_every`` steps (and at the last step);
    ``weights_every=steps`` keeps only the initial and final values (what long or large runs want).
    """
    if not isinstance(program, Program):
        raise TypeError(f"run() expects a Program (from neuro_hw.compile), got {type(program).__name__}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {BACKENDS}", field="backend")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}", field="steps")
    payloads = stimulus_to_payloads(program, inputs)
    if backend == "emulator":
        from neuro_hw.emulator import run_program_emulator

        result = run_program_emulator(program, payloads, int(steps), seed=seed, weights_every=weights_every)
    else:
        from neuro_hw.targets.loihi2.lava_backend import run_program_lava

        options = {
            "lava": {"select_tag": "fixed_pt"},
            "lava-float": {"select_tag": "floating_pt"},
            "lava-hw": {"hardware": True},
        }[backend]
        result = run_program_lava(program, payloads, int(steps), seed=seed, weights_every=weights_every, **options)
    result.metadata["float_units"] = float_units(program)
    return result


def float_units(program: Program) -> dict[str, dict[str, list]]:
    """How to read a fixed-point Result in the circuit's float units: ``float = int / scale + offset``.

    Keys are Result keys (``"pop.v"``, ``"conn.w"``); scales broadcast against the trailing axes.
    """
    units: dict[str, dict[str, list]] = {}
    for name, pop in program.neurons.items():
        if pop.v_scale is not None:
            offset = pop.v_offset if pop.v_offset is not None else np.zeros(pop.n)
            units[f"{name}.v"] = {"scale": np.asarray(pop.v_scale).tolist(), "offset": np.asarray(offset).tolist()}
    for name, conn in program.connections.items():
        if conn.w_scale is not None:
            for var in ("w", "t", "d"):
                units[f"{name}.{var}"] = {"scale": np.asarray(conn.w_scale).tolist(), "offset": [0.0]}
    return units
