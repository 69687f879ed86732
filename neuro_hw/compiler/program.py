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
  A connection with ``delays`` is a DelayDense (per-synapse delay in steps, 0..62).  A convolution (or pooling)
  also carries its geometry ``conv`` (:class:`~neuro_hw.ir.conv.ConvGeometry` with the integer kernel ``(C_out,
  C_in/groups, k_h, k_w)``): ``weights`` is then exactly its unrolled matrix, with the same arithmetic (the
  kernel is what the chip stores; the emulator runs the kernel, Lava the matrix).
* ``GradedProgram``: a population of memoryless graded neurons (the integer datapath in its
  docstring): a graded payload every step instead of a spike.
* ``LearningProgram``: the learning engine: rule strings in Lava's microcode syntax using our
  vocabulary (``x0 y0 u<k> x1 x2 y1 y2 y3 w t d``, literals ``m*2^e``), trace impulses (float,
  1/256 resolution) and taus (integer steps, 0 = reset every step), epoch length, third-factor
  bindings ``{"y2": source_name}`` (3-factor rule: the trace is overwritten every step by the graded
  value the source sends) and ``pre_activity`` (x1 is overwritten by the graded pre payload: Lava's
  ``GradedSpikeCfg.OVERWRITE``, ``x1 = round_half_even(payload / 2)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuro_hw.ir.conv import ConvGeometry

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
    #: The circuit node's shape (e.g. ``(C, H, W)``): stimuli may be given in it instead of flat ``n``.
    shape: tuple[int, ...] = ()


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


@dataclass(frozen=True)
class EngineFormat:
    """The number formats of the fixed-point engine a Program was compiled for.

    ``weight_bits``: magnitude bits of the weights (Loihi 2: 8): static weights lie in ``[-2**b, 2**b - 1]``
    (mixed sign) and the learning engine keeps learned weights, tag_1 and tag_2 in ``b + 1``-bit signed
    ranges, its accumulator in ``b + 7`` bits (units of 2^-7 of an LSB); ``trace_bits``: the traces (7);
    ``rounding``: how a weight change is rounded to whole LSBs -- ``"stochastic"`` (Loihi 2, one random
    number per epoch) or ``"nearest"``.  Lava 0.10 implements only the default; the emulator runs any.
    """

    weight_bits: int = 8
    trace_bits: int = 7
    rounding: str = "stochastic"

    @property
    def is_lava(self) -> bool:
        return self == EngineFormat()

    @property
    def trace_max(self) -> int:
        return 2**self.trace_bits - 1

    @property
    def accumulator_bits(self) -> int:
        return self.weight_bits + 7

    def weight_range(self, sign_mode: str) -> tuple[int, int]:
        """Range of learned weights: mixed ``[-2**b, 2**b - 1]``, excitatory ``[0, 2**b - 1]``, inhibitory
        ``[-(2**b - 1), 0]`` (Lava's ``clip_weights`` for ``b = 8``)."""
        top = 2**self.weight_bits
        return {"mixed": (-top, top - 1), "excitatory": (0, top - 1), "inhibitory": (-(top - 1), 0)}[sign_mode]

    @property
    def tag_ranges(self) -> dict[str, tuple[int, int]]:
        """Final clip of tag_2 (``d``) and tag_1 (``t``): Lava's ``[0, 255]`` and ``[-257, 255]`` for ``b = 8``."""
        top = 2**self.weight_bits
        return {"d": (0, top - 1), "t": (-top - 1, top - 1)}


GRADED_ACTIVATIONS = ("identity", "relu", "clip", "hard_softplus")
GRADED_GATES = ("none", "identity", "step", "window", "half_step")
#: Population ports a connection can feed: the input sum ``a`` and, for products, the gate sum ``b``.
PORTS = ("a", "b")


@dataclass
class GradedProgram:
    """A population of memoryless graded neurons: every step (int32 arithmetic, numpy semantics)::

        a = sum of the connections into port "a"          b = sum of the connections into port "b"
        v = a                                    if gate == "none"
        v = (a * g(b)) >> shift                  otherwise (int32 product, arithmetic shift), with
            g(b) = b                             identity
                 = [b > gate_lo]                 step
                 = [gate_lo < b < gate_hi]       window
                 = [b > gate_lo] + [b >= gate_hi]     half_step  (0, 1, 2 = 0, 1/2, 1 with shift 1)
        y = v                                    identity
          = max(v, 0)                            relu
          = min(max(v, 0), clip)                 clip
          = 0 if v < -knee, v if v > knee, (v + knee) >> 1 otherwise      hard_softplus
            (then min(y, clip) when clip > 0)

    ``y`` is the graded payload sent this step (0 = no spike).  Lava lowers the plain cases to its own
    processes (:attr:`lava_process`) and the rest to the custom process of ``targets/loihi2``.
    """

    name: str
    n: int
    activation: str = "relu"
    clip: int = 0
    knee: int = 0
    gate: str = "none"
    gate_lo: int = 0
    gate_hi: int = 0
    shift: int = 0
    shape: tuple[int, ...] = ()
    #: Float meaning of the payload: ``y_float = y / y_scale`` (per neuron); ``None`` when not compiled.
    y_scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.activation not in GRADED_ACTIVATIONS:
            raise ValueError(f"population {self.name!r}: activation must be one of {GRADED_ACTIVATIONS}")
        if self.gate not in GRADED_GATES:
            raise ValueError(f"population {self.name!r}: gate must be one of {GRADED_GATES}")
        self.n, self.clip, self.knee = int(self.n), int(self.clip), int(self.knee)
        self.gate_lo, self.gate_hi, self.shift = int(self.gate_lo), int(self.gate_hi), int(self.shift)
        if not self.shape:
            self.shape = (self.n,)

    @property
    def product(self) -> bool:
        return self.gate != "none"

    @property
    def lava_process(self) -> str:
        """``GradedReluVec``, ``GradedVec`` or ``ProdNeuron`` (Lava's own processes, ``vth = 0``) where the
        datapath is exactly theirs, else ``GradedNeuron`` (the custom process)."""
        if self.gate == "none" and self.activation == "relu":
            return "GradedReluVec"
        if self.gate == "none" and self.activation == "identity":
            return "GradedVec"
        if self.gate == "identity" and self.activation == "identity":
            return "ProdNeuron"
        return "GradedNeuron"


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
    #: x1 is the graded pre payload (Lava GradedSpikeCfg.OVERWRITE; the x1 impulse is then 0).
    pre_activity: bool = False
    #: The synapses that exist, bool ``(n_target, n_source)`` (the circuit's plasticity mask), or None: all.  Absent
    #: synapses have weight 0 and their ``w``, ``t``, ``d`` stay 0; only present ones learn (Lava: LearningSparse
    #: storing exactly these entries).
    mask: np.ndarray | None = None


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
    #: The target population's port: "a" (its input sum) or "b" (a product neuron's gate).
    port: str = "a"
    #: Float meaning of the weights: ``w_float = w_int / w_scale`` (per post neuron, shape (n_target, 1));
    #: ``None`` when not compiled from a circuit.
    w_scale: np.ndarray | None = None
    #: The circuit's weight node behind these weights: ``w_float = origin_rows[:, None] * W *
    #: origin_cols[None, :]`` with ``W`` that node's matrix (path scales and rail signs); ``None`` when the
    #: weights come from a direct edge or the Program was not compiled from a circuit.
    origin: str | None = None
    origin_rows: np.ndarray | None = None
    origin_cols: np.ndarray | None = None
    #: The convolution ``weights`` unrolls (integer kernel), or None for a plain matrix.
    conv: ConvGeometry | None = None

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.int32)
        if self.conv is not None:
            self.conv = self.conv.with_kernel(np.asarray(self.conv.kernel, dtype=np.int32))
        if self.sign_mode not in SIGN_MODES:
            raise ValueError(f"connection {self.name!r}: sign_mode must be one of {SIGN_MODES}")
        if self.port not in PORTS:
            raise ValueError(f"connection {self.name!r}: port must be one of {PORTS}")
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
    neurons: dict[str, NeuronProgram | GradedProgram]
    connections: dict[str, ConnectionProgram]
    circuit_hash: str = ""
    report: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The engine's number formats (Loihi 2's unless compiled for a variant target).
    engine: EngineFormat = field(default_factory=EngineFormat)

    def source_size(self, name: str) -> int:
        if name in self.inputs:
            return self.inputs[name].n
        return self.neurons[name].n

    def is_graded_source(self, name: str) -> bool:
        """Whether ``name`` (input or population) sends graded payloads rather than 0/1 spikes."""
        if name in self.inputs:
            return self.inputs[name].graded
        return isinstance(self.neurons[name], GradedProgram)

    @property
    def lif(self) -> dict[str, NeuronProgram]:
        """The spiking (LIF) populations."""
        return {k: v for k, v in self.neurons.items() if isinstance(v, NeuronProgram)}

    @property
    def graded(self) -> dict[str, GradedProgram]:
        """The graded populations."""
        return {k: v for k, v in self.neurons.items() if isinstance(v, GradedProgram)}


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
