"""Compiler defects found on real NIR exports (issue 16): pass-through nodes after a weight node, biases fitted by
the threshold, the effective error of weights under a negative exponent, current-based neurons with time constants
of a few steps."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.compiler.neurons import cuba_impulse_responses
from neuro_hw.errors import UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import Circuit


def lif(n: int, threshold: float = 1.0, tau: float = 0.01) -> nir.LIF:
    return nir.LIF(
        tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, threshold), v_reset=np.zeros(n)
    )


def graph(nodes: dict, edges: list) -> Circuit:
    return Circuit.from_nir(nir.NIRGraph(nodes=nodes, edges=edges))


@pytest.mark.parametrize("middle", ["delay", "scale", "input"])
def test_pass_through_nodes_between_weights_and_neuron_compile(middle):
    """snnTorch's RLeaky / spyx nest an Input between the Affine and the neuron; a Delay or Scale after the weights
    does the same.  They compile and the emulator's voltage follows the reference's (within 2 % of threshold)."""
    n = 3
    mid = {
        "delay": nir.Delay(np.full(n, 2e-3)),
        "scale": nir.Scale(np.full(n, 0.5)),
        "input": nir.Input(np.array([n])),
    }[middle]
    circuit = graph(
        {"in": nir.Input(np.array([n])), "w": nir.Affine(np.eye(n) * 40.0, np.zeros(n)), "m": mid,
         "lif": lif(n, threshold=10.0), "out": nir.Output(np.array([n]))},
        [("in", "w"), ("w", "m"), ("m", "lif"), ("lif", "out")],
    )  # fmt: skip
    x = (np.random.default_rng(0).random((60, n)) < 0.4).astype(float)
    ref = neuro_hw.simulate(circuit, {"in": x}, 60, 1e-3, record="lif.v")
    program = neuro_hw.compile(circuit, dt=1e-3)
    emu = neuro_hw.run(program, {"in": x}, 60)
    if middle == "delay":
        assert program.connections["w"].delays is not None and int(program.connections["w"].delays.max()) == 2
    assert ref.spikes["lif"].sum() > 0
    np.testing.assert_array_equal(emu.spikes["lif"], ref.spikes["lif"])
    np.testing.assert_allclose(emu.in_float_units("lif.v"), ref.states["lif.v"], atol=0.2)


def test_a_real_chain_of_two_weight_matrices_is_refused_with_a_true_message():
    n = 2
    circuit = graph(
        {"in": nir.Input(np.array([n])), "w1": nir.Linear(np.eye(n)), "s": nir.Scale(np.ones(n)),
         "w2": nir.Linear(np.eye(n)), "lif": lif(n), "out": nir.Output(np.array([n]))},
        [("in", "w1"), ("w1", "s"), ("s", "w2"), ("w2", "lif"), ("lif", "out")],
    )  # fmt: skip
    with pytest.raises(UnsupportedNodeError, match=r"weight node 'w1' feeds weight node 'w2' through 's'"):
        neuro_hw.compile(circuit, dt=1e-3)


def _biased(b: float) -> Circuit:
    n = 4
    return graph(
        {"in": nir.Input(np.array([n])), "w": nir.Affine(np.eye(n) * 0.1, np.array([b, b / 2, b / 4, 0.0])),
         "lif": lif(n), "out": nir.Output(np.array([n]))},
        [("in", "w"), ("w", "lif"), ("lif", "out")],
    )  # fmt: skip


def test_a_large_bias_is_fitted_by_lowering_the_threshold_integer():
    """An Affine bias of 50 (0.5 of threshold per step at dt 1e-4) overflowed the 13-bit bias mantissa at the
    capped threshold integer; now the threshold integer comes down (16364) and the spike counts equal the
    reference's (66, 40, 22, 0)."""
    circuit = _biased(50.0)
    x = np.zeros((200, 4))
    ref = neuro_hw.simulate(circuit, {"in": x}, 200, 1e-4)
    program = neuro_hw.compile(circuit, dt=1e-4)
    assert program.neurons["lif"].vth < 16383
    assert any("so that its biases fit" in note for note in program.report.notes)
    emu = neuro_hw.run(program, {"in": x}, 200)
    assert ref.spikes["lif"][0].sum(axis=0).tolist() == [66, 40, 22, 0]
    np.testing.assert_array_equal(emu.spikes["lif"][0].sum(axis=0), ref.spikes["lif"][0].sum(axis=0))


