"""Graphs shaped as the NIR exporters write them (issue 16, item 7), built with stock ``nir`` and written with
``nir.write``: each is loaded, simulated by the float reference, compiled, run on the emulator and compared with
the reference (``fixed-vs-float`` profile unless stated), and a few short runs are checked bit for bit against
Lava.

* ``scnn``: the spiking CNN of snnTorch and Sinabs (the NIR paper's N-MNIST network, scaled down):
  ``Input(1x16x16) -> Conv2d(2, 3x3, pad 1) -> IF -> SumPool2d(2) -> Conv2d(4, 3x3, pad 1) -> IF -> SumPool2d(2)
  -> Flatten -> Affine(10) -> IF``;
* ``conv1d_avgpool``: a Conv1d layer, and a depthwise Conv2d -> IF -> AvgPool2d -> Flatten -> Linear -> IF;
* ``delay`` / ``scale``: ``Input -> Affine -> Delay -> LIF`` and ``Input -> Linear -> Scale -> LIF``;
* ``rleaky`` / ``rsynaptic``: snnTorch's RLeaky / RSynaptic export, ``Input -> Affine -> G`` with ``G`` a nested
  graph ``{input: Input, lif: LIF | CubaLIF, w_rec: Affine | Linear, output: Output}`` (edges input -> lif,
  lif -> w_rec -> lif, lif -> output): an Input node sits between the Affine and the neuron;
* ``braille``: the NIR paper's braille RNN shape: ``Input(12) -> Affine -> recurrent CubaLIF (nested, as
  snnTorch writes it) -> Affine -> CubaLIF(7)``, at dt 1e-4 with time constants of tens of steps.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.compare import assert_equivalent
from neuro_hw.compiler.conv_weights import lava_conv_reason
from neuro_hw.emulator import first_mismatch

DT = 1e-3


def _if(shape: tuple[int, ...], threshold: float = 1.0, dt: float = DT) -> nir.IF:
    """Sinabs' IAF as NIR writes it: ``r = 1/dt``, so a spike through weight ``w`` raises ``v`` by ``w``."""
    return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=np.full(shape, threshold))


def _lif(n: int, tau: float, threshold: float = 1.0, dt: float = DT) -> nir.LIF:
    """snnTorch's Leaky export: ``r = tau / dt``, ``v_leak = 0``."""
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / dt), v_leak=np.zeros(n), v_threshold=np.full(n, threshold))


def _cuba(n: int, tau_syn: float, tau_mem: float, threshold: float = 1.0, dt: float = DT) -> nir.CubaLIF:
    """snnTorch's Synaptic export: ``r = tau_mem / dt``, ``w_in = tau_syn / dt``."""
    return nir.CubaLIF(
        tau_syn=np.full(n, tau_syn),
        tau_mem=np.full(n, tau_mem),
        r=np.full(n, tau_mem / dt),
        v_leak=np.zeros(n),
        v_threshold=np.full(n, threshold),
        w_in=np.full(n, tau_syn / dt),
    )


def scnn(rng: np.random.Generator) -> nir.NIRGraph:
    c1, c2 = 2, 4
    w1 = rng.normal(0.4, 0.3, (c1, 1, 3, 3))
    w2 = rng.normal(0.015, 0.05, (c2, c1, 3, 3))
    nodes = {
        "in": nir.Input(np.array([1, 16, 16])),
        "conv1": nir.Conv2d(
            input_shape=(16, 16), weight=w1, stride=1, padding=1, dilation=1, groups=1, bias=np.full(c1, 0.02)
        ),
        "if1": _if((c1, 16, 16)),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(
            input_shape=(8, 8), weight=w2, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(c2)
        ),
        "if2": _if((c2, 8, 8)),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([c2, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0.006, 0.02, (10, c2 * 4 * 4)), bias=np.zeros(10)),
        "if3": _if((10,)),
        "out": nir.Output(np.array([10])),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)), type_check=False)


