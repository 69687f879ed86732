"""Run circuits and Programs on any backend of :mod:`neuro_hw.backends`.

* :func:`run` executes a compiled Program on a fixed-point backend (``emulator``, ``lava``,
  ``lava-float``; ``lava-hw`` is reserved and raises, see :mod:`neuro_hw.backends`);
* :func:`run_circuit` / :class:`Runner` run a Circuit on any backend, ``reference`` included, compiling
  when the backend needs it: the pytest plugin's ``target`` fixture is a :class:`Runner`, so one test
  runs unchanged on every backend (``pytest --target=...``).

Stimuli are given in the circuit's float units, ``(T, n)`` or ``(B, T, n)`` per input, and converted with
the Program's input scales: spike inputs must be 0/1; graded inputs become ``round(value * scale)`` and must
fit ``0..max_payload``.  Nothing is clipped silently: out-of-range values raise
:class:`~neuro_hw.errors.InputError` naming the input, step and value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from neuro_hw import limits
from neuro_hw.backends import BACKENDS, HARDWARE_MISSING, PROGRAM_BACKENDS, lava_missing
from neuro_hw.compiler.payloads import normalize_payloads
from neuro_hw.compiler.program import Program
from neuro_hw.compiler.quantize import round_half_away
from neuro_hw.compiler.trial_weights import trial_weights, weight_batch
from neuro_hw.errors import BackendUnavailableError, InputError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.result import Result


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
    weights: Mapping[str, np.ndarray] | None = None,
) -> Result:
    """Run ``program`` for ``steps`` steps on ``backend`` and return the Result (integer states).

    Plastic weights, tags and delays are recorded every ``weights_every`` steps (and at the last step);
    ``weights_every=steps`` keeps only the initial and final values (what long or large runs want).

    ``weights``: float matrices of the circuit's weight nodes, ``{node: (n_post, n_pre)}`` or per trial
    ``{node: (B, n_post, n_pre)}``, in place of those the Program was compiled with (initial weights of plastic
    nodes, the weights of static ones), in the Program's weight formats
    (:mod:`neuro_hw.compiler.trial_weights`; a weight outside a connection's range is refused).  With per-trial
    weights and one ``seed``, every trial uses that seed.
    """
    if not isinstance(program, Program):
        raise TypeError(f"run() expects a Program (from neuro_hw.compile), got {type(program).__name__}")
    if backend not in PROGRAM_BACKENDS:
        raise InputError(
            f"unknown backend {backend!r} for a Program; choose one of {PROGRAM_BACKENDS}", field="backend"
        )
    if backend == "lava-hw":
        raise BackendUnavailableError(HARDWARE_MISSING, field="backend")
    if backend in ("lava", "lava-float") and lava_missing():
        raise BackendUnavailableError(lava_missing(), field="backend")
    steps = limits.check_steps(steps)
    weights_every = limits.check_every(weights_every, "weights_every")
    if isinstance(seed, np.ndarray):
        seed = seed.tolist()
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence):
        seed = limits.check_seed(seed)
    else:
        seed = [limits.check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
    payloads = stimulus_to_payloads(program, inputs)
    trials = max([a.shape[0] for a in payloads.values() if a.ndim >= 3] + [1 if isinstance(seed, int) else len(seed)])
    n_neurons = sum(program.source_size(name) for name in program.neurons)
    limits.check_recording(steps * trials * 2 * n_neurons, f"a {steps:,}-step run of {trials} trial(s)")  # spikes, v
    int_weights = None
    if weights:
        n_trials = weight_batch(weights)
        if n_trials is not None and isinstance(seed, (int, np.integer)):
            seed = [int(seed)] * n_trials
        _, seeds, _ = normalize_payloads(program, payloads, steps, seed)  # the run's trials
        int_weights = trial_weights(program, weights, len(seeds))
    if backend == "emulator":
        from neuro_hw.emulator import run_program_emulator

        result = run_program_emulator(
            program, payloads, int(steps), seed=seed, weights_every=weights_every, weights=int_weights
        )
    else:
        from neuro_hw.targets.loihi2.lava_backend import run_program_lava

        select_tag = {"lava": "fixed_pt", "lava-float": "floating_pt"}[backend]
        result = run_program_lava(
            program,
            payloads,
            int(steps),
            seed=seed,
            weights_every=weights_every,
            select_tag=select_tag,
            weights=int_weights,
        )
    result.metadata["float_units"] = float_units(program)
    return result


def float_units(program: Program) -> dict[str, dict[str, list]]:
    """How to read a fixed-point Result in the circuit's float units: ``float = int / scale + offset``.

    Keys are Result keys (``"pop.v"``, ``"conn.w"``); scales broadcast against the trailing axes.
    """
    units: dict[str, dict[str, list]] = {}
    for name, pop in program.graded.items():
        if pop.y_scale is not None:
            units[f"{name}.y"] = {"scale": np.asarray(pop.y_scale).tolist(), "offset": [0.0]}
    for name, pop in program.lif.items():
        if pop.v_scale is not None:
            offset = pop.v_offset if pop.v_offset is not None else np.zeros(pop.n)
            units[f"{name}.v"] = {"scale": np.asarray(pop.v_scale).tolist(), "offset": np.asarray(offset).tolist()}
    for name, conn in program.connections.items():
        if conn.w_scale is not None:
            for var in ("w", "t", "d"):
                units[f"{name}.{var}"] = {"scale": np.asarray(conn.w_scale).tolist(), "offset": [0.0]}
    return units


@dataclass
class Runner:
    """Runs circuits on one backend; ``compile_options`` go to :func:`neuro_hw.compile` for fixed-point ones."""

    backend: str
    chip: str = "loihi2"
    compile_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"unknown backend {self.backend!r}; choose one of {tuple(BACKENDS)}", field="backend")

    @property
    def fixed_point(self) -> bool:
        return BACKENDS[self.backend].fixed_point

    def compile(self, circuit: Circuit, dt: float) -> Program:
        """The Program this runner would run for ``circuit`` (fixed-point backends only)."""
        import neuro_hw

        return neuro_hw.compile(circuit, target=self.chip, dt=dt, **self.compile_options)

    def run(
        self,
        circuit: Circuit,
        inputs: Mapping[str, np.ndarray] | None,
        steps: int,
        dt: float,
        seed: int | Sequence[int] = 0,
        **options,
    ) -> Result:
        """Simulate (reference) or compile and run ``circuit``; ``options`` go to the reference simulator
        or to :func:`run` (e.g. ``weights_every``)."""
        if not self.fixed_point:
            from neuro_hw.reference.engine import simulate

            return simulate(circuit, inputs, steps, dt, seed=seed if isinstance(seed, int) else 0, **options)
        return run(self.compile(circuit, dt), inputs, steps, backend=self.backend, seed=seed, **options)


def run_circuit(
    circuit: Circuit,
    inputs: Mapping[str, np.ndarray] | None,
    steps: int,
    dt: float,
    backend: str = "reference",
    seed: int | Sequence[int] = 0,
    **compile_options,
) -> Result:
    """Run ``circuit`` on ``backend`` (see :mod:`neuro_hw.backends`), compiling for Loihi 2 when needed."""
    return Runner(backend, compile_options=compile_options).run(circuit, inputs, steps, dt, seed)


def graded_values(program: Program, result: Result, node: str) -> np.ndarray:
    """The output of graded node ``node`` in float units, ``(B, T, n)``, from a fixed-point Result: its
    payloads divided by its scale, with the rails of a signed modulator recombined (``e = e+ - e-``)."""
    rails = program.metadata.get("rails", {}).get(node, [[node, 1]])
    total = None
    for population, sign in rails:
        pop = program.neurons.get(population)
        if pop is None or not hasattr(pop, "y_scale"):
            raise InputError(f"{population!r} is not a graded population of the program", node=node)
        values = result.states[f"{population}.y"].astype(np.float64) * sign / np.asarray(pop.y_scale)
        total = values if total is None else total + values
    assert total is not None
    return total
