"""Can a Program run on the Loihi 2 fixed-point backends?  One set of checks for the emulator and Lava.

:func:`check_program` refuses, with an error naming the node and field:

* structure (:class:`~neuro_hw.errors.ValidationError`): a name used by an input and a population,
  unknown sources/targets, weight shapes, ``num_weight_bits`` outside 1..8, graded payloads into a
  binary connection, delays outside 0..63, learning rules without dw/dt/dd, ``t_epoch < 1``, unknown
  traces, negative impulses or taus, third factors on other traces than y1..y3, from unknown sources
  or of the wrong size; a gate port (``port="b"``) into anything but a product population, a product
  population without both ports fed, a graded pre activity from a source that sends spikes; a convolution
  geometry whose unrolled kernel is not the weight matrix, or with several delays or learning;
* what Lava 0.10 cannot express (``unsupported``, a :class:`~neuro_hw.errors.NeuroHWError` subclass
  chosen by the backend): neuron models other than LIF, plastic connections with delays, y impulses
  in a 3-factor rule (Lava's ``Loihi3FLearningRule`` drives y1..y3 from the third-factor ports only).
"""

from __future__ import annotations

import numpy as np

from neuro_hw.compiler.program import LEARNING_TRACES, GradedProgram, NeuronProgram, Program
from neuro_hw.errors import NeuroHWError, ValidationError
from neuro_hw.ir.plasticity import first_absent_nonzero

#: Largest synaptic delay (steps) of a DelayDense.
MAX_DELAY = 63


def check_program(
    program: Program, unsupported: type[NeuroHWError] = ValidationError, max_delay: int | None = MAX_DELAY
) -> None:
    """Raise if ``program`` is inconsistent (:class:`ValidationError`) or not expressible (``unsupported``).

    ``max_delay=None`` leaves the upper delay bound to the backend (Lava's DelayDense model raises).
    """
    if not isinstance(program, Program):
        raise TypeError(f"expected a Program, got {type(program).__name__}")
    for name in program.inputs:
        if name in program.neurons:
            raise ValidationError("an input and a population share this name", node=name)
    for name, pop in program.neurons.items():
        if isinstance(pop, GradedProgram):
            continue
        if not isinstance(pop, NeuronProgram):
            raise ValidationError(f"unknown population type {type(pop).__name__}", node=name)
        if pop.model != "lif":
            raise unsupported(f"neuron model {pop.model!r} has no Lava lowering (only 'lif')", node=name, field="model")
    for name, conn in program.connections.items():
        _check_connection(program, name, conn, unsupported, max_delay)
    for name, pop in program.graded.items():
        ports = {c.port for c in program.connections.values() if c.target == name}
        if pop.product and ports != {"a", "b"}:
            raise ValidationError(
                f"a product population needs connections into both ports a and b, got {sorted(ports)}",
                node=name,
                field="port",
            )


