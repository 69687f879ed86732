"""Compiler: quantisation numbers against hand computation, microcode, refusals, user target files."""

import math

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import stdp_circuit
from neuro_hw.compiler.quantize import bias_mant_exp, decay_to_int, mantissa_exponent
from neuro_hw.errors import RuleError, UnsupportedNodeError, ValidationError

DT = 1e-3


def test_decay_quantisation_by_hand():
    a = math.exp(-DT / 0.02)  # 0.951229...; 4096 * (1 - a) = 199.76 -> 200
    assert decay_to_int(a, 4096, 0, 4095) == (200, (4096 - 200) / 4096)
    a_s = math.exp(-DT / 0.005)  # 0.818731; 4096 * (1 - a_s) = 742.47 -> 742, minus the du offset 1
    assert decay_to_int(a_s, 4096, 1, 4095) == (741, (4096 - 741 - 1) / 4096)
    assert decay_to_int(0.0, 4096, 1, 4095) == (4095, 0.0)
    assert decay_to_int(1.0, 4096, 0, 4095) == (0, 1.0)


def test_mantissa_exponent_by_hand():
    assert mantissa_exponent(0.15625, -8, 7, -7, 8) == (5, -5)
    assert mantissa_exponent(-0.164, -8, 7, -7, 8) == (-5, -5)
    assert mantissa_exponent(7 * 256, -8, 7, -7, 8) == (7, 8)
    assert mantissa_exponent(1e-9, -8, 7, -7, 8)[0] == 0
    with pytest.raises(OverflowError):
        mantissa_exponent(7 * 256 + 200, -8, 7, -7, 8)
    assert bias_mant_exp(5000.0, 4095, 0, 7) == (2500, 1)
    with pytest.raises(OverflowError):
        bias_mant_exp(4096 * 128.0 + 1000, 4095, 0, 7)


def test_stdp_circuit_report_numbers():
    program = neuro_hw.compile(stdp_circuit(), target="loihi2", dt=DT)
    pop = program.neurons["neurons"]
    assert (pop.du, pop.dv, pop.vth) == (4095, 200, 131071 >> 3)
    conn = program.connections["synapses"]
    assert conn.sign_mode == "excitatory"
    # r = tau/dt = 20, g = r (1 - 3896/4096) = 0.9765625; S = 64 * 16383 / 1; weight LSBs per unit at exp e:
    g = 20 * (1 - 3896 / 4096)
    per_unit = g * 64 * 16383 / 64 / 2.0**conn.weight_exp
    assert 0.25 * per_unit <= 255 < 0.25 * per_unit * 2  # w_max = 0.25 uses the top octave of 8 bits
    w = np.asarray(stdp_circuit().nodes["synapses"].weight)
    np.testing.assert_array_equal(conn.weights, np.floor(w * per_unit + 0.5).astype(int))
    report = program.report
    weights = report.parameter("synapses.weights")
    assert weights.saturated == 0 and weights.rel_error_max < 0.5 / 100  # 8-bit weights >= 100 LSB here
    assert report.parameter("neurons.dv").rel_error_max == pytest.approx(
        abs((3896 / 4096) - math.exp(-0.05)) / math.exp(-0.05)
    )
    (rule,) = report.rules
    # A-/A+ = 1.05 is not a ratio of 4-bit mantissas; per-trace impulses absorb it: 0.00525*1000/28 = 6*2^-5
    learning = program.connections["synapses"].learning
    assert learning.impulses["x1"] == 32.0 and learning.impulses["y1"] == 28.0
    assert rule.microcode == "5*2^-5*y0*x1 - 6*2^-5*x0*y1"
    assert rule.coefficients[0].target_value == pytest.approx(0.005 * per_unit / 32)
    assert rule.coefficients[1].target_value == pytest.approx(-0.00525 * per_unit / 28)
    assert max(c.rel_error for c in rule.coefficients) < 2e-3
    assert learning.taus["x1"] == 20
    assert report.resources.cores_used == 1 and report.resources.synapses == 80
    text = report.format_table()
    assert "synapses.weights" in text and "microcode: 5*2^-5*y0*x1" in text


def chain(neuron, weight=None, n_in=3):
    n = np.asarray(neuron.output_type["output"]).prod()
    weight = np.full((n, n_in), 0.1) if weight is None else weight
    nodes = {"in": nir.Input(np.array([n_in])), "syn": nir.Linear(weight), "pop": neuron}
    return neuro_hw.Circuit(nodes, [("in", "syn"), ("syn", "pop")])


