"""Compiled NIR circuits with ``CubaLIF`` (alone and mixed with ``LIF``), run on the emulator and on Lava 0.10
``Loihi2SimCfg(select_tag="fixed_pt")``: identical at every step.

The other differential tests build Programs by hand; these go through ``neuro_hw.compile`` (``dt = 1 ms``), so
the current decay ``du < 4095`` of a CubaLIF, the voltage scales, heterogeneous thresholds, ``v_reset`` /
``v_leak`` shifts, Affine biases, Delay nodes, recurrence and compiled learning rules reach both backends
through ``neuro_hw.run``.  ``neuro_hw.compare.compare(..., "exact")`` must pass with nothing recorded by one
side only.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuro_hw
from neuro_hw.compare import compare

pytestmark = pytest.mark.lava
DT = 1e-3
STEPS = 200
#: ``du`` of a population that holds only the current step's input (LIF, IF): not a CubaLIF
NO_CURRENT = 4095


def cuba(n, tau_syn=0.005, tau_mem=0.02, th=1.0, v_reset=0.0, v_leak=0.0, w_in=1.0) -> nir.CubaLIF:
    o = np.ones(n)
    return nir.CubaLIF(
        tau_syn=tau_syn * o,
        tau_mem=tau_mem * o,
        r=(tau_mem / DT) * o,
        v_leak=v_leak * o,
        v_threshold=th * o,
        v_reset=v_reset * o,
        w_in=w_in * o,
    )


def lif(n, tau=0.02, th=1.0, v_reset=0.0, v_leak=0.0) -> nir.LIF:
    o = np.ones(n)
    return nir.LIF(tau=tau * o, r=(tau / DT) * o, v_leak=v_leak * o, v_threshold=th * o, v_reset=v_reset * o)


def poisson(rng, n, rate, steps=STEPS, batch=1) -> np.ndarray:
    return (rng.random((batch, steps, n)) < rate).astype(float)


def run_both(program, inputs, steps, seed):
    emu = neuro_hw.run(program, inputs, steps, backend="emulator", seed=seed)
    lava = neuro_hw.run(program, inputs, steps, backend="lava", seed=seed)
    c = compare(lava, emu, "exact")
    assert c.passed and not c.only_in_one, c.report()
    return emu, lava


def packed_circuit(seed: int = 0) -> tuple[neuro_hw.Circuit, dict[str, np.ndarray]]:
    """Independent sub-circuits in one NIR graph (one Program, one Lava call)."""
    rng = np.random.default_rng(seed)
    nodes: dict = {}
    edges: list = []
    inputs: dict[str, np.ndarray] = {}

    def source(name, n, rate):
        nodes[name] = nir.Input(np.array([n]))
        inputs[name] = poisson(rng, n, rate)

    # a: feed-forward CubaLIF, its input delayed by 2 steps (Delay after the weights)
    source("in_a", 8, 0.2)
    nodes["w_a"] = nir.Linear(rng.uniform(0, 0.6, (6, 8)))
    nodes["delay_a"] = nir.Delay(np.full(6, 2 * DT))
    nodes["cuba_a"] = cuba(6)
    edges += [("in_a", "w_a"), ("w_a", "delay_a"), ("delay_a", "cuba_a")]
    # b: LIF -> CubaLIF (fast synapse) -> LIF, mixed-sign weights in the middle
    source("in_b", 10, 0.2)
    nodes["w_b1"] = nir.Linear(rng.uniform(0, 0.5, (6, 10)))
    nodes["lif_b"] = lif(6)
    nodes["w_b2"] = nir.Linear(rng.uniform(-0.3, 1.2, (4, 6)))
    nodes["cuba_b"] = cuba(4, tau_syn=0.002, tau_mem=0.01)
    nodes["w_b3"] = nir.Linear(rng.uniform(0.2, 1.5, (3, 4)))
    nodes["lif_b2"] = lif(3, tau=0.05)
    edges += [("in_b", "w_b1"), ("w_b1", "lif_b"), ("lif_b", "w_b2"), ("w_b2", "cuba_b")]
    edges += [("cuba_b", "w_b3"), ("w_b3", "lif_b2")]
    # c: CubaLIF with delayed recurrent inhibition (3 steps, Delay before the weights), slow synapse
    source("in_c", 8, 0.3)
    nodes["w_c"] = nir.Linear(rng.uniform(0, 0.5, (8, 8)))
    nodes["cuba_c"] = cuba(8, tau_syn=0.02, tau_mem=0.03)
    nodes["rec_c"] = nir.Linear(-0.3 * (1 - np.eye(8)))
    nodes["delay_c"] = nir.Delay(np.full(8, 3 * DT))
    edges += [("in_c", "w_c"), ("w_c", "cuba_c"), ("cuba_c", "delay_c"), ("delay_c", "rec_c"), ("rec_c", "cuba_c")]
    # d: STDP on the input of a CubaLIF, and a second plastic connection (t_epoch 4) into it from a LIF
    source("in_d", 12, 0.15)
    nodes["w_d"] = nir.Linear(rng.uniform(0.02, 0.1, (4, 12)))
    nodes["cuba_d"] = cuba(4, tau_syn=0.004, tau_mem=0.02)
    source("in_d2", 6, 0.2)
    nodes["w_d2"] = nir.Linear(rng.uniform(0, 0.5, (5, 6)))
    nodes["lif_d"] = lif(5)
    nodes["w_d3"] = nir.Linear(rng.uniform(0.02, 0.12, (4, 5)))
    edges += [("in_d", "w_d"), ("w_d", "cuba_d"), ("in_d2", "w_d2"), ("w_d2", "lif_d"), ("lif_d", "w_d3")]
    edges += [("w_d3", "cuba_d")]
    # e: Affine bias, heterogeneous thresholds, v_reset and v_leak shifts, w_in != 1
    source("in_e", 6, 0.15)
    nodes["w_e"] = nir.Affine(rng.uniform(0, 0.4, (5, 6)), np.full(5, 0.3))
    node_e = cuba(5, tau_syn=0.008, tau_mem=0.04, v_reset=-0.2, v_leak=0.1, w_in=1.5)
    node_e.v_threshold = np.linspace(0.8, 1.6, 5)
    nodes["cuba_e"] = node_e
    edges += [("in_e", "w_e"), ("w_e", "cuba_e")]
    circuit = neuro_hw.Circuit(nodes, edges)
    stdp = "dw = 0.01*x1*y0 - 0.0105*y1*x0"
    traces = {"x1": (1.0, 0.02), "y1": (1.0, 0.02)}
    circuit.add_plasticity("w_d", stdp, traces=traces, t_epoch=1, w_bounds=(0.0, 0.5))
    circuit.add_plasticity("w_d3", stdp, traces=traces, t_epoch=4, w_bounds=(0.0, 0.6))
    return circuit, inputs


@pytest.mark.slow  # compiles its own emulator kernel (minutes on a busy 2-core machine): outside make test's budget
def test_compiled_cuba_circuits_match_lava():
    circuit, inputs = packed_circuit(seed=0)
    program = neuro_hw.compile(circuit, dt=DT)
    cuba_pops = [n for n in program.neurons if n.startswith("cuba")]
    assert all(program.neurons[n].du < NO_CURRENT for n in cuba_pops)  # really CubaLIF: u decays over steps
    assert all(program.neurons[n].du == NO_CURRENT for n in program.neurons if n.startswith("lif"))
    assert program.connections["w_d"].learning is not None and program.connections["w_d3"].learning.t_epoch == 4
    assert int(program.connections["rec_c"].delays.min()) == 3 and int(program.connections["w_a"].delays.min()) == 2
    assert len(set(program.neurons["cuba_e"].v_scale)) == 5 and program.neurons["cuba_e"].bias_mant.any()
    emu, lava = run_both(program, inputs, STEPS, seed=3)
    for pop in program.neurons:
        assert lava.spikes[pop].any(), f"{pop} never spiked"
    for conn in ("w_d", "w_d3"):
        w = lava.weights[f"{conn}.w"]
        assert (w[:, 0] != w[:, -1]).any(), f"{conn}: weights did not learn"


# ---------------------------------------------------------------------------------------------------
# randomised compiled circuits
# ---------------------------------------------------------------------------------------------------
@st.composite
def cuba_circuits(draw) -> tuple[neuro_hw.Circuit, dict[str, np.ndarray], list[int]]:
    """A chain of 2..3 layers (at least one CubaLIF, the others LIF or CubaLIF) with random time constants,
    thresholds, resets, weights, optional delays, recurrence, Affine bias and plasticity into a CubaLIF."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kinds = draw(st.lists(st.sampled_from(["CubaLIF", "LIF"]), min_size=2, max_size=3).filter(lambda k: "CubaLIF" in k))
    n_in = draw(st.integers(2, 12))
    rate = draw(st.floats(0.05, 0.4))
    nodes: dict = {"in": nir.Input(np.array([n_in]))}
    edges: list = []
    prev, n_prev, rate_prev = "in", n_in, rate
    plastic = None
    for i, kind in enumerate(kinds):
        n = draw(st.integers(1, 8))
        tau_mem = draw(st.floats(0.005, 0.1))
        learns = kind == "CubaLIF" and plastic is None and draw(st.booleans())
        # heterogeneous thresholds (one learning coefficient per connection needs uniform ones on a plastic target)
        th = rng.uniform(0.5, 2.0, n) if not learns and draw(st.booleans()) else np.ones(n)
        v_reset = draw(st.sampled_from([0.0, -0.3, 0.2]))
        v_leak = draw(st.sampled_from([0.0, 0.1, -0.2]))
        w_in = draw(st.floats(0.5, 2.0))
        if kind == "CubaLIF":
            node = cuba(n, draw(st.floats(0.001, 0.05)), tau_mem, 1.0, v_reset, v_leak, w_in)
        else:
            node, w_in = lif(n, tau_mem, 1.0, v_reset, v_leak), 1.0
        node.v_threshold = np.maximum(th, v_reset + 0.1)
        # v sums the ~k input spikes that arrive within tau_mem (a single one when k < 1): mean weights of
        # `drive` (3..10) thresholds over max(k, 1) make (almost) every layer spike, whatever the draw
        k = rate_prev * n_prev * tau_mem / DT
        drive = draw(st.floats(3.0, 10.0))
        w_mean = drive / max(k, 1.0) / w_in
        W = rng.uniform(-0.5 * w_mean if draw(st.booleans()) else 0.5 * w_mean, 1.5 * w_mean, (n, n_prev))
        w, pop = f"w{i}", f"n{i}"
        if draw(st.booleans()):  # an Affine bias of up to the mean synaptic input per step (fits the bias mantissa)
            nodes[w] = nir.Affine(W, np.full(n, draw(st.floats(0, 1)) * w_mean * rate_prev * n_prev))
        else:
            nodes[w] = nir.Linear(W)
        nodes[pop] = node
        if learns:
            plastic = w
            edges += [(prev, w), (w, pop)]
        elif draw(st.booleans()):  # a delay of 1..8 steps on this layer's input, before or after the weights
            delay, d = draw(st.integers(1, 8)) * DT, f"d{i}"
            if draw(st.booleans()):
                nodes[d] = nir.Delay(np.full(n_prev, delay))
                edges += [(prev, d), (d, w), (w, pop)]
            else:
                nodes[d] = nir.Delay(np.full(n, delay))
                edges += [(prev, w), (w, d), (d, pop)]
        else:
            edges += [(prev, w), (w, pop)]
        if draw(st.booleans()):  # recurrence (inhibitory or mixed)
            nodes[f"r{i}"] = nir.Linear(rng.uniform(-0.5, 0.2 if draw(st.booleans()) else 0.0, (n, n)))
            edges += [(pop, f"r{i}"), (f"r{i}", pop)]
        prev, n_prev, rate_prev = pop, n, 0.05  # a typical rate of the layers above
    circuit = neuro_hw.Circuit(nodes, edges)
    if plastic is not None:
        a = draw(st.floats(0.002, 0.02))
        tau = draw(st.floats(0.005, 0.04))
        w_max = float(np.abs(nodes[plastic].weight).max()) * 2 + 0.1
        circuit.add_plasticity(
            plastic,
            f"dw = {a!r}*x1*y0 - {a * draw(st.floats(0.8, 1.2))!r}*y1*x0",
            traces={"x1": (1.0, tau), "y1": (1.0, tau)},
            t_epoch=draw(st.integers(1, 8)),
            w_bounds=(-w_max, w_max) if (nodes[plastic].weight < 0).any() else (0.0, w_max),
        )
    batch = draw(st.integers(1, 3))
    seeds = draw(st.lists(st.integers(0, 1000), min_size=batch, max_size=batch, unique=True))
    inputs = {"in": poisson(rng, n_in, rate, batch=batch)}
    return circuit, inputs, seeds


def _check_compiled(case):
    circuit, inputs, seeds = case
    program = neuro_hw.compile(circuit, dt=DT)
    assert any(p.du < NO_CURRENT for p in program.neurons.values())  # at least one CubaLIF
    run_both(program, inputs, STEPS, seed=seeds)


@pytest.mark.slow  # compiles its own emulator kernel (minutes on a busy 2-core machine): outside make test's budget
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(cuba_circuits())
def test_random_compiled_cuba_circuits_match_lava(case):
    _check_compiled(case)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck))
@given(cuba_circuits())
def test_random_compiled_cuba_circuits_match_lava_exhaustive(case):
    _check_compiled(case)
