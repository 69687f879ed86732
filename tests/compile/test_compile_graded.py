"""Compiling graded circuits: rails for signed modulators, pre activity, signal scales, refusals, dropped bits."""

import math

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights
from neuro_hw.circuits.feedback_alignment import error_driven_circuit
from neuro_hw.compiler.target import load_target
from neuro_hw.errors import InputError, RuleError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.graded import GradedNeuron

DT = 1e-3
TARGET = load_target("loihi2")
TRACE_MAX = TARGET.learning.trace_max  # 127
FORWARD_MAX = TARGET.graded.forward_max  # 4095


def error_circuit(eta=0.05, pre="h"):
    """x (3) -w1-> h = clip(., 0, 1) (4) -w2-> o (2) -po-> err = o - t <-nt- t (spikes);
    w2 learns dw = -eta*x0*e*x1 with x1 = h (activity) and the modulator e = err."""
    rng = np.random.default_rng(0)
    nodes = {
        "x": nir.Input(np.array([3])),
        "t": nir.Input(np.array([2])),
        "w1": nir.Linear(rng.uniform(-1, 1, (4, 3))),
        "h": GradedNeuron(np.array([4]), "clipped_relu", clip=1.0),
        "w2": nir.Linear(rng.uniform(-0.5, 0.5, (2, 4))),
        "o": GradedNeuron(np.array([2]), "identity"),
        "po": nir.Linear(np.eye(2)),
        "nt": nir.Linear(-np.eye(2)),
        "err": GradedNeuron(np.array([2]), "identity"),
    }
    edges = [("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o"), ("o", "po"), ("po", "err"), ("t", "nt"),
             ("nt", "err")]  # fmt: skip
    circuit = neuro_hw.Circuit(nodes, edges)
    circuit.add_plasticity(
        "w2", f"dw = {-eta!r}*x0*e*x1", traces={"x1": "activity"}, third_factor={"e": "err"}, t_epoch=5,
        w_bounds=(-1, 1),
    )  # fmt: skip
    return circuit


OPTIONS = {"input_ranges": {"x": 1.0}, "activity_ranges": {"o": 3.0, "err": 2.0}}


def compile_(circuit, **options):
    return neuro_hw.compile(circuit, dt=DT, **{**OPTIONS, **options})


def signals(program):
    return {s.signal: s for s in program.report.signals}


# --- rails and rule ------------------------------------------------------------------------------------------


def test_signed_modulator_becomes_two_rails_with_negated_inputs():
    program = compile_(error_circuit())
    assert "err" not in program.neurons
    plus, minus = program.neurons["err+"], program.neurons["err-"]
    assert plus.activation == minus.activation == "relu"  # err+ = max(a, 0), err- = max(-a, 0)
    incoming = {name: c for name, c in program.connections.items() if c.target in ("err+", "err-")}
    assert sorted(incoming) == ["nt[t->err+]", "nt[t->err-]", "po[o->err+]", "po[o->err-]"]
    for stem in ("po[o->err", "nt[t->err"):
        a, b = program.connections[stem + "+]"], program.connections[stem + "-]"]
        assert np.any(a.weights != 0)
        np.testing.assert_array_equal(a.weights, -b.weights)
        assert a.weight_exp == b.weight_exp and a.port == b.port == "a"
    # o -> err with weight +I, t -> err with -I: on the + rail o enters positively and t negatively
    assert np.all(np.diag(program.connections["po[o->err+]"].weights) > 0)
    assert np.all(np.diag(program.connections["nt[t->err+]"].weights) < 0)
    assert program.metadata["rails"] == {"h": [["h", 1]], "o": [["o", 1]], "err": [["err+", 1], ["err-", -1]]}
    sig = signals(program)["err"]
    assert sig.rails == ["err+", "err-"] and sig.signed and sig.roles == ["third factor"]