def test_a_bias_that_cannot_fit_names_its_affine_node_and_worst_neuron():
    with pytest.raises(ValidationError, match=r"bias of neuron 0 .* comes from the Affine bias of 'w'") as err:
        neuro_hw.compile(_biased(5e7), dt=1e-4)
    assert err.value.node == "w" and err.value.field == "bias"


@pytest.mark.parametrize("threshold, error, vanishes", [(100.0, 0.39, False), (1000.0, 1.0, True)])
def test_the_report_gives_the_effective_error_of_a_negative_weight_exponent(threshold, error, vanishes):
    """Lava shifts the summed input right: one spike through W_int = 210 at exponent -7 delivers 1 (64 integers of
    u), 39 % less than 210/128 -- the measured v is 39 % low, and the report now says so (it said 4e-4); with
    threshold 1000 the input vanishes, and a note says so."""
    circuit = graph(
        {"in": nir.Input(np.array([1])), "w": nir.Linear(np.ones((1, 1))), "lif": lif(1, threshold),
         "out": nir.Output(np.array([1]))},
        [("in", "w"), ("w", "lif"), ("lif", "out")],
    )  # fmt: skip
    x = np.ones((50, 1))
    ref = neuro_hw.simulate(circuit, {"in": x}, 50, 1e-4, record="lif.v")
    program = neuro_hw.compile(circuit, dt=1e-4)
    row = next(r for r in program.report.parameters if r.group == "w.weights")
    assert row.rel_error_max == pytest.approx(error, abs=0.01)
    measured = (
        1 - neuro_hw.run(program, {"in": x}, 50).in_float_units("lif.v")[0, -1, 0] / ref.states["lif.v"][0, -1, 0]
    )
    assert measured == pytest.approx(error, abs=0.02)
    assert any("deliver nothing for a lone spike" in note for note in program.report.notes) == vanishes


def test_cuba_impulse_responses_match_the_reference_and_the_emulator():
    """The reference form of :func:`cuba_impulse_responses` equals the float reference (1e-15), its chip form has
    the emulator's shape (the emulator differs by the weight rounding only: one common factor), and a tau_syn of
    3 steps gets a note with the measured deviation (25 % of the peak, at the first step)."""
    dt, n = 1e-4, 1
    tau_syn, tau_mem = 3e-4, 5e-4
    cuba = nir.CubaLIF(
        tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.ones(n), v_leak=np.zeros(n),
        v_threshold=np.full(n, 100.0), v_reset=np.zeros(n), w_in=np.ones(n),
    )  # fmt: skip
    circuit = graph(
        {"in": nir.Input(np.array([n])), "w": nir.Linear(np.full((n, n), 5.0)), "lif": cuba,
         "out": nir.Output(np.array([n]))},
        [("in", "w"), ("w", "lif"), ("lif", "out")],
    )  # fmt: skip
    x = np.zeros((40, n))
    x[0] = 1
    ref = neuro_hw.simulate(circuit, {"in": x}, 40, dt, record="lif.v").states["lif.v"][0, 1:31, 0]
    program = neuro_hw.compile(circuit, dt=dt)
    emu = neuro_hw.run(program, {"in": x}, 40).in_float_units("lif.v")[0, 1:31, 0]
    pop = program.neurons["lif"]
    a_s_q, a_m_q = (4096 - pop.du - 1) / 4096, (4096 - pop.dv) / 4096
    r, chip = cuba_impulse_responses(math.exp(-dt / tau_syn), math.exp(-dt / tau_mem), a_s_q, a_m_q, 30)
    np.testing.assert_allclose(5.0 * r, ref, rtol=0, atol=1e-14)
    factor = emu[0] / chip[0]
    np.testing.assert_allclose(emu, factor * chip, rtol=0, atol=5e-3 * emu.max())  # integer decays truncate
    assert 4.5 < factor < 5.5
    note = next(n for n in program.report.notes if "after one input step" in n)
    assert "25% of the reference's peak (step 1" in note
    assert any(r.group == "lif.impulse_response" for r in program.report.parameters)


# -- item 6: usability on real files ------------------------------------------------------------------------
def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 0.01), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))


