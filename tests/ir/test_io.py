"""Circuit files: lossless round trip (hypothesis), stock NIR compatibility, corrupt files."""

import json
import math

import h5py
import nir
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import neuro_hw
from neuro_hw.errors import CircuitFileError, RuleError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import node_parameters
from neuro_hw.ir.rules import DECIMATIONS, SPIKES, SYNAPTIC_VARIABLES, TARGETS, TRACES, Expression, Factor, Term

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-4, max_value=10.0, allow_nan=False)


def _array(draw, n, elements):
    return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)


@st.composite
def neuron_nodes(draw, n):
    kind = draw(st.sampled_from(["LIF", "LI", "CubaLIF", "CubaLI", "IF", "I"]))
    a = lambda elements: _array(draw, n, elements)  # noqa: E731
    if kind == "LIF":
        return nir.LIF(tau=a(positive), r=a(finite), v_leak=a(finite), v_threshold=a(finite), v_reset=a(finite))
    if kind == "LI":
        return nir.LI(tau=a(positive), r=a(finite), v_leak=a(finite))
    if kind == "CubaLIF":
        return nir.CubaLIF(
            tau_syn=a(positive),
            tau_mem=a(positive),
            r=a(finite),
            v_leak=a(finite),
            v_threshold=a(finite),
            v_reset=a(finite),
            w_in=a(finite),
        )
    if kind == "CubaLI":
        return nir.CubaLI(tau_syn=a(positive), tau_mem=a(positive), r=a(finite), v_leak=a(finite), w_in=a(finite))
    if kind == "IF":
        return nir.IF(r=a(finite), v_threshold=a(finite), v_reset=a(finite))
    return nir.I(r=a(finite))


@st.composite
def factors(draw):
    symbol = draw(st.sampled_from(SPIKES + TRACES + SYNAPTIC_VARIABLES + DECIMATIONS[:4]))
    if symbol in SPIKES or symbol in DECIMATIONS:
        return Factor(symbol)
    offset = draw(st.one_of(st.just(0.0), finite))
    return Factor(symbol, offset, sgn=draw(st.booleans()))


@st.composite
def expressions(draw, target):
    terms = []
    for _ in range(draw(st.integers(1, 4))):
        coefficient = draw(finite.filter(lambda c: c != 0))
        fs = draw(st.lists(factors(), min_size=0, max_size=3))
        if sum(f.symbol in DECIMATIONS for f in fs) > 1:
            fs = [f for f in fs if f.symbol not in DECIMATIONS]
        terms.append(Term(coefficient, tuple(fs)))
    return Expression(target, tuple(terms))


@st.composite
def circuits(draw):
    n_in, n_hidden, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    w1 = np.array(draw(st.lists(finite, min_size=n_in * n_hidden, max_size=n_in * n_hidden))).reshape(n_hidden, n_in)
    w2 = np.array(draw(st.lists(finite, min_size=n_hidden * n_out, max_size=n_hidden * n_out))).reshape(n_out, n_hidden)
    second = nir.Affine(w2, _array(draw, n_out, finite)) if draw(st.booleans()) else nir.Linear(w2)
    nodes = {
        "in": nir.Input(np.array([n_in])),
        "syn1": nir.Linear(w1),
        "hidden": draw(neuron_nodes(n_hidden)),
        "syn2": second,
        "outpop": draw(neuron_nodes(n_out)),
        "out": nir.Output(np.array([n_out])),
    }
    edges = [("in", "syn1"), ("syn1", "hidden"), ("hidden", "syn2"), ("syn2", "outpop"), ("outpop", "out")]
    circuit = neuro_hw.Circuit(nodes, edges)
    for syn, pre, post in (("syn1", "in", "hidden"), ("syn2", "hidden", "outpop")):
        if not draw(st.booleans()):
            continue
        targets = draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3, unique=True))
        rules = {t: draw(expressions(t)) for t in targets}
        traces = {
            k: (draw(finite), draw(st.one_of(positive, st.just(0.0), st.just(math.inf))))
            for k in draw(st.lists(st.sampled_from(TRACES), unique=True, max_size=5))
        }
        third = {"y2": "in"} if syn == "syn1" and n_in == n_hidden and draw(st.booleans()) else {}
        weight = np.asarray(nodes[syn].weight)
        mask = None
        if draw(st.booleans()):  # a plasticity mask: absent synapses hold 0
            mask = np.array(draw(st.lists(st.booleans(), min_size=weight.size, max_size=weight.size)))
            mask = mask.reshape(weight.shape)
            mask.flat[0] = True
            weight[~mask] = 0.0
        lo = draw(st.one_of(st.just(-math.inf), st.just(float(weight.min()) - 1.0)))
        hi = draw(st.one_of(st.just(math.inf), st.just(float(weight.max()) + 1.0)))
        circuit.add_plasticity(
            syn,
            rules,
            pre=pre,
            post=post,
            traces=traces,
            third_factor=third,
            t_epoch=draw(st.integers(1, 16)),
            w_bounds=(lo, hi),
            mask=mask,
        )
    return circuit


