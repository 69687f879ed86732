"""A compiled **Program**: the integer description of a circuit for a Loihi-2-style target.

This is the plain-data boundary between the compiler and the two fixed-point backends (the Lava
lowering in ``targets/loihi2`` and the vectorised ``emulator``).  Every number here is already an
integer in the target's format; nothing below this layer rounds floats again, except the learning
engine's own stochastic rounding, which is part of the target semantics (see
``docs/lava-semantics.md`` and ``emulator/``).

Units and widths (Loihi 2 / Lava ``fixed_pt``):

* ``NeuronProgram``: LIF with 24-bit ``u``/``v`` (int32 storage), 12-bit decays ``du``/``dv``
  (0..4095, decay factor ``(4096-du-1)/4096`` for u and ``(4096-dv)/4096`` for v), threshold
  ``vth`` (compared as ``v > vth << 6``), bias ``bias_mant << bias_exp`` (13-bit signed mantissa).
  Synaptic input is added to ``u`` as ``a << 6``.
* ``ConnectionProgram``: weights ``(n_target, n_source)`` as int32 in the 8-bit(+sign) weight format,
  ``weight_exp`` shifts the summed input, ``num_weight_bits`` and ``sign_mode`` as in Lava's Dense.
  A connection with ``delays`` is a DelayDense (per-synapse delay in steps, 0..62).
* ``LearningProgram``: the learning engine: rule strings in Lava's microcode syntax using our
  vocabulary (``x0 y0 u<k> x1 x2 y1 y2 y3 w t d``, literals ``m*2^e``), trace impulses (float,
  1/256 resolution) and taus (integer steps, 0 = reset every step), epoch length, and third-factor
  bindings ``{"y2": source_name}`` (3-factor rule: the trace is overwritten every step by the graded
  value the source sends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIGN_MODES = ("mixed", "excitatory", "inhibitory")
LEARNING_TRACES = ("x1", "x2", "y1", "y2", "y3")


@dataclass
class InputProgram:
    """A stimulus source: ``n`` channels fed per step from host data (RingBuffer in Lava).

    ``graded`` inputs carry integer payloads (sent as graded spikes); otherwise values are 0/1 spikes.
    """

    name: str
    n: int
    graded: bool = False
    #: Host-side conversion of a float stimulus to integer payloads: ``round(value * scale)``.
    scale: float = 1.0
    #: Largest payload the target accepts (0/1 for spikes; 2**bits - 1 for graded inputs).
    max_payload: int = 1


@dataclass
class NeuronProgram:
    """A population of fixed-point LIF neurons (Lava ``LIF`` with ``PyLifModelBitAcc``).

    ``du``, ``dv`` (12-bit, 0..4095) and ``vth`` (17-bit) are per-population scalars, as in Lava;
    ``bias_mant`` (13-bit signed), ``bias_exp`` (3-bit) and the initial ``u``/``v`` are per neuron.
    """

    name: str
    n: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    u_init: np.ndarray
    v_init: np.ndarray
    model: str = "lif"
    shape: tuple[int, ...] = ()
    #: Float meaning of the integers (for comparison with the reference):
    #: ``v_float = v_int / v_scale + v_offset`` per neuron; ``None`` when not compiled from a circuit.
    v_scale: np.ndarray | None = None
    v_offset: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.bias_mant = np.broadcast_to(np.asarray(self.bias_mant, dtype=np.int32), (self.n,)).copy()
        self.bias_exp = np.broadcast_to(np.asarray(self.bias_exp, dtype=np.int32), (self.n,)).copy()
        self.u_init = np.broadcast_to(np.asarray(self.u_init, dtype=np.int32), (self.n,)).copy()
        self.v_init = np.broadcast_to(np.asarray(self.v_init, dtype=np.int32), (self.n,)).copy()
        self.du, self.dv, self.vth = int(self.du), int(self.dv), int(self.vth)
        if not self.shape:
            self.shape = (self.n,)


@dataclass
class LearningProgram:
    """Learning-engine configuration of one plastic connection.

    ``rules`` maps a target (``dw``, ``dt``, ``dd``) to a microcode string such as
    ``"2^-2*x1*y0 - 2^-2*y1*x0"`` (Lava syntax: every literal is ``m*2^e`` with |m| <= 7).
    ``impulses`` are floats with 8 fractional bits; ``taus`` are integer decay time constants in
    steps (trace *= exp(-1/tau) per step with stochastic rounding; 0 resets the trace).
    """

    rules: dict[str, str]
    impulses: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in LEARNING_TRACES})
    taus: dict[str, int] = field(default_factory=lambda: {k: 0 for k in LEARNING_TRACES})
    t_epoch: int = 1
    third_factor: dict[str, str] = field(default_factory=dict)


@dataclass
class ConnectionProgram:
    """A fixed-point synapse matrix from ``source`` (input or population) to ``target`` (population)."""

    name: str
    source: str
    target: str
    weights: np.ndarray
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str = "mixed"
    num_message_bits: int = 0
    delays: np.ndarray | None = None
    learning: LearningProgram | None = None
    #: Float meaning of the weights: ``w_float = w_int / w_scale`` (per post neuron, shape (n_target, 1));
    #: ``None`` when not compiled from a circuit.
    w_scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.int32)
        if self.sign_mode not in SIGN_MODES:
            raise ValueError(f"connection {self.name!r}: sign_mode must be one of {SIGN_MODES}")
        if self.delays is not None:
            self.delays = np.broadcast_to(np.asarray(self.delays, dtype=np.int32), self.weights.shape).copy()

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape)  # type: ignore[return-value]


@dataclass
class Program:
    """A whole compiled circuit: inputs, neuron populations and connections, all integer."""

    target: str
    dt: float
    inputs: dict[str, InputProgram]
    neurons: dict[str, NeuronProgram]
    connections: dict[str, ConnectionProgram]
    circuit_hash: str = ""
    report: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def source_size(self, name: str) -> int:
        if name in self.inputs:
            return self.inputs[name].n
        return self.neurons[name].n


def learning_rng_seed(run_seed: int, connection_index: int) -> int:
    """Lava ``rng_seed`` of the ``connection_index``-th plastic connection (in ``Program.connections``
    order) for a run with seed ``run_seed``.

    Lava draws the trace streams from seeds ``rng_seed .. rng_seed+3`` (and a stream hard-wired to 2),
    so seeds are spaced by 4; they start at 1 (Lava 0.10 replaces only ``None`` by a random seed, so 0 would
    work too, but 1 keeps the seeds clear of that special case).  The emulator replays exactly these streams.
    """
    if run_seed < 0 or connection_index < 0:
        raise ValueError("run seed and connection index must be >= 0")
    return 1 + 4 * connection_index + 4096 * run_seed