def test_rule_carries_the_modulator_as_y2_minus_y3():
    program = compile_(error_circuit(eta=0.05))
    learning = program.connections["w2"].learning
    assert learning.third_factor == {"y2": "err+", "y3": "err-"}
    rule = next(r for r in program.report.rules if r.synapse == "w2")
    assert rule.original == "dw = -0.05*x0*y2*x1 + 0.05*x0*y3*x1"
    c2, c3 = rule.coefficients
    assert "y2" in c2.term and "y3" in c3.term
    assert (c2.coefficient, c3.coefficient) == (-0.05, 0.05)
    assert c2.mantissa == -c3.mantissa != 0 and c2.exponent == c3.exponent
    assert c2.mantissa < 0 and c2.rel_error <= 0.25
    code = learning.rules["dw"]
    assert code == rule.microcode
    first, second = code.split(" + ")
    assert first.startswith("-") and "y2" in first and "y3" not in first and first.endswith("*x1")
    assert "y3" in second and "y2" not in second and second.endswith("*x1")
    assert first.lstrip("-").replace("y2", "y3") == second  # the same product with the other rail and sign


def test_pre_activity_connection_overwrites_x1():
    program = compile_(error_circuit())
    learning = program.connections["w2"].learning
    assert learning.pre_activity is True
    assert learning.impulses["x1"] == 0 and learning.taus["x1"] == TARGET.learning.tau_max == 65535
    assert learning.impulses["y2"] == learning.impulses["y3"] == 0  # set by the rails every step
    assert learning.taus["y2"] == learning.taus["y3"] == 0
    assert learning.t_epoch == 5
    assert program.connections["w1"].learning is None
    assert program.connections["w2"].num_message_bits == TARGET.graded.payload_bits  # h sends graded spikes


def test_unsigned_modulator_takes_one_trace_and_signed_post_trace_binding_is_refused():
    circuit = error_circuit()
    nodes = dict(circuit.nodes)
    nodes["r"] = GradedNeuron(np.array([2]), "relu")
    nodes["pr"] = nir.Linear(np.eye(2))
    unsigned = neuro_hw.Circuit(nodes, circuit.edges + [("o", "pr"), ("pr", "r")])
    unsigned.add_plasticity("w2", "dw = 0.05*x0*m*x1", traces={"x1": "activity"}, third_factor={"m": "r"}, t_epoch=5)
    program = compile_(unsigned, activity_ranges={"o": 3.0, "err": 2.0, "r": 2.0})
    assert program.connections["w2"].learning.third_factor == {"y2": "r"}
    assert "r" in program.neurons and "r+" not in program.neurons
    assert signals(program)["r"].rails == [] and not signals(program)["r"].signed
    rule = next(r for r in program.report.rules if r.synapse == "w2")
    assert rule.original == "dw = 0.05*x0*y2*x1"
    signed = error_circuit()
    signed.plasticity.clear()
    signed.add_plasticity("w2", "dw = -0.05*x0*y2*x1", traces={"x1": "activity"}, third_factor={"y2": "err"})
    with pytest.raises(
        UnsupportedNodeError, match="node 'w2', field 'third_factor': third factor y2 is bound to 'err'"
    ):
        compile_(signed)


# --- signal scales -------------------------------------------------------------------------------------------


def test_ranges_set_the_signal_scales():
    program = compile_(error_circuit())
    sig = signals(program)
    # h: a pre activity (x1 = payload / 2 must fit 7 bits), range = its clip
    assert (sig["h"].range, sig["h"].payload_max, sig["h"].scale) == (1.0, 2 * TRACE_MAX, 254.0)
    assert sig["h"].roles == ["pre activity", "forward"]
    # err: a modulator (the y registers take the payload): 127 levels over the declared range 2
    assert (sig["err"].range, sig["err"].payload_max, sig["err"].scale) == (2.0, TRACE_MAX, 63.5)
    # x: forward only, 12 bits over the input range
    assert (sig["x"].range, sig["x"].payload_max, sig["x"].scale) == (1.0, FORWARD_MAX, 4095.0)
    assert program.inputs["x"].graded and program.inputs["x"].scale == 4095.0
    assert program.inputs["x"].max_payload == FORWARD_MAX
    assert not program.inputs["t"].graded  # no range, not read by a learning engine: 0/1 spikes
    assert sig["o"].range == 3.0 and sig["o"].roles == ["forward"] and not sig["o"].rails
    # other ranges, other scales
    other = signals(compile_(error_circuit(), input_ranges={"x": 2.0}, activity_ranges={"o": 3.0, "err": 4.0}))
    assert other["err"].scale == 31.75 and other["x"].scale == 2047.5
    assert other["h"].scale == 254.0
    # a declared range overrides the clip
    clipped = signals(compile_(error_circuit(), activity_ranges={"o": 3.0, "err": 2.0, "h": 0.5}))
    assert clipped["h"].range == 0.5 and clipped["h"].scale == 508.0
    table = compile_(error_circuit()).report.format_table()
    assert "signed third factor (rails err+, err-)" in table