def _check_connection(program: Program, name: str, conn, unsupported, max_delay: int | None) -> None:  # type: ignore[no-untyped-def]
    if conn.source not in program.inputs and conn.source not in program.neurons:
        raise ValidationError(f"unknown source {conn.source!r}", node=name, field="source")
    if conn.target not in program.neurons:
        raise ValidationError(f"target {conn.target!r} is not a neuron population", node=name, field="target")
    expected = (program.neurons[conn.target].n, program.source_size(conn.source))
    if conn.weights.ndim != 2 or tuple(conn.weights.shape) != expected:
        raise ValidationError(
            f"weights have shape {tuple(conn.weights.shape)}, expected (n_target, n_source) = {expected}",
            node=name,
            field="weights",
        )
    if not 1 <= int(conn.num_weight_bits) <= program.engine.weight_bits:
        raise ValidationError(
            f"num_weight_bits must be 1..{program.engine.weight_bits}", node=name, field="num_weight_bits"
        )
    if program.is_graded_source(conn.source) and conn.num_message_bits <= 0:
        raise ValidationError(
            f"source {conn.source!r} sends graded payloads but num_message_bits is {conn.num_message_bits}; "
            "a binary Dense would treat every nonzero payload as a 1",
            node=name,
            field="num_message_bits",
        )
    target_pop = program.neurons[conn.target]
    if conn.port == "b" and not (isinstance(target_pop, GradedProgram) and target_pop.product):
        raise ValidationError(
            f"port 'b' (a gate) exists only on product populations; {conn.target!r} is not one",
            node=name,
            field="port",
        )
    if conn.delays is not None and np.any(conn.delays < 0):
        raise ValidationError("delays must be >= 0", node=name, field="delays")
    if conn.delays is not None and max_delay is not None and np.any(conn.delays > max_delay):
        raise ValidationError(f"delays must lie in 0..{max_delay}", node=name, field="delays")
    if conn.conv is not None:
        _check_conv(name, conn)
    lp = conn.learning
    if lp is None:
        return
    if conn.delays is not None:
        raise unsupported(
            "Lava 0.10 has no plastic connection with synaptic delays (LearningDense ignores delays)",
            node=name,
            field="delays",
        )
    unknown = set(lp.rules) - {"dw", "dt", "dd"}
    if unknown or not any(lp.rules.get(k) for k in ("dw", "dt", "dd")):
        raise ValidationError(
            f"rules must be a non-empty mapping with keys dw, dt, dd (got {sorted(lp.rules)})",
            node=name,
            field="learning.rules",
        )
    if int(lp.t_epoch) < 1:
        raise ValidationError("t_epoch must be >= 1", node=name, field="learning.t_epoch")
    if lp.mask is not None:
        mask = np.asarray(lp.mask)
        if mask.dtype != bool or mask.shape != conn.shape:
            raise ValidationError(
                f"the plasticity mask must be a bool array of the weights' shape {conn.shape}, got {mask.dtype} "
                f"{mask.shape}",
                node=name,
                field="learning.mask",
            )
        stray = first_absent_nonzero(mask, conn.weights)
        if stray is not None:
            i, j = stray
            raise ValidationError(
                f"weight {int(conn.weights[i, j])} at ({i}, {j}) is on a synapse outside the plasticity mask",
                node=name,
                field="learning.mask",
            )
    for key in list(lp.impulses) + list(lp.taus):
        if key not in LEARNING_TRACES:
            raise ValidationError(f"unknown trace {key!r}", node=name, field="learning")
    for key, value in list(lp.impulses.items()) + list(lp.taus.items()):
        if float(value) < 0:
            raise ValidationError(f"{key}: impulse and tau must be >= 0", node=name, field="learning")
    for trace, src_name in lp.third_factor.items():
        if trace not in ("y1", "y2", "y3"):
            raise ValidationError(
                f"third factor must drive y1, y2 or y3, not {trace!r}", node=name, field="learning.third_factor"
            )
        if src_name not in program.inputs and src_name not in program.neurons:
            raise ValidationError(f"unknown third-factor source {src_name!r}", node=name, field="learning.third_factor")
        if program.source_size(src_name) != program.neurons[conn.target].n:
            raise ValidationError(
                f"third-factor source {src_name!r} has {program.source_size(src_name)} channels, the target "
                f"population {conn.target!r} has {program.neurons[conn.target].n}",
                node=name,
                field="learning.third_factor",
            )
    if lp.pre_activity and not program.is_graded_source(conn.source):
        raise ValidationError(
            f"pre_activity needs a graded source; {conn.source!r} sends spikes",
            node=name,
            field="learning.pre_activity",
        )
    if lp.pre_activity and float(lp.impulses.get("x1", 0.0)) != 0.0:
        raise unsupported(
            "with a graded pre activity Lava sets the x1 impulse to 0 (GradedSpikeCfg.OVERWRITE)",
            node=name,
            field="learning.impulses",
        )
    if lp.third_factor:
        used = {k: v for k, v in lp.impulses.items() if k.startswith("y") and float(v) != 0.0}
        if used:
            raise unsupported(
                f"a 3-factor rule (third_factor={lp.third_factor}) drives all post traces y1..y3 from the "
                f"s_in_y ports (Loihi3FLearningRule), so the y impulses {used} would be ignored",
                node=name,
                field="learning.impulses",
            )


def _check_conv(name: str, conn) -> None:  # type: ignore[no-untyped-def]
    """A convolution connection: its kernel unrolls to exactly ``weights``; one delay; no learning."""
    g = conn.conv
    if (g.n_out, g.n_in) != tuple(conn.weights.shape):
        raise ValidationError(
            f"the convolution maps {g.n_in} inputs to {g.n_out} outputs, the weights are {tuple(conn.weights.shape)}",
            node=name,
            field="conv",
        )
    rows, cols, taps = g.structure()
    kernel = np.asarray(g.kernel).reshape(-1)
    same = np.array_equal(conn.weights[rows, cols], kernel[taps])
    if not same or np.count_nonzero(conn.weights) != np.count_nonzero(kernel[taps]):
        raise ValidationError("the weights are not the unrolled convolution kernel", node=name, field="conv")
    if conn.learning is not None:
        raise ValidationError("a convolution cannot be plastic", node=name, field="learning")
    if conn.delays is not None:
        used = conn.delays[conn.weights != 0]
        if used.size and np.unique(used).size > 1:
            raise ValidationError("a convolution needs one synaptic delay for all its synapses", node=name,
                                  field="delays")  # fmt: skip
