"""Float reference for graded neurons: activations and gates by hand, timing, ports, activity traces, modulators."""

import math

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.digits import DigitsSplit
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, init_weights, train
from neuro_hw.circuits.feedback_alignment import error_driven_circuit, stimuli
from neuro_hw.errors import InputError
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron, activate, gate_value, hard_softplus_knee

LN2 = math.log(2.0)
DT = 1e-3


# --- activations and gates by hand --------------------------------------------------------------------------

X = np.array([-3.0, -0.5, 0.0, 0.25, 1.0, 4.0])


# ids avoid the bare word "hardware": neuro_hw's pytest plugin skips items with that keyword (Loihi 2 boards)
@pytest.mark.parametrize("form", ["exact", "hardware"], ids=["exact-form", "hw-form"])
def test_piecewise_linear_activations_by_hand(form):
    assert activate(X, "identity", math.inf, 1.0, form).tolist() == [-3.0, -0.5, 0.0, 0.25, 1.0, 4.0]
    assert activate(X, "relu", math.inf, 1.0, form).tolist() == [0.0, 0.0, 0.0, 0.25, 1.0, 4.0]
    assert activate(X, "clipped_relu", 0.5, 1.0, form).tolist() == [0.0, 0.0, 0.0, 0.25, 0.5, 0.5]


def test_exact_softplus_by_hand():
    beta = 2.0
    y = activate(X, "softplus", math.inf, beta, "exact")
    np.testing.assert_allclose(y, np.log1p(np.exp(beta * X)) / beta, rtol=1e-15)
    assert y[2] == pytest.approx(LN2 / beta, rel=1e-15)
    # large arguments do not overflow: softplus(x) = x + log1p(exp(-beta x)) / beta
    big = activate(np.array([400.0, -400.0]), "softplus", math.inf, beta, "exact")
    assert big[0] == pytest.approx(400.0, rel=1e-15) and 0 <= big[1] < 1e-300
    # with a clip
    assert activate(np.array([0.0, 5.0]), "softplus", 1.0, beta, "exact").tolist() == [LN2 / beta, 1.0]


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
def test_hard_softplus_matches_softplus_at_zero_and_has_slopes_0_half_1(beta):
    d = hard_softplus_knee(beta)
    assert d == pytest.approx(2 * LN2 / beta, rel=1e-15)
    hard = lambda x: activate(np.asarray(x, dtype=float), "softplus", math.inf, beta, "hardware")  # noqa: E731
    exact = lambda x: activate(np.asarray(x, dtype=float), "softplus", math.inf, beta, "exact")  # noqa: E731
    assert hard(0.0) == pytest.approx(LN2 / beta, rel=1e-15) == exact(0.0)
    h = 1e-3 * d
    for x, slope in ((-3 * d, 0.0), (-0.5 * d, 0.5), (0.5 * d, 0.5), (3 * d, 1.0)):
        assert (hard(x + h) - hard(x - h)) / (2 * h) == pytest.approx(slope, abs=1e-9), x
    # the pieces: 0 below -d, (x + d)/2 between, x above d; continuous at the knees
    assert hard(-1.5 * d) == 0.0 and hard(-d) == 0.0
    assert hard(0.5 * d) == pytest.approx(0.75 * d, rel=1e-15)
    assert hard(d) == pytest.approx(d, rel=1e-15) and hard(2.5 * d) == 2.5 * d
    # the exact softplus lies above the hard one and meets its slopes far from 0
    xs = np.linspace(-5 * d, 5 * d, 101)
    assert np.all(exact(xs) >= hard(xs) - 1e-15)
    gap = exact(xs) - hard(xs)
    assert gap.max() == pytest.approx(math.log(1.25) / beta, rel=1e-9)  # at the knees: (ln 5 - ln 4) / beta
    assert gap.min() == pytest.approx(0.0, abs=1e-15)  # they touch at 0
    # clip applies to the hardware form too
    assert activate(np.array([10 * d]), "softplus", d, beta, "hardware")[0] == d