def test_a_missing_range_is_refused_naming_the_node():
    with pytest.raises(ValidationError, match="node 'o', field 'activity_ranges': graded activity 'o' has no declared"):
        compile_(error_circuit(), activity_ranges={"err": 2.0})
    with pytest.raises(ValidationError, match="node 'err', field 'activity_ranges'"):
        compile_(error_circuit(), activity_ranges={"o": 2.0})
    params = ErrorDrivenParams(n_in=4, n_hidden=5, n_out=3)
    fa, _ = error_driven_circuit(params, *init_weights(params, 0), "fa")
    with pytest.raises(ValidationError, match="node 'x', field 'input_ranges': input 'x' is the graded pre activity"):
        neuro_hw.compile(fa, dt=DT, activity_ranges={"o": 1.5, "err": 1.0, "delta": 0.5})
    with pytest.raises(InputError, match="node 'w1', field 'activity_ranges': .*not a graded neuron"):
        compile_(error_circuit(), activity_ranges={"o": 3.0, "err": 2.0, "w1": 1.0})
    with pytest.raises(InputError, match="node 'err', field 'activity_ranges': .*positive number, got -2.0"):
        compile_(error_circuit(), activity_ranges={"o": 3.0, "err": -2.0})


def test_signed_graded_pre_activity_is_refused():
    circuit = error_circuit()
    nodes = dict(circuit.nodes)
    nodes["w3"] = nir.Linear(np.full((2, 2), 0.1))
    nodes["z"] = GradedNeuron(np.array([2]), "relu")
    signed = neuro_hw.Circuit(nodes, circuit.edges + [("o", "w3"), ("w3", "z")])
    signed.add_plasticity("w3", "dw = 0.01*x0*x1", traces={"x1": "activity"})
    with pytest.raises(UnsupportedNodeError, match="node 'o': a signed graded population cannot be the pre activity"):
        compile_(signed, activity_ranges={"o": 3.0, "err": 2.0, "z": 1.0})


def test_int32_overflow_is_refused():
    """20 inputs at 4095 levels into a population whose scale makes every weight 255 * 2^7: the port sum can reach
    20 * 4095 * 255 * 2^7 = 2.7e9 > 2^31."""
    nodes = {
        "x": nir.Input(np.array([20])),
        "w": nir.Linear(np.ones((2, 20))),
        "g": GradedNeuron(np.array([2]), "identity"),
    }
    circuit = neuro_hw.Circuit(nodes, [("x", "w"), ("w", "g")])
    with pytest.raises(ValidationError, match="node 'g': the int32 sum into port 'a' can overflow"):
        neuro_hw.compile(circuit, dt=DT, input_ranges={"x": 1e4}, activity_ranges={"g": 1e-3})
    program = neuro_hw.compile(circuit, dt=DT, input_ranges={"x": 1.0}, activity_ranges={"g": 20.0})
    assert program.connections["w"].weight_exp <= 0
    # fewer payload levels for the source bring the sum back under 2^31 (20 * 16 * 255 * 2^7 = 1e7)
    fine = neuro_hw.compile(circuit, dt=DT, input_ranges={"x": 1e4}, activity_ranges={"g": 1e-3},
                            signal_levels={"x": 16})  # fmt: skip
    assert signals(fine)["x"].payload_max == 16


# --- learning rates and modulator bits -----------------------------------------------------------------------


@pytest.mark.parametrize("eta, dropped", [(0.05, 0), (0.01, 1), (0.002, 3)])
def test_small_learning_rate_drops_modulator_bits(eta, dropped):
    program = compile_(error_circuit(eta=eta))
    sig = signals(program)["err"]
    assert sig.dropped_bits == dropped
    assert sig.payload_max == (TRACE_MAX + 1) // 2**dropped - 1  # 127, 63, 15
    assert sig.scale == pytest.approx(sig.payload_max / 2.0, rel=1e-15)
    notes = [n for n in program.report.notes if "payload bit(s) dropped" in n]
    if dropped:
        assert notes == [
            f"err: {dropped} payload bit(s) dropped so that the learning rates it modulates are representable "
            "(a coarser error carries a larger coefficient)"
        ]
        assert f"{dropped} bit(s) dropped for the learning rate" in program.report.format_table()
    else:
        assert notes == []
    rule = next(r for r in program.report.rules if r.synapse == "w2")
    assert all(c.mantissa != 0 and c.rel_error <= 0.25 for c in rule.coefficients)
    # the rails' input weights follow the coarser scale: o -> err+ carries one payload unit of err per unit of o
    conn = program.connections["po[o->err+]"]
    o_scale = signals(program)["o"].scale
    represented = conn.weights.astype(float) * 2.0**conn.weight_exp * o_scale / sig.scale
    np.testing.assert_allclose(np.diag(represented), 1.0, rtol=0.2)