def conv1d_avgpool_graph(rng: np.random.Generator) -> nir.NIRGraph:
    """A Conv1d branch (``(2, 16) -> (3, 8)``, stride 2, LIF) and a depthwise Conv2d -> IF -> AvgPool2d -> Flatten
    -> Linear branch, from one input each."""
    nodes = {
        "seq": nir.Input(np.array([2, 16])),
        "c1d": nir.Conv1d(
            input_shape=16,
            weight=rng.normal(0.5, 0.3, (3, 2, 3)),
            stride=2,
            padding=1,
            dilation=1,
            groups=1,
            bias=np.zeros(3),
        ),
        "lif1d": nir.LIF(
            tau=np.full((3, 8), 0.02), r=np.full((3, 8), 20.0), v_leak=np.zeros((3, 8)), v_threshold=np.ones((3, 8))
        ),
        "img": nir.Input(np.array([2, 8, 8])),
        "dw": nir.Conv2d(
            input_shape=(8, 8),
            weight=rng.normal(0.5, 0.3, (2, 1, 3, 3)),
            stride=1,
            padding=1,
            dilation=1,
            groups=2,
            bias=np.zeros(2),
        ),
        "ifdw": _if((2, 8, 8)),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(rng.normal(0.04, 0.06, (5, 32))),
        "if_out": _if((5,)),
        "o1": nir.Output(np.array([3, 8])),
        "o2": nir.Output(np.array([5])),
    }
    edges = [
        ("seq", "c1d"),
        ("c1d", "lif1d"),
        ("lif1d", "o1"),
        ("img", "dw"),
        ("dw", "ifdw"),
        ("ifdw", "avg"),
        ("avg", "flat"),
        ("flat", "fc"),
        ("fc", "if_out"),
        ("if_out", "o2"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def delay_graph(rng: np.random.Generator) -> nir.NIRGraph:
    n_in, n = 6, 4
    nodes = {
        "in": nir.Input(np.array([n_in])),
        "fc": nir.Affine(rng.normal(0.4, 0.3, (n, n_in)), np.full(n, 0.1)),
        "delay": nir.Delay(np.full(n, 3 * DT)),
        "lif": _lif(n, 0.02),
        "out": nir.Output(np.array([n])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "delay"), ("delay", "lif"), ("lif", "out")])


def scale_graph(rng: np.random.Generator) -> nir.NIRGraph:
    n_in, n = 6, 4
    nodes = {
        "in": nir.Input(np.array([n_in])),
        "fc": nir.Linear(rng.normal(0.5, 0.3, (n, n_in))),
        "scale": nir.Scale(np.linspace(0.8, 1.6, n)),
        "lif": _lif(n, 0.02),
        "out": nir.Output(np.array([n])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "scale"), ("scale", "lif"), ("lif", "out")])


def recurrent_layer(neuron: nir.NIRNode, w_rec: nir.NIRNode, n: int) -> nir.NIRGraph:
    """snnTorch's RLeaky / RSynaptic subgraph (``snntorch/export_nir.py``)."""
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])), "lif": neuron, "w_rec": w_rec, "output": nir.Output(np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )


def rleaky_graph(rng: np.random.Generator, cuba: bool = False) -> nir.NIRGraph:
    n_in, n = 8, 6
    neuron = _cuba(n, 5e-3, 1e-2) if cuba else _lif(n, 0.02)
    w_rec = (
        nir.Affine(rng.normal(0.0, 0.2, (n, n)), np.zeros(n)) if not cuba else nir.Linear(rng.normal(0, 0.2, (n, n)))
    )
    nodes = {
        "in": nir.Input(np.array([n_in])),
        "fc": nir.Affine(rng.normal(0.04 if cuba else 0.4, 0.04 if cuba else 0.25, (n, n_in)), np.zeros(n)),
        "rec": recurrent_layer(neuron, w_rec, n),
        "out": nir.Output(np.array([n])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "rec"), ("rec", "out")])


