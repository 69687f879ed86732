"""The graded neuron Lava has no process for: clipped and hard-softplus activations, derivative gates,
rectified products (Lava 0.10 has ``GradedVec``, ``GradedReluVec`` and ``ProdNeuron``, which
:mod:`.lowering` uses where their arithmetic is exactly what a
:class:`~neuro_hw.compiler.program.GradedProgram` asks for).

``GradedNeuron`` takes two graded input sums, ``a_in1`` (port a) and ``a_in2`` (port b, the gate; zeros
when unconnected), and sends one graded output per step, computed in numpy int32 as Lava's own graded
models compute (the emulator's :mod:`neuro_hw.emulator.graded` implements the same lines)::

    v = a                                   gate == none
    v = (a * g(b)) >> shift                 g: b | [b > lo] | [lo < b < hi] | [b > lo] + [b >= hi]
    y = v | max(v, 0) | min(max(v, 0), clip) | hard softplus (0 if v < -knee; v if v > knee;
        (v + knee) >> 1 otherwise; then min(y, clip) if clip > 0)

Activation and gate codes are their index in ``GRADED_ACTIVATIONS`` (identity 0, relu 1, clip 2, hard_softplus
3) and ``GRADED_GATES`` (none 0, identity 1, step 2, window 3, half_step 4) of :mod:`neuro_hw.compiler.program`.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class GradedNeuron(AbstractProcess):
    """Memoryless graded neurons (see module doc); ``params`` = ``[clip, knee, lo, hi, shift]``."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        activation: int,
        gate: int,
        params: tuple[int, int, int, int, int],
        name: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(shape=shape, name=name, **kwargs)
        self.a_in1 = InPort(shape=shape)
        self.a_in2 = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.codes = Var(shape=(2,), init=np.array([activation, gate], dtype=np.int32))
        self.params = Var(shape=(5,), init=np.asarray(params, dtype=np.int32))


@implements(proc=GradedNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGradedNeuronModelFixed(PyLoihiProcessModel):
    """Fixed-point model of :class:`GradedNeuron` (numpy int32, see module doc)."""

    a_in1 = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_in2 = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    codes: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    params: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        a = self.a_in1.recv().astype(np.int32)
        b = self.a_in2.recv().astype(np.int32)
        activation, gate = int(self.codes[0]), int(self.codes[1])
        clip, knee, lo, hi, shift = (int(x) for x in self.params)
        v = a
        if gate != 0:
            if gate == 1:
                g = b
            elif gate == 2:
                g = (b > lo).astype(np.int32)
            elif gate == 3:
                g = ((b > lo) & (b < hi)).astype(np.int32)
            else:
                g = (b > lo).astype(np.int32) + (b >= hi).astype(np.int32)
            with np.errstate(over="ignore"):
                v = (v * g) >> np.int32(shift)
        if activation == 0:
            y = v
        elif activation == 1:
            y = np.maximum(v, np.int32(0))
        elif activation == 2:
            y = np.minimum(np.maximum(v, np.int32(0)), np.int32(clip))
        else:
            with np.errstate(over="ignore"):
                half = (v + np.int32(knee)) >> np.int32(1)
            y = np.where(v < -knee, np.int32(0), np.where(v > knee, v, half)).astype(np.int32)
            if clip > 0:
                y = np.minimum(y, np.int32(clip))
        self.s_out.send(y.astype(np.int32))