def test_hopeless_learning_rate_is_refused():
    with pytest.raises(RuleError, match="node 'w2', field 'rules': .*even with the modulator 'err' at 1 bit"):
        compile_(error_circuit(eta=1e-7))


def test_vanishing_weights_are_noted():
    """Dropping bits of err makes its scale coarse; a graded target input at 4095 levels then needs weights below
    the smallest exponent: the compiler says so (the weights are 0)."""
    program = compile_(error_circuit(eta=0.002), input_ranges={"x": 1.0, "t": 1.0})
    assert not program.connections["nt[t->err+]"].weights.any()
    notes = [n for n in program.report.notes if "round to 0" in n]
    assert len(notes) == 2 and notes[0].startswith("nt[t->err+]: 2 of 2 nonzero weights round to 0")
    assert not [n for n in compile_(error_circuit()).report.notes if "round to 0" in n]


# --- signal_levels -------------------------------------------------------------------------------------------


def test_signal_levels_cap_the_payload_levels():
    program = compile_(error_circuit(), signal_levels={"x": 16, "h": 100, "err": 31})
    sig = signals(program)
    assert (sig["x"].payload_max, sig["x"].scale) == (16, 16.0)
    assert program.inputs["x"].max_payload == 16 and program.inputs["x"].scale == 16.0
    assert (sig["h"].payload_max, sig["h"].scale) == (100, 100.0)
    assert (sig["err"].payload_max, sig["err"].scale) == (31, 15.5)
    assert program.connections["w2"].num_message_bits == TARGET.graded.payload_bits
    assert program.connections["w1"].num_message_bits == math.ceil(math.log2(17))


@pytest.mark.parametrize(
    "levels, error, words",
    [
        ({"h": 2 * TRACE_MAX + 1}, InputError, "node 'h', field 'signal_levels': 255 levels exceed the 254"),
        ({"err": TRACE_MAX + 1}, InputError, "node 'err', field 'signal_levels': 128 levels exceed the 127"),
        ({"x": FORWARD_MAX + 1}, InputError, "node 'x', field 'signal_levels': 4096 levels exceed the 4095"),
        ({"w1": 4}, InputError, "node 'w1', field 'signal_levels': signal_levels names no graded signal"),
        ({"x": 0}, InputError, "node 'x', field 'signal_levels': signal levels must be a positive integer"),
        ({"x": True}, InputError, "must be a positive integer, got True"),
        ({"x": 2.5}, InputError, "must be a positive integer, got 2.5"),
    ],
)
def test_signal_levels_refusals(levels, error, words):
    with pytest.raises(error, match=words):
        compile_(error_circuit(), signal_levels=levels)


def test_int32_headroom_counts_plastic_weights_at_their_format_extreme():
    """A plastic weight can grow to 2**weight_bits: at 8 bits 1000 inputs of payload 255 leave 2**31 / (256 * 255
    * 1000) = 32.9x headroom; with 14-bit weights (a target variant) the Dense's own int32 dot product can overflow
    (2**14 * 255 * 1000 > 2**31): headroom 0, which the pipeline refuses."""
    from types import SimpleNamespace

    from neuro_hw.compiler.graded import int32_headroom

    def conn(bits: int) -> SimpleNamespace:
        return SimpleNamespace(weights=np.ones((2, 1000), dtype=np.int32), learning=object(), source="x", target="h",
                               port="a", weight_exp=0, num_weight_bits=bits)  # fmt: skip

    at8 = int32_headroom({"c": conn(8)}, {"x": 255})[("h", "a")]
    at14 = int32_headroom({"c": conn(14)}, {"x": 255})[("h", "a")]
    assert at8 == pytest.approx(2**31 / (256 * 255 * 1000))
    assert at14 == 0.0