B = np.array([-1.0, 0.0, 0.25, 1.0, 2.0])


@pytest.mark.parametrize("form", ["exact", "hardware"], ids=["exact-form", "hw-form"])
def test_step_gates_by_hand(form):
    assert gate_value(B, "identity", math.inf, 1.0, form).tolist() == B.tolist()
    assert gate_value(B, "relu_derivative", math.inf, 1.0, form).tolist() == [0, 0, 1, 1, 1]
    assert gate_value(B, "clipped_relu_derivative", 1.0, 1.0, form).tolist() == [0, 0, 1, 0, 0]


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_softplus_derivative_gate_by_hand(beta):
    d = hard_softplus_knee(beta)
    # exact: 1 - exp(-beta b), the sigmoid of the softplus' input written through its output b = softplus(a)
    a = np.array([-4.0, -1.0, 0.0, 0.5, 3.0]) / beta
    b = activate(a, "softplus", math.inf, beta, "exact")
    np.testing.assert_allclose(
        gate_value(b, "softplus_derivative", math.inf, beta, "exact"), 1 / (1 + np.exp(-beta * a))
    )
    assert gate_value(np.array([LN2 / beta]), "softplus_derivative", math.inf, beta, "exact")[0] == pytest.approx(0.5)
    assert gate_value(np.array([-1.0, 0.0]), "softplus_derivative", math.inf, beta, "exact").tolist() == [0.0, 0.0]
    # hardware: the hard softplus' slope as a function of its output: 0 (b <= 0), 1/2 (0 < b < d), 1 (b >= d)
    bs = np.array([-1.0, 0.0, 1e-9, 0.5 * d, d * (1 - 1e-12), d, 3 * d])
    assert gate_value(bs, "softplus_derivative", math.inf, beta, "hardware").tolist() == [0, 0, 0.5, 0.5, 0.5, 1, 1]
    # consistent with the hard softplus: slope at a equals the gate at hard(a)
    for a_, slope in ((-2 * d, 0.0), (0.3 * d, 0.5), (2 * d, 1.0)):
        out = activate(np.array([a_]), "softplus", math.inf, beta, "hardware")
        assert gate_value(out, "softplus_derivative", math.inf, beta, "hardware")[0] == slope


# --- timing through the engine --------------------------------------------------------------------------------


def _chain(*graded):
    """x (2) -> w (2x2) -> g1 -> v (2x2) -> g2 ..."""
    nodes = {"x": nir.Input(np.array([2]))}
    edges = []
    prev = "x"
    weights = [np.array([[1.0, -2.0], [0.5, 1.0]]), np.array([[1.0, 1.0], [-1.0, 2.0]])]
    for i, node in enumerate(graded):
        nodes[f"w{i}"], nodes[f"g{i}"] = nir.Linear(weights[i]), node
        edges += [(prev, f"w{i}"), (f"w{i}", f"g{i}")]
        prev = f"g{i}"
    return neuro_hw.Circuit(nodes, edges), weights


def test_graded_neurons_are_memoryless_with_one_step_per_weight_node():
    circuit, (w0, w1) = _chain(GradedNeuron(np.array([2]), "relu"), GradedNeuron(np.array([2]), "identity"))
    x = np.zeros((6, 2))
    x[1] = [1.0, 0.25]  # a single nonzero step (step 2)
    x[2] = [0.0, 1.0]
    r = neuro_hw.simulate(circuit, {"x": x}, 6, DT)
    g0, g1 = r.states["g0.y"][0], r.states["g1.y"][0]
    expected0 = np.zeros((6, 2))
    expected0[2] = np.maximum(w0 @ x[1], 0)  # [0.5, 0.75]
    expected0[3] = np.maximum(w0 @ x[2], 0)  # [0, 1]
    np.testing.assert_array_equal(g0, expected0)
    assert g0[2].tolist() == [0.5, 0.75] and g0[3].tolist() == [0.0, 1.0]
    expected1 = np.zeros((6, 2))
    expected1[3:5] = expected0[2:4] @ w1.T
    np.testing.assert_array_equal(g1, expected1)  # one more step, and back to 0 as soon as the input is
    assert g1[3].tolist() == [1.25, 1.0]


