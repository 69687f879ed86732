"""Graded (memoryless) populations in fixed point: the datapath of
:class:`~neuro_hw.compiler.program.GradedProgram`, as one compiled kernel.

Lava lowers a graded population to its own ``GradedReluVec`` / ``GradedVec`` / ``ProdNeuron``
(``lava/proc/graded/models.py``, ``lava/proc/prodneuron/models.py``; ``vth = 0``) where their arithmetic is
exactly the datapath, else to the custom process of ``targets/loihi2/graded_process.py``; all of them
compute, per neuron and step, in numpy int32::

    a = int32 sum of what the port-a connections send (computed at t-1), b likewise for port b
    v = a                                       no gate
    v = int32(a * g(b)) >> shift                g: b | [b > lo] | [lo < b < hi] | [b > lo] + [b >= hi]
    y = v | max(v, 0) | min(max(v, 0), clip) | hard softplus (0 if v < -knee; v if v > knee;
        int32(v + knee) >> 1 otherwise; then min(y, clip) if clip > 0)

``y`` is the step's graded output (0 sends no spike).  ``GradedReluVec``: ``y = v * (v > 0)``;
``GradedVec``: ``y = v * (|v| > 0) = v``; ``ProdNeuron``: ``v = a1 * a2; v >>= exp; y = v * (|v| > 0)``.
"""

from __future__ import annotations

import numpy as np

from neuro_hw.compiler.program import GRADED_ACTIVATIONS, GRADED_GATES, GradedProgram

from .intmath import njit, wrap32

#: Codes of the activations and gates (their index in the Program's tuples, as the custom Lava process
#: takes them); constants in the generated step kernel, so numba folds the branches.
ACTIVATION_CODE = {name: i for i, name in enumerate(GRADED_ACTIVATIONS)}
GATE_CODE = {name: i for i, name in enumerate(GRADED_GATES)}


@njit
def graded_step(
    a: np.ndarray,
    b: np.ndarray,
    act: int,
    gate: int,
    clip: int,
    knee: int,
    lo: int,
    hi: int,
    shift: int,
    y: np.ndarray,
    row: int,
) -> None:
    """One step of one trial's graded population: ``y[row, i]`` from the port sums ``a[i]``, ``b[i]``
    (int32 values) as in the module doc; ``act``/``gate`` are :data:`ACTIVATION_CODE` / :data:`GATE_CODE`."""
    for i in range(a.shape[0]):
        v = np.int64(a[i])
        if gate != 0:
            bi = np.int64(b[i])
            if gate == 1:
                g = bi
            elif gate == 2:
                g = np.int64(1) if bi > lo else np.int64(0)
            elif gate == 3:
                g = np.int64(1) if (bi > lo and bi < hi) else np.int64(0)
            else:
                g = (np.int64(1) if bi > lo else np.int64(0)) + (np.int64(1) if bi >= hi else np.int64(0))
            v = wrap32(v * g) >> shift
        if act == 0:
            out = v
        elif act == 1:
            out = v if v > 0 else np.int64(0)
        elif act == 2:
            out = v if v > 0 else np.int64(0)
            if out > clip:
                out = np.int64(clip)
        else:
            if v < -knee:
                out = np.int64(0)
            elif v > knee:
                out = v
            else:
                out = wrap32(v + knee) >> 1
            if clip > 0 and out > clip:
                out = np.int64(clip)
        y[row, i] = out


class GradedPopulation:
    """A graded population of ``B`` trials: its parameters and input sums (scratch, per trial)."""

    def __init__(self, program: GradedProgram, batch: int) -> None:
        self.program = program
        self.n = program.n
        self.batch = batch
        self.act = ACTIVATION_CODE[program.activation]
        self.gate = GATE_CODE[program.gate]
        self.params = {
            "clip": int(program.clip),
            "knee": int(program.knee),
            "lo": int(program.gate_lo),
            "hi": int(program.gate_hi),
            "shift": int(program.shift),
        }
