"""Placement stage of the compiler: populations onto cores, checked against the target's resources.

Synapses live with their post neurons.  A matrix connection (Dense) stores one weight per (post, pre) pair: a
neuron's synapse memory is its fan-in times the bits per synapse (``bits_per_plastic_synapse`` for plastic
connections).  A convolution connection (:attr:`~neuro_hw.compiler.program.ConnectionProgram.conv`) stores its
kernel once on every core that holds some of its post neurons (``C_out * C_in/groups * k_h * k_w`` weights of
``bits_per_synapse`` bits), and a post neuron's fan-in is the kernel's ``C_in/groups * k_h * k_w`` taps::

    bits on a core = sum over its population chunks (neurons * per-neuron matrix bits + kernel bits)

A plastic connection with a plasticity mask (:attr:`~neuro_hw.compiler.program.LearningProgram.mask`) stores only
its present synapses (sparse): its fan-in per post neuron is the largest number of present synapses in a row, a
bound reserved for every neuron of the population (the index bits of the sparse format are not counted).

Populations are placed first-fit in Program order; one larger than a core's neuron or synapse budget is split
across cores (each part with its own copy of the kernels).
"""

from __future__ import annotations

import math

import numpy as np

from neuro_hw.compiler.program import ConnectionProgram, Program
from neuro_hw.compiler.report import KernelReport, Placement, ResourceReport
from neuro_hw.compiler.target import Target
from neuro_hw.errors import ValidationError


def _describe(conn: ConnectionProgram) -> str:
    g = conn.conv
    assert g is not None
    text = f"{'x'.join(map(str, g.in_shape))} -> {'x'.join(map(str, g.out_shape))}, kernel {g.kernel.shape[2]}x"
    text += f"{g.kernel.shape[3]}"
    for label, value, default in (("stride", g.stride, (1, 1)), ("padding", g.padding, (0, 0)),
                                  ("dilation", g.dilation, (1, 1))):  # fmt: skip
        if tuple(value) != default:
            text += f", {label} {value[0]}x{value[1]}"
    return text + (f", groups {g.groups}" if g.groups != 1 else "")


def _lava_lowering(program: Program, name: str) -> str:
    from neuro_hw.compiler.conv_weights import lava_conv_reason  # conv_weights imports the graph stage

    reason = lava_conv_reason(program, name)
    return "Conv" if reason is None else f"Dense (unrolled matrix): {reason}"


def place(program: Program, target: Target) -> ResourceReport:
    """First-fit placement of populations onto cores (module doc).

    Raises :class:`~neuro_hw.errors.ValidationError` when the chip is exceeded or a neuron's fan-in is too large.
    """
    res = target.resources
    fan_in: dict[str, int] = {name: 0 for name in program.neurons}
    syn_bits_per_neuron: dict[str, float] = {name: 0.0 for name in program.neurons}
    kernel_bits: dict[str, int] = {name: 0 for name in program.neurons}
    synapses_total = 0
    for conn in program.connections.values():
        n_t, n_s = conn.weights.shape
        if conn.conv is not None:
            fan_in[conn.target] += conn.conv.taps
            kernel_bits[conn.target] += conn.conv.kernel.size * res.bits_per_synapse
            synapses_total += len(conn.conv.structure()[0])
            continue
        mask = conn.learning.mask if conn.learning is not None else None
        # a plasticity mask stores only the present synapses: the fullest row bounds every neuron's share
        per_row = n_s if mask is None else int(mask.sum(axis=1).max())
        fan_in[conn.target] += per_row
        bits = res.bits_per_plastic_synapse if conn.learning else res.bits_per_synapse
        syn_bits_per_neuron[conn.target] += per_row * bits
        synapses_total += n_t * n_s if mask is None else int(mask.sum())
    placement: list[Placement] = []
    core, used_neurons, used_bits = 0, 0, 0
    for name, pop in program.neurons.items():
        if fan_in[name] > res.fan_in_per_neuron:
            raise ValidationError(
                f"fan-in of {fan_in[name]} inputs per neuron exceeds the target's {res.fan_in_per_neuron}", node=name
            )
        per_neuron_bits = int(math.ceil(syn_bits_per_neuron[name]))
        fixed = kernel_bits[name]
        if per_neuron_bits + fixed > res.synapse_memory_bits_per_core:
            what = f"one neuron's {per_neuron_bits} bits of synapses"
            if fixed:
                what += f" and the {fixed} bits of its convolution kernels"
            raise ValidationError(f"{what} exceed a core's synapse memory", node=name)
        remaining = pop.n
        while remaining:
            room = res.neurons_per_core - used_neurons
            free = res.synapse_memory_bits_per_core - used_bits - fixed
            if per_neuron_bits:
                room = min(room, free // per_neuron_bits)
            elif free < 0:
                room = 0
            if room <= 0:
                core, used_neurons, used_bits = core + 1, 0, 0
                continue
            take = min(room, remaining)
            bits = take * per_neuron_bits + fixed
            placement.append(Placement(name, core, take, int(take * fan_in[name]), bits))
            used_neurons += take
            used_bits += bits
            remaining -= take
    cores_used = (max(p.core for p in placement) + 1) if placement else 0
    if cores_used > res.cores_per_chip:
        raise ValidationError(
            f"the circuit needs {cores_used} cores; the chip has {res.cores_per_chip}", field="resources"
        )
    neurons = sum(p.n for p in program.neurons.values())
    copies = {name: sum(1 for p in placement if p.population == name) for name in program.neurons}
    kernels = []
    for name, conn in program.connections.items():
        if conn.conv is None:
            continue
        n_t, n_s = conn.weights.shape
        kernels.append(
            KernelReport(
                connection=name,
                target=conn.target,
                geometry=_describe(conn),
                kernel_shape=[int(s) for s in conn.conv.kernel.shape],
                kernel_entries=int(conn.conv.kernel.size),
                kernel_bits=int(conn.conv.kernel.size * res.bits_per_synapse),
                copies=copies[conn.target],
                synapses=int(len(conn.conv.structure()[0])),
                fan_in=conn.conv.taps,
                dense_bits=int(np.int64(n_t) * n_s * res.bits_per_synapse),
                lava=_lava_lowering(program, name),
            )
        )
    return ResourceReport(
        cores_used=cores_used,
        cores_budget=res.cores_per_chip,
        neurons=neurons,
        neurons_budget=res.cores_per_chip * res.neurons_per_core,
        synapses=synapses_total,
        synapse_bits=sum(p.synapse_bits for p in placement),
        synapse_bits_budget=cores_used * res.synapse_memory_bits_per_core,
        placement=placement,
        kernels=kernels,
    )