def test_softplus_neuron_emits_f0_without_input():
    circuit, _ = _chain(GradedNeuron(np.array([2]), "softplus", beta=2.0))
    r = neuro_hw.simulate(circuit, {"x": np.zeros((3, 2))}, 3, DT)
    np.testing.assert_allclose(r.states["g0.y"][0], LN2 / 2.0, rtol=1e-15)


def _product(gate, **kw):
    nodes = {
        "xa": nir.Input(np.array([3])),
        "xb": nir.Input(np.array([3])),
        "wa": nir.Linear(np.eye(3)),
        "wa2": nir.Linear(2 * np.eye(3)),
        "wb": nir.Linear(np.eye(3)),
        "p": ProductNeuron(np.array([3]), gate_inputs=("wb",), gate=gate, **kw),
    }
    edges = [("xa", "wa"), ("wa", "p"), ("xa", "wa2"), ("wa2", "p"), ("xb", "wb"), ("wb", "p")]
    return neuro_hw.Circuit(nodes, edges)


@pytest.mark.parametrize(
    "gate, kw, expected",
    [
        ("identity", {}, [-4.5 * -3.0, 0.0, 2.25 * 2.0]),  # a * b
        ("relu_derivative", {}, [0.0, 0.0, 2.25]),
        ("clipped_relu_derivative", {"gate_clip": 1.5}, [0.0, 0.0, 0.0]),
        ("clipped_relu_derivative", {"gate_clip": 2.5}, [0.0, 0.0, 2.25]),
    ],
)
def test_product_ports_sum_a_and_gate_b(gate, kw, expected):
    circuit = _product(gate, **kw)
    xa = np.zeros((3, 3))
    xb = np.zeros((3, 3))
    xa[0] = [-1.5, 1.0, 0.75]  # port a sum: (1 + 2) * xa = [-4.5, 3, 2.25]
    xb[0] = [-3.0, 0.0, 2.0]  # port b: xb
    r = neuro_hw.simulate(circuit, {"xa": xa, "xb": xb}, 3, DT)
    y = r.states["p.y"][0]
    assert y[0].tolist() == [0.0, 0.0, 0.0]
    assert y[1].tolist() == pytest.approx(expected, abs=0)
    assert y[2].tolist() == [0.0, 0.0, 0.0]


def _all_forms_circuit():
    beta = 2.0
    nodes = {
        "x": nir.Input(np.array([1])),
        "w": nir.Linear(np.ones((1, 1))),
        "id": GradedNeuron(np.array([1]), "identity"),
        "re": GradedNeuron(np.array([1]), "relu"),
        "cr": GradedNeuron(np.array([1]), "clipped_relu", clip=0.5),
        "sp": GradedNeuron(np.array([1]), "softplus", beta=beta),
        "one": nir.Linear(np.ones((1, 1))),
        "pid": ProductNeuron(np.array([1]), ("g_id",), "identity"),
        "prd": ProductNeuron(np.array([1]), ("g_rd",), "relu_derivative"),
        "psd": ProductNeuron(np.array([1]), ("g_sd",), "softplus_derivative", gate_beta=beta),
    }
    edges = [("x", "w")] + [("w", n) for n in ("id", "re", "cr", "sp")]
    for p, gate, source in (("pid", "g_id", "x"), ("prd", "g_rd", "x"), ("psd", "g_sd", "sp")):
        nodes[gate] = nir.Linear(np.ones((1, 1)))
        nodes[f"{p}_a"] = nir.Linear(np.ones((1, 1)))
        edges += [(source, gate), (gate, p), ("x", f"{p}_a"), (f"{p}_a", p)]
    return neuro_hw.Circuit(nodes, edges), beta


