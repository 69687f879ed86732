"""Run a compiled Program on the bit-exact emulator of Lava 0.10 ``Loihi2SimCfg(select_tag="fixed_pt")``.

The emulator never imports Lava.  It reproduces, per step ``t = 1..T`` (Lava's 1-based ``time_step``;
``docs/lava-semantics.md`` §1), the data flow of the Lava process network that
``targets/loihi2/lava_backend.py`` builds from the same Program:

1. every connection sends its buffered output (computed at ``t-1``; zeros at ``t = 1``); a
   population's input is the int32 (wrapping) sum of everything sent to it (per port for products);
2. every LIF population updates (:mod:`.lif`) and spikes; every graded population computes its output
   (:mod:`.graded`);
3. every connection receives what its source sent at ``t`` (input column ``t-1``, or the source
   population's spikes of this very step) and computes its next output with its *current* weights
   (:mod:`.dense`); a plastic connection then does its spiking-phase trace bookkeeping with the
   target's spikes of step ``t`` (and third-factor values of step ``t``);
4. plastic connections with ``t % t_epoch == 0`` run their learning phase (:mod:`.learning`);
5. the state at the end of the step is recorded.

:mod:`.step_kernel` generates this loop for the Program as one compiled function;
:class:`EmulatorRun` holds the state it advances (populations, connections, learning engines) and
the recordings of each chunk.  The ``B`` trials are independent and run on one thread per core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuro_hw.compiler.checks import check_program
from neuro_hw.compiler.payloads import normalize_payloads
from neuro_hw.compiler.program import LEARNING_TRACES, GradedProgram, Program
from neuro_hw.compiler.trial_weights import check_trial_weights
from neuro_hw.errors import InputError, ValidationError
from neuro_hw.result import Result

from .conv import ConvSynapse, uniform_delay
from .dense import DenseSynapse, dense_effective_weights, learning_effective_weights
from .graded import GradedPopulation
from .learning import LearningEngine
from .lif import LifPopulation
from .step_kernel import StepKernel

RECORD_MODES = ("all", "spikes")
#: Largest recording of learned weights/tags (bytes) before weights_every or record="spikes" is required.
MAX_WEIGHT_RECORD_BYTES = 8 * 2**30


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def validate_program(program: Program) -> None:
    """Check that ``program`` is well formed and expressible in Lava 0.10 (the Lava backend's checks)."""
    check_program(program, ValidationError)


def normalize_inputs(
    program: Program, inputs: Mapping[str, Any] | None, steps: Any, seed: int | Sequence[int]
) -> tuple[dict[str, np.ndarray], list[int], int]:
    """Validate inputs, steps and seeds (:func:`neuro_hw.compiler.payloads.normalize_payloads`).

    Returns ``{name: (B, steps, n)}`` C-contiguous arrays (bool for spike inputs, int32 for graded
    payloads), the ``B`` seeds and ``steps`` as int.
    """
    arrays, seeds, steps = normalize_payloads(program, inputs, steps, seed)
    out = {}
    for name, arr in arrays.items():
        out[name] = np.ascontiguousarray(arr, dtype=np.int32 if program.inputs[name].graded else bool)
    return out, seeds, steps


def weight_sampling(steps: int, every: int) -> np.ndarray:
    """Sampled steps ``[0, e, 2e, ..., T]`` (as the Lava backend's ``weights_every``)."""
    return np.asarray([0] + [k for k in range(1, steps + 1) if k % every == 0 or k == steps], dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# a resumable run
# --------------------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """What :meth:`EmulatorRun.advance` recorded, keyed and shaped as in :class:`~neuro_hw.result.Result`."""

    spikes: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    weight_steps: dict[str, np.ndarray]


class EmulatorRun:
    """The state of one emulated run of ``program`` for ``B = len(seeds)`` trials, advanced chunk by chunk.

    :meth:`advance` runs the next ``steps`` steps with their inputs and returns what they recorded; the
    state (voltages, synaptic outputs in flight, traces, weights, random streams) carries over exactly,
    so any split of a run into chunks gives the values of one long run.  The step kernel
    (:class:`~.step_kernel.StepKernel`) is built here, once per run (loaded from the disk cache when a
    circuit of the same structure ran before).

    Parameters
    ----------
    program:
        The compiled circuit (validated here).
    seeds:
        One seed per trial (see :func:`run_program_emulator`).
    record:
        ``"all"`` or ``"spikes"`` (see :func:`run_program_emulator`).
    weights:
        Optional per-trial integer weights ``{connection: (B, n_target, n_source)}`` replacing the Program's
        (see :func:`run_program_emulator`).
    """

    def __init__(
        self,
        program: Program,
        seeds: Sequence[int],
        *,
        record: str = "all",
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        if record not in RECORD_MODES:
            raise InputError(f"record must be one of {RECORD_MODES}, got {record!r}", field="record")
        validate_program(program)
        self.program = program
        self.seeds = [int(s) for s in seeds]
        self.batch = batch = len(self.seeds)
        self.full = record == "all"
        per_trial = check_trial_weights(program, weights or {}, batch)
        self.steps_done = 0
        self.pops: dict[str, LifPopulation | GradedPopulation] = {
            name: GradedPopulation(pop, batch)
            if isinstance(pop, GradedProgram)
            else LifPopulation(
                pop.n, batch, pop.du, pop.dv, pop.vth, pop.bias_mant, pop.bias_exp, pop.u_init, pop.v_init
            )
            for name, pop in program.neurons.items()
        }
        self.lif = {name: p for name, p in self.pops.items() if isinstance(p, LifPopulation)}
        self.conns: dict[str, DenseSynapse | ConvSynapse | LearningEngine] = {}  # every connection, Program order
        self.static_w: dict[str, np.ndarray] = {}
        self.engines: dict[str, LearningEngine] = {}
        for index, (name, conn) in enumerate((n, c) for n, c in program.connections.items() if c.learning is not None):
            bits = program.engine.weight_bits
            w = learning_effective_weights(
                per_trial.get(name, conn.weights), conn.sign_mode, conn.num_weight_bits, bits
            )
            eng = LearningEngine(
                name, conn.learning, w, conn.sign_mode, self.seeds, index, 0, keep_traces=True,
                engine=program.engine,
            )  # fmt: skip
            self.engines[name] = eng
        for name, conn in program.connections.items():
            if conn.learning is not None:
                self.conns[name] = self.engines[name]
                continue
            w = dense_effective_weights(
                per_trial.get(name, conn.weights), conn.sign_mode, conn.num_weight_bits, program.engine.weight_bits
            )
            self.static_w[name] = w
            if conn.conv is not None and name not in per_trial:  # the kernel, with the same effective integers
                kernel = dense_effective_weights(
                    conn.conv.kernel, conn.sign_mode, conn.num_weight_bits, program.engine.weight_bits
                )
                delay = uniform_delay(conn.delays, conn.weights)
                self.conns[name] = ConvSynapse(
                    conn.conv, kernel, conn.weight_exp, conn.num_message_bits, batch, delay or None
                )
                continue
            self.conns[name] = DenseSynapse(w, conn.weight_exp, conn.num_message_bits, batch, conn.delays)
        self.kernel = StepKernel(program, self.pops, self.conns, self.full)

    def initial_variables(self) -> dict[str, np.ndarray]:
        """Effective initial ``conn.w``/``conn.t``/``conn.d`` ``(B, n_post, n_pre)`` of the plastic connections."""
        return {f"{name}.{k}": eng.variable(k) for name, eng in self.engines.items() for k in ("w", "t", "d")}

    def advance(self, data: dict[str, np.ndarray], steps: int, weight_steps: Sequence[int] = ()) -> Chunk:
        """Run ``steps`` more steps with inputs ``{name: (B, steps, n)}`` (as :func:`normalize_inputs`).

        ``weight_steps``: absolute step numbers inside this chunk after which the plastic variables are
        recorded.  Returns the chunk in :class:`~neuro_hw.result.Result` layout: ``spikes[pop]`` and
        ``states[key]`` ``(B, steps, *shape)``; plastic ``weights["conn.w|t|d"]`` ``(B, len(weight_steps),
        n_post, n_pre)`` at ``weight_steps``; static ``weights["conn.w"]`` ``(B, 1, n_post, n_pre)`` at step 0.
        """
        batch, full, start = self.batch, self.full, self.steps_done
        for eng in self.engines.values():
            eng.ensure_steps(start + steps)
        # every step of these is written by the kernel
        rec_s = {  # spikes of LIF populations, int32 outputs of graded ones
            name: np.empty((batch, steps, p.n), dtype=np.int32 if isinstance(p, GradedPopulation) else bool)
            for name, p in self.pops.items()
        }
        rec_u = {name: np.empty((batch, steps, p.n), dtype=np.int32) for name, p in self.lif.items()} if full else {}
        rec_v = {name: np.empty((batch, steps, p.n), dtype=np.int32) for name, p in self.lif.items()} if full else {}
        rec_tr = {
            name: np.empty((batch, steps, eng.z.shape[1]), dtype=np.int32) for name, eng in self.engines.items()
        } if full else {}  # fmt: skip
        rows = {int(k) - start: i for i, k in enumerate(weight_steps)}
        n_bytes = sum(batch * len(rows) * e.n_post * e.n_pre * 4 * len(e.vars_changed) for e in self.engines.values())
        if n_bytes > MAX_WEIGHT_RECORD_BYTES:
            raise InputError(
                f"recording the plastic weights at {len(rows)} steps needs {n_bytes / 2**30:.1f} GiB; "
                "use weights_every=... or record='spikes'",
                field="weights_every",
            )
        rec_w = {
            name: {k: np.zeros((batch, len(rows), eng.n_post, eng.n_pre), dtype=np.int32) for k in eng.vars_changed}
            for name, eng in self.engines.items()
        }

        wrow = np.full(steps, -1, dtype=np.int64)  # weight-record index after each step of the chunk (-1: none)
        for row, r in rows.items():
            if 0 < row <= steps:
                wrow[row - 1] = r
        if steps > 0:
            values = self.kernel.arguments(steps, start, wrow, data, rec_s, rec_u, rec_v, rec_tr, rec_w)
            self.kernel.run(batch, values)
        for syn in self.conns.values():
            if isinstance(syn, (DenseSynapse, ConvSynapse)) and syn.delayed:
                syn.head = (syn.head + steps) % syn.n_delay
        self.steps_done = start + steps

        chunk = Chunk({}, {}, {}, {})
        for name, prog in self.program.neurons.items():
            shape = (batch, steps) + tuple(prog.shape)
            if isinstance(prog, GradedProgram):  # graded outputs are recorded in every mode
                chunk.states[f"{name}.y"] = rec_s[name].reshape(shape)
                continue
            chunk.spikes[name] = rec_s[name].reshape(shape)
            if full:
                chunk.states[f"{name}.u"] = rec_u[name].reshape(shape)
                chunk.states[f"{name}.v"] = rec_v[name].reshape(shape)
        sampled = np.asarray(weight_steps, dtype=np.int64)
        for name in self.program.connections:
            if name in self.static_w:
                w = self.static_w[name]  # (n_post, n_pre) or per trial (B, n_post, n_pre)
                chunk.weights[f"{name}.w"] = np.broadcast_to(
                    w[:, None] if w.ndim == 3 else w, (batch, 1) + w.shape[-2:]
                ).copy()
                chunk.weight_steps[f"{name}.w"] = np.zeros(1, dtype=np.int64)
                continue
            eng = self.engines[name]
            for k in ("w", "t", "d"):
                arr = rec_w[name].get(k)
                if eng.never_written(k):  # 0 throughout (lazily zeroed memory)
                    arr = np.zeros((batch, len(sampled), eng.n_post, eng.n_pre), dtype=np.int32)
                elif arr is None:  # weights no rule writes: the initial values at every sample
                    arr = np.repeat(eng.variable(k)[:, None], len(sampled), axis=1)
                chunk.weights[f"{name}.{k}"] = arr
                chunk.weight_steps[f"{name}.{k}"] = sampled.copy()
            if full:
                for k in LEARNING_TRACES:
                    cols = eng.trace_columns(k)
                    n = eng.n_pre if k in ("x1", "x2") else eng.n_post
                    chunk.states[f"{name}.{k}"] = (
                        rec_tr[name][:, :, cols] if cols is not None else np.zeros((batch, steps, n), dtype=np.int32)
                    )
        return chunk


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def run_program_emulator(
    program: Program,
    inputs: dict[str, np.ndarray],
    steps: int,
    *,
    seed: int | Sequence[int] = 0,
    record: str = "all",
    weights_every: int = 1,
    weights: Mapping[str, np.ndarray] | None = None,
) -> Result:
    """Run ``program`` for ``steps`` steps, bit-exactly as Lava 0.10 ``fixed_pt`` would.

    Parameters
    ----------
    program:
        The compiled circuit.
    inputs:
        ``{name: array}`` for every ``program.inputs`` entry, ``(B, T, n)`` or ``(T, n)`` (broadcast to
        all trials), ``T >= steps``: 0/1 spikes, or integer payloads ``0..max_payload`` for graded inputs.
    steps:
        Number of time steps ``T``.
    seed:
        One int for every trial, or a sequence of ``B`` ints (defines ``B`` when no input has a batch
        axis).  The i-th plastic connection of trial b replays Lava's random streams of
        ``rng_seed = learning_rng_seed(seed[b], i)``.
    record:
        ``"all"``: spikes, ``u``/``v``, traces and weights/tags every ``weights_every`` steps;
        ``"spikes"``: only spikes, and weights/tags at steps ``[0, T]``.
    weights_every:
        Sampling period of plastic weights/tags with ``record="all"`` (``[0, e, 2e, ..., T]``); memory
        is ``K * B * n_post * n_pre * 4`` bytes per variable.
    weights:
        Optional integer weights per trial, ``{connection: (B, n_target, n_source)}``, in place of the Program's
        (initial weights of plastic connections, the weights of static ones); see
        :func:`neuro_hw.compiler.trial_weights.trial_weights` for float weights of the circuit's nodes.

    Returns
    -------
    Result
        ``backend="emulator"``; keys and shapes as :func:`neuro_hw.targets.loihi2.lava_backend.run_program_lava`:
        ``spikes[pop]`` ``(B, T, *shape)`` bool; ``states["pop.u"|"pop.v"]`` ``(B, T, *shape)`` int32;
        plastic connections: ``states["conn.x1"|"conn.x2"]`` ``(B, T, n_source)``,
        ``states["conn.y1|y2|y3"]`` ``(B, T, n_target)`` (trace registers), ``weights["conn.w"|"conn.t"|
        "conn.d"]`` ``(B, K, n_target, n_source)`` (weight, tag_1, tag_2) at ``weight_steps``; index 0 holds
        the effective initial values (after Lava's first-step LSB truncation).  Static connections:
        ``weights["conn.w"]`` ``(B, 1, n_target, n_source)`` = the effective weights (clip + truncation).

    Raises
    ------
    InputError
        Missing/extra inputs, wrong shapes or values, bad ``steps``/``seed``/``record``.
    ValidationError
        The Program is inconsistent or uses something Lava 0.10 cannot express.
    """
    if record not in RECORD_MODES:
        raise InputError(f"record must be one of {RECORD_MODES}, got {record!r}", field="record")
    if isinstance(weights_every, bool) or not isinstance(weights_every, (int, np.integer)) or weights_every < 1:
        raise InputError(f"weights_every must be a positive integer, got {weights_every!r}", field="weights_every")
    validate_program(program)
    data, seeds, steps = normalize_inputs(program, inputs, steps, seed)
    batch = len(seeds)
    full = record == "all"
    sampled = weight_sampling(steps, int(weights_every)) if full else np.asarray([0, steps], dtype=np.int64)
    run = EmulatorRun(program, seeds, record=record, weights=weights)
    initial = run.initial_variables()
    chunk = run.advance(data, steps, sampled[1:])
    weights = chunk.weights
    for key, first in initial.items():  # plastic variables: index 0 = the effective initial values
        name, var = key.rsplit(".", 1)
        if run.engines[name].never_written(var):  # 0 throughout
            weights[key] = np.zeros((batch, len(sampled)) + first.shape[1:], dtype=np.int32)
        else:
            weights[key] = np.concatenate([first[:, None], weights[key]], axis=1)
        chunk.weight_steps[key] = sampled.copy()
    engines = run.engines
    meta = {
        "emulator": {
            "seeds": seeds,
            "learning_rng_seeds": {name: eng.rng_seeds for name, eng in engines.items()},
            "record": record,
            "weight_index0": "effective initial weights (after Lava's first-step clip/LSB truncation), before learning",
            "record_time": "end of step (after the learning phase of that step)",
        }
    }
    return Result(
        spikes=chunk.spikes,
        states=chunk.states,
        weights=weights,
        weight_steps=chunk.weight_steps,
        dt=float(program.dt),
        steps=steps,
        batch=batch,
        backend="emulator",
        circuit_hash=program.circuit_hash,
        seed=seeds[0],
        target=program.target,
        metadata=meta,
    )