def lif(n=2, **kw):
    p = dict(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    p.update(kw)
    return nir.LIF(**p)


def test_reset_shift_bias_and_heterogeneous_thresholds():
    neuron = lif(2, v_reset=np.array([-0.5, -0.5]), v_threshold=np.array([1.0, 0.5]), v_leak=np.array([0.25, 0.25]))
    program = neuro_hw.compile(chain(neuron), dt=DT)
    pop = program.neurons["pop"]
    theta = np.array([1.5, 1.0])
    S = 64 * pop.vth / theta
    np.testing.assert_allclose(pop.v_scale, S)
    np.testing.assert_array_equal(pop.v_init, np.floor(0.5 * S + 0.5).astype(int))
    bias = (0.25 + 0.5) * (1 - 3896 / 4096) * S
    m, e = pop.bias_mant, pop.bias_exp
    assert np.all(np.abs(m * 2.0**e - bias) <= 2.0**e / 2)  # rounded to the mantissa grid
    assert np.all(np.abs(m) <= 4095)


def test_cuba_lif_current_decay():
    n = np.ones(2)
    neuron = nir.CubaLIF(tau_syn=0.005 * n, tau_mem=0.02 * n, r=n, v_leak=0 * n, v_threshold=n, v_reset=0 * n, w_in=n)
    pop = neuro_hw.compile(chain(neuron), dt=DT).neurons["pop"]
    assert (pop.du, pop.dv) == (741, 200)


def test_mixed_weights_are_even_so_lava_truncation_is_exact():
    program = neuro_hw.compile(chain(lif(2), weight=np.array([[0.3, -0.2, 0.05], [-0.1, 0.0, 0.25]])), dt=DT)
    conn = program.connections["syn"]
    assert conn.sign_mode == "mixed"
    assert np.all(conn.weights % 2 == 0)
    assert conn.weights.max() <= 254 and conn.weights.min() >= -256


def test_user_target_file_with_fewer_weight_bits(tmp_path):
    from importlib import resources

    text = resources.files("neuro_hw.targets").joinpath("loihi2.toml").read_text()
    variant = tmp_path / "loihi2_6bit.toml"
    variant.write_text(
        text.replace("bits = 8\nexp_min", "bits = 6\nexp_min").replace('name = "loihi2"', 'name = "l2-6bit"')
    )
    program = neuro_hw.compile(stdp_circuit(), target=str(variant), dt=DT)
    assert program.target == "l2-6bit"
    assert program.connections["synapses"].weights.max() <= 63
    assert program.report.parameter("synapses.weights").rel_error_max > 0.005  # coarser than the 8-bit run


def _plastic(rule, **kw):
    circuit = chain(lif(2))
    circuit.add_plasticity("syn", rule, w_bounds=(0.0, 1.0), **kw)
    return circuit


@pytest.mark.parametrize(
    "rule, kw, error, message",
    [
        (" + ".join(["0.01*x1*y0"] * 9).replace("dw", ""), {}, RuleError, "9 product terms"),
        ("dw = 0.01*sgn(x1)*y0", {}, RuleError, "sgn\\(\\) of 'x1' is not supported"),
        ("dw = 1e6*x1*y0", {}, RuleError, "exceeds the largest representable"),
        ("dw = 0.01*x1*y0", {"t_epoch": 64}, RuleError, "t_epoch 64 exceeds"),
        ("dw = 0.01*(x1+100)*y0", {}, RuleError, "outside the 8-bit range"),
    ],
)
def test_rule_refusals(rule, kw, error, message):
    if not rule.startswith("dw"):
        rule = "dw = " + rule
    with pytest.raises(error, match=message):
        neuro_hw.compile(_plastic(rule, **kw), dt=DT)


def test_refusals_for_unsupported_structures(tmp_path):
    het = lif(2, tau=np.array([0.02, 0.05]))
    with pytest.raises(UnsupportedNodeError, match="node 'pop', field 'tau': .*one dv per population"):
        neuro_hw.compile(chain(het), dt=DT)
    circuit = chain(lif(2))
    circuit.nodes["th"] = nir.Threshold(np.ones(2))
    circuit.edges.append(("pop", "th"))
    with pytest.raises(UnsupportedNodeError, match="node 'th': Threshold nodes have no fixed-point equivalent"):
        neuro_hw.compile(circuit, dt=DT)
    with pytest.raises(ValidationError, match="v_threshold must exceed v_reset"):
        neuro_hw.compile(chain(lif(2, v_reset=np.array([1.0, 1.0]))), dt=DT)


def test_circuit_exceeding_the_chip(tmp_path):
    from importlib import resources

    text = resources.files("neuro_hw.targets").joinpath("loihi2.toml").read_text()
    small = tmp_path / "tiny.toml"
    small.write_text(
        text.replace("cores_per_chip = 128", "cores_per_chip = 2").replace(
            "neurons_per_core = 8192", "neurons_per_core = 10"
        )
    )
    program = neuro_hw.compile(chain(lif(20)), target=str(small), dt=DT)
    assert program.report.resources.cores_used == 2
    assert [p.neurons for p in program.report.resources.placement] == [10, 10]
    with pytest.raises(ValidationError, match="needs 3 cores; the chip has 2"):
        neuro_hw.compile(chain(lif(25)), target=str(small), dt=DT)


def test_third_factor_input_is_graded_and_scaled():
    nodes = {
        "in": nir.Input(np.array([3])),
        "syn": nir.Linear(np.full((2, 3), 0.1)),
        "pop": lif(2),
        "reward": nir.Input(np.array([2])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "syn"), ("syn", "pop")])
    circuit.add_plasticity(
        "syn", "dw = 0.01*x1*reward", third_factor={"y2": "reward"}, w_bounds=(0, 1), traces={"x1": (1.0, 0.02)}
    )
    program = neuro_hw.compile(circuit, dt=DT, input_ranges={"reward": 2.0})
    assert program.inputs["reward"].graded and program.inputs["reward"].scale == pytest.approx(127 / 2.0)
    assert program.connections["syn"].learning.third_factor == {"y2": "reward"}
    from neuro_hw.errors import InputError
    from neuro_hw.runner import stimulus_to_payloads

    payloads = stimulus_to_payloads(program, {"in": np.zeros((5, 3)), "reward": np.full((5, 2), 1.0)})
    assert payloads["reward"].max() == 64  # round(1.0 * 63.5) half away from zero
    with pytest.raises(InputError, match="node 'reward'.*0..127"):
        stimulus_to_payloads(program, {"in": np.zeros((5, 3)), "reward": np.full((5, 2), 3.0)})
    with pytest.raises(InputError, match="node 'in'.*spike inputs must be 0 or 1"):
        stimulus_to_payloads(program, {"in": np.full((5, 3), 0.5), "reward": np.zeros((5, 2))})