def test_info_describes_a_graph_it_cannot_compile_and_marks_every_unsupported_node(tmp_path, capsys):
    from neuro_hw.cli import main

    li = nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2))
    nodes = {"in": nir.Input(np.array([3])), "w": nir.Linear(np.ones((2, 3))), "th": nir.Threshold(np.ones(2)),
             "w2": nir.Linear(np.ones((2, 2))), "li": li, "w3": nir.Linear(np.ones((2, 2))), "lif": _lif(2),
             "out": nir.Output(np.array([2]))}  # fmt: skip
    chain = ["in", "w", "th", "w2", "li", "w3", "lif", "out"]
    path = tmp_path / "unsupported.nir"
    nir.write(path, nir.NIRGraph(nodes, list(zip(chain[:-1], chain[1:], strict=True))))
    assert main(["info", str(path)]) == 0  # a valid circuit: described, exit 0, even though it does not compile
    out = capsys.readouterr().out
    assert "th                   Threshold" in out and "li                   LI" in out
    assert "UNSUPPORTED th: Threshold nodes have no fixed-point equivalent on loihi2" in out
    assert "UNSUPPORTED li: non-spiking LI node feeds ['w3']" in out
    assert f"does not compile: file '{path}', node 'th'" in out
    assert main(["info", str(path), "--target", "none"]) == 0
    assert "UNSUPPORTED" not in capsys.readouterr().out


def test_info_says_a_compilable_circuit_compiles(tmp_path, capsys):
    from neuro_hw.cli import main

    nodes = {"in": nir.Input(np.array([3])), "w": nir.Linear(np.ones((2, 3))), "lif": _lif(2),
             "out": nir.Output(np.array([2]))}  # fmt: skip
    path = tmp_path / "ok.nir"
    nir.write(path, nir.NIRGraph(nodes, [("in", "w"), ("w", "lif"), ("lif", "out")]))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "compiles: 1 populations, 1 connections, 1/128 cores, 2 neurons, 6 synapses" in out
    assert "UNSUPPORTED" not in out and "does not compile" not in out


def test_compile_errors_name_the_file(tmp_path, capsys):
    from neuro_hw.cli import main

    nodes = {"in": nir.Input(np.array([3])), "w": nir.Linear(np.ones((2, 3))), "th": nir.Threshold(np.ones(2)),
             "out": nir.Output(np.array([2]))}  # fmt: skip
    path = tmp_path / "thr.nir"
    nir.write(path, nir.NIRGraph(nodes, [("in", "w"), ("w", "th"), ("th", "out")]))
    with pytest.raises(UnsupportedNodeError) as err:  # the API names the file the circuit was loaded from
        neuro_hw.compile(neuro_hw.load(path))
    assert err.value.file == str(path) and err.value.node == "th"
    with pytest.raises(UnsupportedNodeError) as err:  # a circuit built in memory has no file
        neuro_hw.compile(Circuit(nodes, [("in", "w"), ("w", "th"), ("th", "out")]))
    assert err.value.file is None
    assert main(["compile", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"neuro-hw compile: error: file '{path}', node 'th': Threshold nodes have no fixed-point equivalent on loihi2"
    )


def test_shape_errors_inside_nested_graphs_get_our_message(tmp_path):
    import h5py

    sub = nir.NIRGraph({"input": nir.Input(np.array([2])), "w": nir.Linear(np.ones((2, 2))), "lif": _lif(2),
                        "output": nir.Output(np.array([2]))},
                       [("input", "w"), ("w", "lif"), ("lif", "output")])  # fmt: skip
    graph = nir.NIRGraph({"in": nir.Input(np.array([3])), "w0": nir.Linear(np.ones((2, 3))), "rec": sub,
                          "out": nir.Output(np.array([2]))}, [("in", "w0"), ("w0", "rec"), ("rec", "out")])  # fmt: skip
    path = tmp_path / "nested.nir"
    nir.write(path, graph)
    assert neuro_hw.load(path).size("rec.lif") == 2  # the valid nested graph loads
    with h5py.File(path, "r+") as f:  # the nested weight now expects 5 inputs; its Input gives 2
        del f["node/nodes/rec/nodes/w/weight"]
        f["node/nodes/rec/nodes/w/weight"] = np.ones((2, 5))
    with pytest.raises(ValidationError) as err:
        neuro_hw.load(path)
    assert err.value.file == str(path) and err.value.node == "rec.w" and err.value.field == "input"
    assert "'rec.input' outputs (2,) (2 values) but 'rec.w' expects (5,)" in err.value.reason
    assert "Type inference" not in str(err.value)  # not nir's raw text