def test_hardware_activations_change_only_the_softplus_forms():
    circuit, beta = _all_forms_circuit()
    values = np.array([-2.0, -0.3, 0.0, 0.2, 0.6, 3.0])
    x = np.repeat(values, 3)[:, None]  # each value held 3 steps: the product sees sp(x) and x together
    steps = len(x)
    exact = neuro_hw.simulate(circuit, {"x": x}, steps, DT)
    hard = neuro_hw.simulate(circuit, {"x": x}, steps, DT, activations="hardware")
    assert exact.metadata["activations"] == "exact" and hard.metadata["activations"] == "hardware"
    for name in ("id", "re", "cr", "pid", "prd"):
        np.testing.assert_array_equal(exact.states[f"{name}.y"], hard.states[f"{name}.y"], err_msg=name)
    assert not np.array_equal(exact.states["sp.y"], hard.states["sp.y"])
    assert not np.array_equal(exact.states["psd.y"], hard.states["psd.y"])
    # the forms themselves, at a held step (x[t-1] = x[t-2])
    held = slice(2, steps, 3)
    a = values  # the input of sp at those steps (one weight node of 1)
    sp_hard = activate(a, "softplus", math.inf, beta, "hardware")
    np.testing.assert_allclose(hard.states["sp.y"][0, held, 0], sp_hard, rtol=1e-15)
    np.testing.assert_allclose(exact.states["sp.y"][0, held, 0], np.logaddexp(0, beta * a) / beta, rtol=1e-15)
    # psd = x * g(sp(x)) with x and sp(x) both one weight node away
    d = hard_softplus_knee(beta)
    gate_hard = np.where(sp_hard <= 0, 0.0, np.where(sp_hard < d, 0.5, 1.0))
    np.testing.assert_allclose(hard.states["psd.y"][0, held, 0], values * gate_hard, rtol=1e-15)
    np.testing.assert_allclose(exact.states["psd.y"][0, held, 0], values / (1 + np.exp(-beta * values)), rtol=1e-12)
    with pytest.raises(InputError, match="field 'activations'"):
        neuro_hw.simulate(circuit, {"x": x}, steps, DT, activations="chip")


# --- activity traces and modulators ---------------------------------------------------------------------------


def _modulated(rule, t_epoch, third_factor=None):
    nodes = {
        "x": nir.Input(np.array([2])),
        "w": nir.Linear(np.zeros((2, 2))),
        "g": GradedNeuron(np.array([2]), "identity"),
        "e": nir.Input(np.array([2])),
    }
    circuit = neuro_hw.Circuit(nodes, [("x", "w"), ("w", "g")])
    circuit.add_plasticity(
        "w", rule, traces={"x1": "activity"}, third_factor=third_factor or {"m": "e"}, t_epoch=t_epoch
    )
    return circuit


def test_activity_x1_is_the_pre_output_held_while_zero():
    circuit = _modulated("dw = 0.1*x0*m*x1", t_epoch=100)
    x = np.array([[0.5, 0.0], [0.0, 0.0], [0.0, 2.0], [0.3, 0.0], [0.0, 0.0], [-0.7, 0.1]])
    r = neuro_hw.simulate(circuit, {"x": x, "e": np.zeros((6, 2))}, 6, DT, record="w.x1")
    expected = [[0.5, 0.0], [0.5, 0.0], [0.5, 2.0], [0.3, 2.0], [0.3, 2.0], [-0.7, 0.1]]
    assert r.states["w.x1"][0].tolist() == expected