def braille_graph(rng: np.random.Generator, dt: float = 1e-4) -> nir.NIRGraph:
    n_in, n_hid, n_out = 12, 16, 7
    nodes = {
        "in": nir.Input(np.array([n_in])),
        "fc1": nir.Affine(rng.normal(0.02, 0.02, (n_hid, n_in)), np.zeros(n_hid)),
        "rec": recurrent_layer(
            _cuba(n_hid, 2e-3, 4e-3, dt=dt), nir.Linear(rng.normal(0.0, 0.01, (n_hid, n_hid))), n_hid
        ),
        "fc2": nir.Affine(rng.normal(0.003, 0.006, (n_out, n_hid)), np.zeros(n_out)),
        "lif_out": _cuba(n_out, 2e-3, 4e-3, dt=dt),
        "out": nir.Output(np.array([n_out])),
    }
    edges = [("in", "fc1"), ("fc1", "rec"), ("rec", "fc2"), ("fc2", "lif_out"), ("lif_out", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _load(graph: nir.NIRGraph, tmp_path, name: str) -> neuro_hw.Circuit:
    path = tmp_path / f"{name}.nir"
    nir.write(path, graph)
    return neuro_hw.load(path)


def _stimulus(circuit: neuro_hw.Circuit, steps: int, rate: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.random((steps, circuit.size(name))) < rate).astype(float) for name in circuit.input_names}


CASES = {  # graph, dt, steps, input rate, output population
    "scnn": (scnn, DT, 60, 0.15, "if3"),
    "conv1d_avgpool": (conv1d_avgpool_graph, DT, 100, 0.15, "if_out"),
    "delay": (delay_graph, DT, 150, 0.2, "lif"),
    "scale": (scale_graph, DT, 150, 0.2, "lif"),
    "rleaky": (rleaky_graph, DT, 150, 0.2, "rec.lif"),
    "rsynaptic": (lambda rng: rleaky_graph(rng, cuba=True), DT, 150, 0.2, "rec.lif"),
    "braille": (braille_graph, 1e-4, 300, 0.1, "lif_out"),
}


def end_to_end(name: str, tmp_path, seed: int = 0):
    build, dt, steps, rate, out = CASES[name]
    circuit = _load(build(np.random.default_rng(seed)), tmp_path, name)
    x = _stimulus(circuit, steps, rate, seed + 1)
    ref = neuro_hw.simulate(circuit, x, steps, dt)
    program = neuro_hw.compile(circuit, dt=dt)
    emu = neuro_hw.run(program, x, steps)
    return circuit, program, x, ref, emu, out


@pytest.mark.parametrize("name", list(CASES))
def test_exporter_graph_runs_end_to_end(name, tmp_path):
    circuit, program, x, ref, emu, out = end_to_end(name, tmp_path)
    assert ref.spikes[out].sum() >= 5, f"{name}: the reference output is too quiet to compare"
    comparison = assert_equivalent(ref, emu, "fixed-vs-float")
    for pop, m in comparison.population_metrics.items():
        assert m["spikes_a"] > 0, f"{name}: {pop} is silent in the reference"


def test_scnn_keeps_its_convolutions_and_reports_them(tmp_path):
    circuit, program, x, ref, emu, out = end_to_end("scnn", tmp_path)
    conns = program.connections
    # conv1 reads the input directly: a kernel lowered to Lava's Conv; pool1 folds into conv2 (one composite
    # convolution, stride 2, one more step of delay) and pool2 into fc (a matrix)
    assert conns["conv1"].conv is not None and lava_conv_reason(program, "conv1") is None
    assert conns["conv2"].conv is not None and conns["conv2"].conv.stride == (2, 2)
    assert int(np.unique(conns["conv2"].delays)[0]) == 1 and "synaptic delay" in lava_conv_reason(program, "conv2")
    assert conns["fc"].conv is None and conns["fc"].weights.shape == (10, 4 * 8 * 8)
    kernels = {k.connection: k for k in program.report.resources.kernels}
    assert kernels["conv1"].kernel_entries == 2 * 9 and kernels["conv1"].lava == "Conv"
    assert kernels["conv1"].synapses == 2 * (16 * 16 * 9 - 4 * 16 * 3 + 4)  # 3x3 taps inside a 16x16 image
    assert kernels["conv2"].kernel_shape == [4, 2, 6, 6]  # 3x3 after a 2x2 sum pool: (3 - 1) * 2 + (2 - 1) + 1
    text = program.report.format_table()
    assert "kernel conv1 -> if1" in text and "Lava: Conv" in text
    assert any("pool1 -> conv2 folded" in n for n in program.report.notes)


@pytest.mark.lava
@pytest.mark.parametrize("name", ["scnn", "rsynaptic"])
def test_exporter_graph_emulator_equals_lava(name, tmp_path):
    circuit, program, x, ref, emu, out = end_to_end(name, tmp_path)
    steps = 25
    short = {k: v[:steps] for k, v in x.items()}
    lava = neuro_hw.run(program, short, steps, backend="lava")
    emu = neuro_hw.run(program, short, steps)
    assert emu.spikes[out].shape[1] == steps
    m = first_mismatch(emu, lava)
    assert m is None, f"{name}: emulator != Lava -- {m}"
    assert sum(int(s.sum()) for s in lava.spikes.values()) > 0