def test_small_coefficients_lower_the_trace_impulse_or_are_refused():
    nodes = {
        "in": nir.Input(np.array([3])),
        "syn": nir.Linear(np.full((2, 3), 0.1)),
        "pop": lif(2),
        "reward": nir.Input(np.array([2])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "syn"), ("syn", "pop")])
    circuit.add_plasticity(
        "syn", "dw = 0.002*x1*reward", third_factor={"y2": "reward"}, w_bounds=(0, 0.5), traces={"x1": (1.0, 0.02)}
    )
    program = neuro_hw.compile(circuit, dt=DT, input_ranges={"reward": 1.0})
    learning = program.connections["syn"].learning
    assert learning.impulses["x1"] < 32  # 32 would need 0.00197 < 2^-7 in engine units
    (coefficient,) = program.report.rules[0].coefficients
    assert coefficient.mantissa != 0 and coefficient.rel_error < 0.25
    assert any("trace impulse lowered" in n for n in program.report.notes)
    tiny = chain(lif(2))
    tiny.add_plasticity("syn", "dw = 1e-9*x1*y0", w_bounds=(0, 1))
    with pytest.raises(RuleError, match="underflow the learning engine's smallest scaling factor"):
        neuro_hw.compile(tiny, dt=DT)


def test_third_factor_rule_cannot_mix_post_spike_traces():
    nodes = {
        "in": nir.Input(np.array([3])),
        "syn": nir.Linear(np.full((2, 3), 0.1)),
        "pop": lif(2),
        "reward": nir.Input(np.array([2])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "syn"), ("syn", "pop")])
    circuit.add_plasticity("syn", "dw = 0.05*x1*reward - 0.05*y1*x0", third_factor={"y2": "reward"}, w_bounds=(0, 1))
    with pytest.raises(RuleError, match=r"post-spike traces \['y1'\] cannot be used"):
        neuro_hw.compile(circuit, dt=DT, input_ranges={"reward": 1.0})


def test_parameter_overflow_is_refused():
    with pytest.raises(ValidationError, match="node 'pop', field 'v_leak': the per-step bias of neuron 0 .* 13-bit"):
        neuro_hw.compile(chain(lif(2, v_leak=np.full(2, 1e6))), dt=DT)
    with pytest.raises(ValidationError, match="synaptic delay of 70 steps exceeds the target's 63"):
        circuit = chain(lif(2))
        circuit.nodes["d"] = nir.Delay(np.full(3, 0.07))
        circuit.edges = [("in", "d"), ("d", "syn"), ("syn", "pop")]
        neuro_hw.compile(circuit, dt=DT)