def assert_same_circuit(a: neuro_hw.Circuit, b: neuro_hw.Circuit) -> None:
    assert set(a.nodes) == set(b.nodes)
    for name in a.nodes:
        assert type(a.nodes[name]) is type(b.nodes[name])
        pa, pb = node_parameters(a.nodes[name]), node_parameters(b.nodes[name])
        assert set(pa) == set(pb), name
        for key in pa:
            np.testing.assert_array_equal(np.asarray(pa[key], dtype=float), np.asarray(pb[key], dtype=float))
    assert sorted(a.edges) == sorted(b.edges)
    assert a.plasticity.keys() == b.plasticity.keys()
    for name in a.plasticity:
        assert a.plasticity[name] == b.plasticity[name]
    assert a.hash() == b.hash()


@given(circuits())
def test_round_trip_is_lossless(tmp_path_factory, circuit):
    path = tmp_path_factory.mktemp("rt") / "c.nir"
    neuro_hw.save(circuit, path)
    loaded = neuro_hw.load(path)
    assert_same_circuit(circuit, loaded)
    # Saving the loaded circuit again gives the same content.
    neuro_hw.save(loaded, path)
    assert_same_circuit(circuit, neuro_hw.load(path))


@given(st.data())
def test_rule_strings_round_trip(data):
    target = data.draw(st.sampled_from(TARGETS))
    expr = data.draw(expressions(target))
    assert neuro_hw.parse_rule(str(expr)) == expr


@given(circuits())
def test_stock_nir_reader_sees_the_static_network(tmp_path_factory, circuit):
    path = tmp_path_factory.mktemp("stock") / "c.nir"
    neuro_hw.save(circuit, path)
    graph = nir.read(path)
    assert set(graph.nodes) == set(circuit.nodes)
    assert sorted(map(tuple, graph.edges)) == sorted(circuit.edges)
    np.testing.assert_array_equal(graph.nodes["syn1"].weight, circuit.nodes["syn1"].weight)


def _stock_graph():
    return nir.NIRGraph.from_list(
        nir.Input(np.array([3])),
        nir.Linear(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]])),
        nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        nir.Output(np.array([2])),
    )


def test_file_written_by_nir_itself_loads_and_simulates(tmp_path):
    path = tmp_path / "stock.nir"
    nir.write(path, _stock_graph())  # written by the nir package, not by us
    circuit = neuro_hw.load(path)
    assert circuit.plasticity == {}
    names = {circuit.type_of(n): n for n in circuit.nodes}
    steps = 40
    stimulus = np.zeros((steps, 3))
    stimulus[:, 0] = 1.0  # drives neuron 0 with weight 1.0 every step
    result = neuro_hw.simulate(circuit, {names["Input"]: stimulus}, steps=steps, dt=1e-3)
    spikes = result.spikes[names["LIF"]][0]
    # Neuron 0: v_k = 1 - exp(-k*dt/tau) after input starts (one step synaptic delay); threshold 1 is
    # never crossed (v < 1), neuron 1 gets no input.
    assert spikes.sum() == 0
    # Scale the input: r*I = 3 crosses threshold 1 at 1 - exp(-k/10) > 1/3 -> k = 5 steps after arrival.
    result = neuro_hw.simulate(circuit, {names["Input"]: 3 * stimulus}, steps=steps, dt=1e-3)
    first = int(np.argmax(result.spikes[names["LIF"]][0, :, 0]))
    assert first == 1 + 4  # input reaches the neuron at step 2 (index 1); 5th integration step spikes
    assert result.spikes[names["LIF"]][0, :, 1].sum() == 0


def test_plasticity_added_to_stock_file_survives(tmp_path):
    path = tmp_path / "stock.nir"
    nir.write(path, _stock_graph())
    circuit = neuro_hw.load(path)
    syn = circuit.names_of_type("Linear")[0]
    circuit.add_plasticity(syn, "dw = 0.01*x1*y0 - 0.012*y1*x0", traces={"x1": (1.0, 0.02)}, t_epoch=2)
    neuro_hw.save(circuit, tmp_path / "plastic.nir")
    back = neuro_hw.load(tmp_path / "plastic.nir")
    assert str(back.plasticity[syn].rules["dw"]) == "dw = 0.01*x1*y0 - 0.012*y1*x0"
    assert back.plasticity[syn].t_epoch == 2
    assert back.plasticity[syn].traces["x1"].tau == 0.02


# --- bad files ----------------------------------------------------------------------------------------


