"""Placement stage of the compiler: populations onto cores, checked against the target's resources.

Synapses live with their post neurons: a neuron's synapse memory is its fan-in times the bits per synapse
(``bits_per_plastic_synapse`` for plastic connections).  Populations are placed first-fit in Program order;
one larger than a core's neuron or synapse budget is split across cores.
"""

from __future__ import annotations

import math

from neuro_hw.compiler.program import Program
from neuro_hw.compiler.report import Placement, ResourceReport
from neuro_hw.compiler.target import Target
from neuro_hw.errors import ValidationError


def place(program: Program, target: Target) -> ResourceReport:
    """First-fit placement of populations onto cores (synapses live with their post neurons).

    A population larger than a core's neuron or synapse budget is split across cores.  Raises
    :class:`~neuro_hw.errors.ValidationError` when the chip is exceeded or a neuron's fan-in is too large.
    """
    res = target.resources
    fan_in: dict[str, int] = {name: 0 for name in program.neurons}
    syn_bits_per_neuron: dict[str, float] = {name: 0.0 for name in program.neurons}
    synapses_total = 0
    for conn in program.connections.values():
        n_t, n_s = conn.weights.shape
        fan_in[conn.target] += n_s
        bits = res.bits_per_plastic_synapse if conn.learning else res.bits_per_synapse
        syn_bits_per_neuron[conn.target] += n_s * bits
        synapses_total += n_t * n_s
    placement: list[Placement] = []
    core, used_neurons, used_bits = 0, 0, 0
    for name, pop in program.neurons.items():
        if fan_in[name] > res.fan_in_per_neuron:
            raise ValidationError(
                f"fan-in of {fan_in[name]} inputs per neuron exceeds the target's {res.fan_in_per_neuron}", node=name
            )
        per_neuron_bits = int(math.ceil(syn_bits_per_neuron[name]))
        if per_neuron_bits > res.synapse_memory_bits_per_core:
            raise ValidationError(
                f"one neuron's {per_neuron_bits} bits of synapses exceed a core's synapse memory", node=name
            )
        remaining = pop.n
        while remaining:
            room = res.neurons_per_core - used_neurons
            if per_neuron_bits:
                room = min(room, (res.synapse_memory_bits_per_core - used_bits) // per_neuron_bits)
            if room <= 0:
                core, used_neurons, used_bits = core + 1, 0, 0
                continue
            take = min(room, remaining)
            placement.append(Placement(name, core, take, int(take * fan_in[name]), take * per_neuron_bits))
            used_neurons += take
            used_bits += take * per_neuron_bits
            remaining -= take
    cores_used = (max(p.core for p in placement) + 1) if placement else 0
    if cores_used > res.cores_per_chip:
        raise ValidationError(
            f"the circuit needs {cores_used} cores; the chip has {res.cores_per_chip}", field="resources"
        )
    neurons = sum(p.n for p in program.neurons.values())
    return ResourceReport(
        cores_used=cores_used,
        cores_budget=res.cores_per_chip,
        neurons=neurons,
        neurons_budget=res.cores_per_chip * res.neurons_per_core,
        synapses=synapses_total,
        synapse_bits=sum(p.synapse_bits for p in placement),
        synapse_bits_budget=cores_used * res.synapse_memory_bits_per_core,
        placement=placement,
    )
