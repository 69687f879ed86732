"""Seed P1 at wider weights (docs/self-assembly.md §4.4): why 10-14 weight bits learned worse than 8 at 8 trace
bits, and the rule padding that restores the 8-bit learning rules.

Mechanism pinned here (compile only, no emulator run): the weight scale of the hidden-to-hidden ``W_1``, ``W_2``
is 256 integers per unit at every width (weight exponent at its floor ``2^-8``), while the accumulator widens
(``weights.bits + 7``), so the gradient product ``x0 * m * x1`` loses its width shift and the learning rate falls
below the engine's smallest scaling factor ``2^-7``: the compiler drops bits of the modulators instead.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.digits import epoch_order
from neuro_hw.circuits.self_assembly import (
    CircuitSpec,
    compile_options,
    initial_weights,
    rule_padding,
    self_assembly_circuit,
    wide_weight_spec,
)
from neuro_hw.circuits.self_assembly_experiments import _target, compiled_learning, hardware_spec
from neuro_hw.circuits.self_assembly_numpy import digits_task


def _compile(weight_bits: int, padded: bool, trace_bits: int = 8, scales: bool = False):
    tgt = _target({"weights.bits": weight_bits, "learning.trace_bits": trace_bits})
    spec = hardware_spec()
    spec = wide_weight_spec(spec, tgt, scales=scales) if padded else spec
    w, b = initial_weights(spec, 0)
    circuit, _ = self_assembly_circuit(spec, w, b)
    program = neuro_hw.compile(circuit, target=tgt, dt=1e-3, **compile_options(spec, tgt.learning.trace_max))
    return compiled_learning(program)


def _dropped(compiled) -> dict[str, int]:
    return {name: s["dropped_bits"] for name, s in compiled["learning_signals"].items() if s["dropped_bits"]}


def test_rule_padding_follows_the_accumulator():
    """0 extra factors on Loihi 2 (15-bit accumulator), accumulator - 15 beyond; refused out of range."""
    assert rule_padding("loihi2") == 0
    assert [rule_padding(_target({"weights.bits": wb})) for wb in (6, 8, 10, 12, 14)] == [0, 0, 2, 4, 6]
    spec = hardware_spec()
    with pytest.raises(ValueError, match="rule_padding"):
        replace(spec, rule_padding=-1)
    assert isinstance(replace(spec, rule_padding=3), CircuitSpec)


def test_wider_weights_drop_modulator_bits_and_padding_restores_them():
    """Measured (seed 0's weights, 8 trace bits): W_1's weight scale is 256 at 8 and 14 weight bits; unpadded,
    the modulators of W_1 and W_2 (m2, m3) keep 127 levels at 8 bits and 1 at 14 (6 bits dropped), B_1's (xm1)
    255 and 15; padded (6 x0 factors), no signal loses a bit and W_1's microcode equals the 8-bit one."""
    c8 = _compile(8, padded=False)
    c14 = _compile(14, padded=False)
    c14p = _compile(14, padded=True)
    assert c8["connections"]["w1"]["w_scale"] == c14["connections"]["w1"]["w_scale"] == 256.0
    assert c14["connections"]["w1"]["weight_exp"] == -8  # the exponent's floor pins the scale
    assert c8["connections"]["w0"]["w_scale"] < c14["connections"]["w0"]["w_scale"]  # others do use the bits
    assert _dropped(c8) == {}
    dropped = _dropped(c14)
    assert dropped["m2"] == dropped["m3"] == 6 and dropped["xm1"] == 4
    assert c14["learning_signals"]["m2"]["payload_max"] == 1
    assert c8["learning_signals"]["m2"]["payload_max"] == 127
    assert _dropped(c14p) == {}
    assert c14p["learning_signals"]["m2"]["payload_max"] == 127
    # the needed coefficient of W_1's gradient term: 2^(A-15) = 64 times smaller unpadded, the 8-bit value padded
    need = {k: abs(c["connections"]["w1"]["coefficients"][0]["needed"]) for k, c in (("8", c8), ("14p", c14p))}
    assert need["14p"] == pytest.approx(need["8"], rel=1e-12)
    assert c14p["connections"]["w1"]["microcode"] == c8["connections"]["w1"]["microcode"].replace(
        "x0*y2", "x0*" + "x0*" * 6 + "y2"
    ).replace("x0*y3", "x0*" + "x0*" * 6 + "y3")


def test_padding_does_not_change_the_float_circuit():
    """The padding factors are spikes that are 1 whenever the x0-gated product applies: in the float reference
    the padded circuit's weights equal the unpadded ones after 4 samples (difference exactly 0 measured)."""
    task = digits_task()
    spec = hardware_spec()
    w, b = initial_weights(spec, 0)
    order = epoch_order(task.n_train, 1, 0)[:4]
    out = []
    for pad in (0, 3):
        circuit, sched = self_assembly_circuit(replace(spec, rule_padding=pad), w, b)
        stim = sched.present(task.x_train[order], task.t_train[order])
        ref = neuro_hw.simulate(circuit, stim, sched.steps(4), 1e-3, weights_every=sched.period)
        out.append(ref.weights)
    for name in ("w0", "w1", "w3", "b1", "b3"):
        assert np.array_equal(out[0][f"{name}.w"], out[1][f"{name}.w"])
        assert np.abs(out[0][f"{name}.w"][0, -1] - out[0][f"{name}.w"][0, 0]).max() > 0  # it learned


def test_wide_weight_spec_matches_the_descending_weight_scale():
    """At 8 weight bits the spec is unchanged; at 14 the padded rules and twice the z headroom give B_1 the weight
    scale 258 per unit (padding alone: 516, twice W_1's 256), with no modulator bit dropped."""
    spec = hardware_spec()
    assert wide_weight_spec(spec, _target({"weights.bits": 8, "learning.trace_bits": 8})) is spec
    wide = wide_weight_spec(spec, _target({"weights.bits": 14, "learning.trace_bits": 8}))
    assert wide.rule_padding == 6 and wide.ranges.z_headroom == 2 * spec.ranges.z_headroom
    padded = _compile(14, padded=True)
    matched = _compile(14, padded=True, scales=True)
    assert padded["connections"]["b1"]["w_scale"] == pytest.approx(515.9, abs=0.1)
    assert matched["connections"]["b1"]["w_scale"] == pytest.approx(258.0, abs=0.1)
    assert matched["connections"]["w1"]["w_scale"] == 256.0
    assert _dropped(matched) == {}


@pytest.mark.slow
def test_padding_removes_the_collapse_at_14_weight_bits():
    """One epoch of digits at 14 weight / 8 trace bits on the emulator (seed 0, ``precision_point``): unpadded the
    hidden layers' modulators keep 1 level and the network stays near chance; padded (``pad_rules``) it learns.
    Measured: 21.1 % unpadded, 92.0 % padded (2.6 s with both kernels cached)."""
    from neuro_hw.circuits.self_assembly_experiments import precision_point

    tgt = _target({"weights.bits": 14, "learning.trace_bits": 8})
    acc = {pad: precision_point({"epochs": 1, "pad_rules": pad}, tgt, "emulator", [0])[0]["test_accuracy"]
           for pad in (0, 1)}  # fmt: skip
    assert acc[0] < 40.0 and acc[1] > 80.0, acc