def _saved(tmp_path):
    circuit = neuro_hw.Circuit.from_nir(_stock_graph())
    syn = circuit.names_of_type("Linear")[0]
    circuit.add_plasticity(syn, "dw = 0.01*x1*y0")
    path = tmp_path / "good.nir"
    neuro_hw.save(circuit, path)
    return path, syn


def test_missing_file(tmp_path):
    with pytest.raises(CircuitFileError, match=r"file '.*nope.nir': no such file"):
        neuro_hw.load(tmp_path / "nope.nir")


def test_truncated_file(tmp_path):
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.nir"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CircuitFileError, match="truncated.nir.*(truncated or corrupt|corrupt)"):
        neuro_hw.load(bad)


def test_not_hdf5(tmp_path):
    bad = tmp_path / "text.nir"
    bad.write_text("hello")
    with pytest.raises(CircuitFileError, match="not a readable HDF5"):
        neuro_hw.load(bad)


def test_hdf5_but_not_nir(tmp_path):
    bad = tmp_path / "other.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = 1
    with pytest.raises(CircuitFileError, match="no '/node' group"):
        neuro_hw.load(bad)


def test_unknown_node_type_names_node(tmp_path):
    path, _ = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        name = [n for n in f["node/nodes"] if f[f"node/nodes/{n}/type"][()] == b"LIF"][0]
        del f[f"node/nodes/{name}/type"]
        f[f"node/nodes/{name}/type"] = np.bytes_("Hodgkin")
    with pytest.raises(UnsupportedNodeError, match=rf"node '{name}', field 'type': unknown node type 'Hodgkin'"):
        neuro_hw.load(path)


def test_node_with_wrong_shapes_names_node(tmp_path):
    path, _ = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        name = [n for n in f["node/nodes"] if f[f"node/nodes/{n}/type"][()] == b"LIF"][0]
        del f[f"node/nodes/{name}/tau"]
        f[f"node/nodes/{name}/tau"] = np.ones(5)
    with pytest.raises(ValidationError, match=rf"node '{name}'.*invalid LIF node"):
        neuro_hw.load(path)


def test_nan_parameter_names_node_and_field(tmp_path):
    path, _ = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        name = [n for n in f["node/nodes"] if f[f"node/nodes/{n}/type"][()] == b"LIF"][0]
        f[f"node/nodes/{name}/r"][0] = np.nan
    with pytest.raises(ValidationError, match=rf"good.nir', node '{name}', field 'r': .*nan"):
        neuro_hw.load(path)


def test_edge_to_missing_node(tmp_path):
    path, _ = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        edges = f["node/edges"][()]
        del f["node/edges"]
        f["node/edges"] = np.concatenate([edges, np.array([[b"ghost", edges[0][1]]], dtype=edges.dtype)])
    with pytest.raises(ValidationError, match="node 'ghost', field 'edges': .*does not exist"):
        neuro_hw.load(path)


def test_corrupt_plasticity_extension(tmp_path):
    path, _ = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        f["neuro_hw"].attrs["extension"] = "{not json"
    with pytest.raises(CircuitFileError, match="field 'neuro_hw': plasticity extension is not valid JSON"):
        neuro_hw.load(path)


def test_rule_with_unknown_symbol_in_file(tmp_path):
    path, syn = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        text = f["neuro_hw"].attrs["extension"].replace('"symbol": "x1"', '"symbol": "z7"')
        f["neuro_hw"].attrs["extension"] = text
    with pytest.raises(RuleError, match=rf"good.nir', node '{syn}'.*unknown symbol 'z7'"):
        neuro_hw.load(path)


def test_rule_naming_missing_population_in_file(tmp_path):
    path, syn = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        ext = json.loads(f["neuro_hw"].attrs["extension"])
        ext["plasticity"][syn]["post"] = "nobody"
        f["neuro_hw"].attrs["extension"] = json.dumps(ext)
    with pytest.raises(RuleError, match=rf"node '{syn}', field 'post': post population 'nobody' does not exist"):
        neuro_hw.load(path)


def test_conv_file_loads_with_its_shapes(tmp_path):
    """A Conv2d written by stock nir loads (issue 16: convolutions are supported) with its inferred shapes."""
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(np.array([1, 4, 4])),
            "conv": nir.Conv2d(
                input_shape=(4, 4),
                weight=np.ones((2, 1, 3, 3)),
                stride=1,
                padding=0,
                dilation=1,
                groups=1,
                bias=np.zeros(2),
            ),
        },
        edges=[("in", "conv")],
        type_check=False,
    )
    path = tmp_path / "conv.nir"
    nir.write(path, graph)
    circuit = neuro_hw.load(path)
    assert tuple(circuit.nodes["conv"].output_type["output"]) == (2, 2, 2)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path, syn = _saved(tmp_path)
    before = path.read_bytes()
    circuit = neuro_hw.load(path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nir, "write", boom)
    with pytest.raises(KeyboardInterrupt):
        neuro_hw.save(circuit, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