@pytest.mark.parametrize("binding", ["modulator", "y2"])
def test_third_factor_is_read_at_the_epochs_last_step_not_at_the_pre_spike(binding):
    """The pre is active only at the epoch's first step, the factor changes sign at its last step: reading the
    factor when the pre spiked (dependency x0) would give the opposite update."""
    if binding == "modulator":
        circuit = _modulated("dw = 0.1*x0*m*x1", t_epoch=4)
    else:
        circuit = _modulated("dw = 0.1*x0*y2*x1", t_epoch=4, third_factor={"y2": "e"})
    x = np.zeros((8, 2))
    x[0] = [0.5, 0.25]
    e = np.zeros((8, 2))
    e[:3] = [1.0, 1.0]
    e[3] = [-2.0, 3.0]  # step 4: the epoch's last step
    e[4:] = [5.0, 5.0]  # epoch 2: the pre is silent (x0 = 0) although x1 still holds 0.5, 0.25
    r = neuro_hw.simulate(circuit, {"x": x, "e": e}, 8, DT)
    assert r.weight_steps["w.w"].tolist() == [0, 4, 8]
    w = r.weights["w.w"][0]
    expected = 0.1 * np.outer([-2.0, 3.0], [0.5, 0.25])
    np.testing.assert_allclose(w[1], expected, rtol=1e-15)
    assert w[1][0, 0] < 0  # at the pre's step the factor was +1: the update would have been positive
    np.testing.assert_array_equal(w[2], w[1])  # x0 gates the silent epoch


def test_product_without_x0_uses_the_held_activity_in_a_silent_epoch():
    circuit = _modulated("dw = 0.1*m*x1", t_epoch=4)
    x = np.zeros((8, 2))
    x[1] = [0.5, 0.25]
    e = np.zeros((8, 2))
    e[3] = [1.0, -1.0]
    e[7] = [2.0, 0.0]
    r = neuro_hw.simulate(circuit, {"x": x, "e": e}, 8, DT)
    w = r.weights["w.w"][0]
    np.testing.assert_allclose(w[1], 0.1 * np.outer([1.0, -1.0], [0.5, 0.25]), rtol=1e-15)
    np.testing.assert_allclose(w[2] - w[1], 0.1 * np.outer([2.0, 0.0], [0.5, 0.25]), rtol=1e-15)


# --- the error-driven network of error_driven_numpy, as a circuit ---------------------------------------------


def test_feedback_alignment_circuit_matches_the_numpy_update_order():
    """Two samples through the circuit give the weights of :func:`error_driven_numpy.train` (and of its
    docstring's formulas): forward with the current weights, both increments from pre-update signals, then clip;
    the second sample sees the first update."""
    params = ErrorDrivenParams(n_in=4, n_hidden=5, n_out=3, eta1=0.3, eta2=0.2, epochs=1)
    w1, w2, b = init_weights(params, 0)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 4))
    x[0, 1] = 0.0  # a silent pre: x0 = 0 must give the same as the outer product's 0
    y = np.array([0, 2])
    t = np.eye(3)[y]
    circuit, schedule = error_driven_circuit(params, w1, w2, b, "fa")
    result = neuro_hw.simulate(circuit, stimuli(schedule, x, t), schedule.steps(2), DT, weights_every=schedule.period)
    assert result.weight_steps["w1.w"].tolist() == [0, 5, 10]
    # the docstring's formulas, by hand
    ref_w1, ref_w2 = w1.copy(), w2.copy()
    for k in range(2):
        a1 = ref_w1 @ x[k]
        h = np.clip(a1, 0, params.c_h)
        e = ref_w2 @ h - t[k]
        delta = (b @ e) * ((a1 > 0) & (a1 < params.c_h))
        new_w2 = np.clip(ref_w2 - params.eta2 * np.outer(e, h), -params.w_max2, params.w_max2)
        new_w1 = np.clip(ref_w1 - params.eta1 * np.outer(delta, x[k]), -params.w_max1, params.w_max1)
        ref_w1, ref_w2 = new_w1, new_w2
        np.testing.assert_allclose(result.weights["w2.w"][0, k + 1], ref_w2, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(result.weights["w1.w"][0, k + 1], ref_w1, rtol=1e-12, atol=1e-15)
        assert np.abs(ref_w1 - (w1 if k == 0 else result.weights["w1.w"][0, k])).max() > 1e-3  # w1 does learn
    split = DigitsSplit(x, y, x, y, 3)
    truth = train(params, split, np.arange(2), w1, w2, b, "fa", record_first=2)
    np.testing.assert_allclose(result.weights["w1.w"][0, 1:], truth.w1_first, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.weights["w2.w"][0, 1:], truth.w2_first, rtol=1e-12, atol=1e-15)
