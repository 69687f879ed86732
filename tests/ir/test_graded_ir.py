"""Graded neurons and modulators in the IR: construction errors, files (stand-ins + extension), modulator names."""

import json
import math

import h5py
import nir
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import neuro_hw
from neuro_hw.cli import main as cli_main
from neuro_hw.errors import CircuitFileError, RuleError, RuleSyntaxError, ValidationError
from neuro_hw.ir.graded import ACTIVATIONS, GATES, GradedNeuron, ProductNeuron
from neuro_hw.ir.plasticity import Plasticity
from neuro_hw.ir.rules import Expression, Factor, Term


def small_circuit() -> neuro_hw.Circuit:
    """x -> w1 -> h (clipped relu) -> w2 -> o (identity) -> po -> err <- nt <- t;  err -> fb -> p <- hg <- h;
    p -> sp (softplus) -> out.

    ``p`` is a ProductNeuron gated by ``h`` (through ``hg``); w2 learns from the modulator ``e = err``."""
    nodes = {
        "x": nir.Input(np.array([3])),
        "t": nir.Input(np.array([2])),
        "w1": nir.Linear(np.arange(12.0).reshape(4, 3) / 12 - 0.4),
        "h": GradedNeuron(np.array([4]), "clipped_relu", clip=1.0),
        "w2": nir.Linear(np.arange(8.0).reshape(2, 4) / 8 - 0.5),
        "o": GradedNeuron(np.array([2]), "identity"),
        "po": nir.Linear(np.eye(2)),
        "nt": nir.Linear(-np.eye(2)),
        "err": GradedNeuron(np.array([2]), "identity"),
        "fb": nir.Linear(np.ones((4, 2)) * 0.5),
        "hg": nir.Linear(np.eye(4)),
        "p": ProductNeuron(np.array([4]), gate_inputs=("hg",), gate="clipped_relu_derivative", gate_clip=1.0),
        "sp": GradedNeuron(np.array([4]), "softplus", beta=2.0),
        "out": nir.Output(np.array([4])),
    }
    edges = [
        ("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o"), ("o", "po"), ("po", "err"), ("t", "nt"), ("nt", "err"),
        ("err", "fb"), ("fb", "p"), ("h", "hg"), ("hg", "p"), ("p", "sp"), ("sp", "out"),
    ]  # fmt: skip
    circuit = neuro_hw.Circuit(nodes, edges)
    circuit.add_plasticity(
        "w2", "dw = -0.01*x0*e*x1", traces={"x1": "activity"}, third_factor={"e": "err"}, t_epoch=5, w_bounds=(-2, 2)
    )
    return circuit


# --- construction errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"activation": "tanh"}, "activation", "unknown activation 'tanh'"),
        ({"activation": "clipped_relu"}, "clip", "clipped_relu needs a finite clip"),
        ({"activation": "identity", "clip": 1.0}, "clip", "identity takes no clip"),
        ({"activation": "relu", "clip": 2.0}, "clip", "relu takes no clip"),
        ({"activation": "clipped_relu", "clip": -1.0}, "clip", "must be a positive number"),
        ({"activation": "clipped_relu", "clip": math.nan}, "clip", "must be a positive number"),
        ({"activation": "softplus", "beta": 0.0}, "beta", "must be a positive finite number"),
        ({"activation": "softplus", "beta": math.inf}, "beta", "must be a positive finite number"),
        ({"shape": [0]}, "shape", "positive integers"),
        ({"shape": [[2, 2]]}, "shape", "positive integers"),
        ({"shape": 2.5}, "shape", "must be integers"),
        ({"shape": "ab"}, "shape", "must be integers"),
    ],
)
def test_graded_neuron_construction_errors_name_the_field(kwargs, field, words):
    args = {"shape": np.array([2]), **kwargs}
    with pytest.raises(ValidationError, match=rf"^field '{field}': .*{words}") as info:
        GradedNeuron(**args)
    assert info.value.field == field


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"gate_inputs": ()}, "gate_inputs", "needs gate_inputs"),
        ({"gate_inputs": ("v", "v")}, "gate_inputs", r"lists \['v'\] more than once"),
        ({"gate": "sigmoid"}, "gate", "unknown gate 'sigmoid'"),
        ({"gate": "clipped_relu_derivative"}, "gate_clip", "needs a finite gate_clip"),
        ({"gate": "softplus_derivative", "gate_beta": -1.0}, "gate_beta", "positive finite"),
        ({"shape": [-3]}, "shape", "positive integers"),
    ],
)
def test_product_neuron_construction_errors_name_the_field(kwargs, field, words):
    args = {"shape": np.array([2]), "gate_inputs": ("v",), **kwargs}
    with pytest.raises(ValidationError, match=rf"^field '{field}': .*{words}"):
        ProductNeuron(**args)


def _product_nodes():
    return {
        "x": nir.Input(np.array([2])),
        "wa": nir.Linear(np.eye(2)),
        "wb": nir.Linear(np.eye(2)),
        "p": ProductNeuron(np.array([2]), gate_inputs=("wb",), gate="relu_derivative"),
    }


def test_product_gate_inputs_must_be_predecessors():
    with pytest.raises(ValidationError, match=r"node 'p', field 'gate_inputs': gate_inputs \['wb'\] have no edge"):
        neuro_hw.Circuit(_product_nodes(), [("x", "wa"), ("wa", "p"), ("x", "wb")])


def test_product_needs_a_port_a_input():
    with pytest.raises(ValidationError, match="node 'p', field 'gate_inputs': .*at least one input on port a"):
        neuro_hw.Circuit(_product_nodes(), [("x", "wb"), ("wb", "p")])
    circuit = neuro_hw.Circuit(_product_nodes(), [("x", "wa"), ("wa", "p"), ("x", "wb"), ("wb", "p")])
    assert circuit.type_of("p") == "ProductNeuron"


def test_parameters_changed_after_construction_are_refused_naming_the_node():
    circuit = small_circuit()
    circuit.nodes["h"].activation = "tanh"
    with pytest.raises(ValidationError, match="node 'h', field 'activation': unknown activation 'tanh'"):
        circuit.validate()
    circuit = small_circuit()
    circuit.nodes["p"].gate_clip = math.inf
    with pytest.raises(ValidationError, match="node 'p', field 'gate_clip'"):
        circuit.validate()


# --- files ---------------------------------------------------------------------------------------------------


def test_stock_nir_reads_graded_nodes_as_identity_scales(tmp_path):
    circuit = small_circuit()
    path = neuro_hw.save(circuit, tmp_path / "g.nir")
    graph = nir.read(path)
    for name, node in circuit.graded_nodes.items():
        standin = graph.nodes[name]
        assert type(standin) is nir.Scale, name
        np.testing.assert_array_equal(standin.scale, np.ones(tuple(node.shape)))
        assert standin.metadata["neuro_hw"] == type(node).__name__
    assert type(graph.nodes["w1"]) is nir.Linear
    assert sorted(map(tuple, graph.edges)) == sorted(circuit.edges)
    with h5py.File(path) as f:
        assert int(f["neuro_hw"].attrs["format_version"]) == 2


def test_load_restores_identical_graded_nodes(tmp_path):
    circuit = small_circuit()
    path = neuro_hw.save(circuit, tmp_path / "g.nir")
    loaded = neuro_hw.load(path)
    assert loaded.hash() == circuit.hash()
    for name, node in circuit.graded_nodes.items():
        assert type(loaded.nodes[name]) is type(node)
        assert loaded.nodes[name].to_extension() == node.to_extension()
    assert loaded.plasticity["w2"] == circuit.plasticity["w2"]
    assert loaded.plasticity["w2"].pre_activity and loaded.plasticity["w2"].modulators == {"e": "err"}


def test_hash_sees_graded_parameters():
    a, b = small_circuit(), small_circuit()
    assert a.hash() == b.hash()
    b.nodes["sp"].beta = 2.5
    assert a.hash() != b.hash()
    b = small_circuit()
    b.nodes["p"].gate = "relu_derivative"
    assert a.hash() != b.hash()


positive = st.floats(min_value=1e-3, max_value=100.0, allow_nan=False)


@st.composite
def graded_neurons(draw, n):
    activation = draw(st.sampled_from(ACTIVATIONS))
    clip = math.inf
    if activation == "clipped_relu" or (activation == "softplus" and draw(st.booleans())):
        clip = draw(positive)
    beta = draw(positive) if draw(st.booleans()) else 1.0
    return GradedNeuron(np.array([n]), activation, clip=clip, beta=beta)


@st.composite
def graded_circuits(draw):
    """x -> w1 -> h -> w2 -> o, and a product p = (wa x) * gate(wg h) -> wp -> o; plasticity optional."""
    n0, n1, n2 = (draw(st.integers(1, 4)) for _ in range(3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    gate = draw(st.sampled_from(GATES))
    gate_clip = draw(positive) if gate == "clipped_relu_derivative" or draw(st.booleans()) else math.inf
    nodes = {
        "x": nir.Input(np.array([n0])),
        "w1": nir.Linear(rng.uniform(-1, 1, (n1, n0))),
        "h": draw(graded_neurons(n1)),
        "w2": nir.Linear(rng.uniform(-1, 1, (n2, n1))),
        "o": draw(graded_neurons(n2)),
        "wa": nir.Linear(rng.uniform(-1, 1, (n1, n0))),
        "wg": nir.Linear(rng.uniform(-1, 1, (n1, n1))),
        "p": ProductNeuron(np.array([n1]), ("wg",), gate, gate_clip, draw(positive)),
        "wp": nir.Linear(rng.uniform(-1, 1, (n2, n1))),
    }
    edges = [("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o"), ("x", "wa"), ("wa", "p"), ("h", "wg"), ("wg", "p"),
             ("p", "wp"), ("wp", "o")]  # fmt: skip
    circuit = neuro_hw.Circuit(nodes, edges)
    if draw(st.booleans()):
        circuit.add_plasticity(
            "w2",
            f"dw = {-draw(positive)!r}*x0*e*x1",
            traces={"x1": "activity"},
            third_factor={"e": "o"},
            t_epoch=draw(st.integers(1, 8)),
            w_bounds=(-2.0, 2.0),
        )
    if draw(st.booleans()):
        circuit.add_plasticity("w1", "dw = 0.5*g*x1 - 0.25*y2*x1", traces={"x1": "activity"},
                               third_factor={"g": "p", "y2": "h"})  # fmt: skip
    return circuit


@given(graded_circuits())
def test_random_graded_circuits_round_trip(tmp_path_factory, circuit):
    path = neuro_hw.save(circuit, tmp_path_factory.mktemp("rt") / "c.nir")
    loaded = neuro_hw.load(path)
    assert loaded.hash() == circuit.hash()
    for name, node in circuit.nodes.items():
        assert type(loaded.nodes[name]) is type(node)
        if name in circuit.graded_nodes:
            assert loaded.nodes[name].to_extension() == node.to_extension()
    assert loaded.plasticity == circuit.plasticity
    graph = nir.read(path)
    assert {n for n, node in graph.nodes.items() if type(node) is nir.Scale} == {"h", "o", "p"}


def _edit_extension(path, edit):
    with h5py.File(path, "a") as f:
        ext = json.loads(f["neuro_hw"].attrs["extension"])
        edit(ext)
        f["neuro_hw"].attrs["extension"] = json.dumps(ext)


def _saved(tmp_path):
    return neuro_hw.save(small_circuit(), tmp_path / "bad.nir")


def _set(key, value, node="h"):
    def edit(ext):
        ext["nodes"][node][key] = value

    return edit


def _delete(key, node="h"):
    def edit(ext):
        del ext["nodes"][node][key]

    return edit


def _move(src, dst):
    def edit(ext):
        ext["nodes"][dst] = ext["nodes"].pop(src)

    return edit


def _replace_entry(value, node="h"):
    def edit(ext):
        ext["nodes"][node] = value

    return edit


@pytest.mark.parametrize(
    "edit, error, node, field, words",
    [
        (_set("type", "Sigmoid"), ValidationError, "h", "type", "unknown graded node type 'Sigmoid'"),
        (_delete("shape"), ValidationError, "h", "shape", "GradedNeuron entry has no shape"),
        (_set("activation", "tanh"), ValidationError, "h", "activation", "unknown activation 'tanh'"),
        (_set("activation", 3), ValidationError, "h", "activation", "must be a string"),
        (_set("clip", None), ValidationError, "h", "clip", "must be a number"),
        (_set("bias", 0.5), ValidationError, "h", "bias", r"unknown field\(s\) \['bias'\]"),
        (_set("shape", [5]), CircuitFileError, "h", "shape", r"stand-in shape \(4,\) differs .* \(5,\)"),
        (_set("gate_inputs", "hg", node="p"), ValidationError, "p", "gate_inputs", "must be a list of node names"),
        (_set("gate_inputs", [], node="p"), ValidationError, "p", "gate_inputs", "needs gate_inputs"),
        (_replace_entry([1, 2]), ValidationError, "h", None, "must be an object"),
        (_move("h", "ghost"), CircuitFileError, "ghost", "nodes", "not in the graph"),
        (_move("h", "w1"), CircuitFileError, "w1", "nodes", "holds a Linear where the extension puts a graded node"),
    ],
)
def test_corrupt_graded_entries_name_file_and_node(tmp_path, edit, error, node, field, words):
    path = _saved(tmp_path)
    _edit_extension(path, edit)
    with pytest.raises(error, match=words) as info:
        neuro_hw.load(path)
    assert type(info.value) is error
    assert info.value.file == str(path)
    assert info.value.node == node
    assert info.value.field == field


def test_product_whose_gate_input_is_no_predecessor_in_file(tmp_path):
    path = _saved(tmp_path)
    _edit_extension(path, _set("gate_inputs", ["fb", "hg"], node="p"))
    with pytest.raises(ValidationError, match=r"bad.nir', node 'p', field 'gate_inputs': .*port a"):
        neuro_hw.load(path)
    _edit_extension(path, _set("gate_inputs", ["w1"], node="p"))
    with pytest.raises(ValidationError, match=r"bad.nir', node 'p', field 'gate_inputs': gate_inputs \['w1'\]"):
        neuro_hw.load(path)


def test_standin_without_its_extension_entry_is_refused(tmp_path):
    """A stand-in whose entry is gone must not load as a plain identity Scale (it would change the circuit)."""
    path = _saved(tmp_path)

    def drop(ext):
        del ext["nodes"]["sp"]

    _edit_extension(path, drop)
    with pytest.raises(CircuitFileError, match="node 'sp', field 'nodes': .*Scale stand-in of a GradedNeuron"):
        neuro_hw.load(path)
    path = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        del f["neuro_hw"]
    with pytest.raises(CircuitFileError, match="stand-in of a"):
        neuro_hw.load(path)


def _plain_circuit():
    nodes = {
        "x": nir.Input(np.array([2])),
        "w": nir.Linear(np.array([[0.5, -0.25], [0.0, 1.0]])),
        "n": nir.LIF(
            tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2)
        ),
    }
    circuit = neuro_hw.Circuit(nodes, [("x", "w"), ("w", "n")])
    circuit.add_plasticity("w", "dw = 0.01*x1*y0 - 0.02*y1*x0", traces={"x1": (1.0, 0.02)}, t_epoch=4)
    return circuit


def test_version_1_files_still_load(tmp_path):
    circuit = _plain_circuit()
    path = neuro_hw.save(circuit, tmp_path / "v1.nir")
    with h5py.File(path, "a") as f:
        f["neuro_hw"].attrs["format_version"] = 1
        ext = json.loads(f["neuro_hw"].attrs["extension"])
        del ext["nodes"]  # version 1 had no graded nodes
        f["neuro_hw"].attrs["extension"] = json.dumps(ext)
    loaded = neuro_hw.load(path)
    assert loaded.hash() == circuit.hash()
    assert str(loaded.plasticity["w"].rules["dw"]) == "dw = 0.01*x1*y0 - 0.02*y1*x0"
    with h5py.File(path, "a") as f:
        f["neuro_hw"].attrs["format_version"] = 4
    with pytest.raises(CircuitFileError, match="version 4 is not supported"):
        neuro_hw.load(path)


def test_describe_and_info_show_the_activations(tmp_path, capsys):
    circuit = small_circuit()
    lines = {line.split()[0]: line for line in circuit.describe().splitlines()[1:] if "in=" in line}
    assert lines["h"].split()[1] == "GradedNeuron" and lines["h"].endswith("clipped_relu, clip=1")
    assert lines["o"].endswith("identity")
    assert lines["sp"].endswith("softplus, beta=2")
    assert lines["p"].split()[1] == "ProductNeuron"
    assert lines["p"].endswith("a * clipped_relu_derivative(b, clip=1), b from hg")
    path = neuro_hw.save(circuit, tmp_path / "info.nir")
    assert cli_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "clipped_relu, clip=1" in out and "softplus, beta=2" in out and "b from hg" in out


# --- modulator names -----------------------------------------------------------------------------------------


def _learning_circuit():
    nodes = {
        "x": nir.Input(np.array([2])),
        "w": nir.Linear(np.eye(2) * 0.5),
        "g": GradedNeuron(np.array([2]), "relu"),
        "err": nir.Input(np.array([2])),
    }
    return neuro_hw.Circuit(nodes, [("x", "w"), ("w", "g")])


@pytest.mark.parametrize("name", ["d", "w", "t", "x0", "x1", "y0", "u3", "sgn", "dw", "dd", "2e", "e-f"])
def test_reserved_or_malformed_modulator_names_are_refused(name):
    circuit = _learning_circuit()
    with pytest.raises(RuleError, match=rf"node 'w', field 'third_factor': .* bound to '{name}'"):
        circuit.add_plasticity("w", "dw = -0.01*x1", traces={"x1": "activity"}, third_factor={name: "err"})
    assert circuit.plasticity == {}  # a refused spec is not kept


def test_modulator_and_post_trace_bindings_are_accepted():
    circuit = _learning_circuit()
    spec = circuit.add_plasticity(
        "w", "dw = -0.01*x0*err_signal*x1", traces={"x1": "activity"}, third_factor={"err_signal": "err"}
    )
    assert spec.modulators == {"err_signal": "err"} and spec.bound_traces == {}
    term = spec.rules["dw"].terms[0]
    assert [f.symbol for f in term.factors] == ["x0", "err_signal", "x1"] and term.coefficient == -0.01
    assert [f.modulator for f in term.factors] == [False, True, False]
    spec = _learning_circuit().add_plasticity("w", "dw = 0.5*x1*err", third_factor={"y2": "err"})
    assert spec.bound_traces == {"y2": "err"} and spec.modulators == {}
    assert [f.symbol for f in spec.rules["dw"].terms[0].factors] == ["x1", "y2"]  # the node name aliases y2


def test_rules_using_undeclared_names_are_refused():
    with pytest.raises(RuleSyntaxError, match=r"node 'w', field 'rules': unknown symbol 'q'"):
        _learning_circuit().add_plasticity("w", "dw = -0.01*q*x1", traces={"x1": "activity"})
    with pytest.raises(RuleSyntaxError, match=r"unknown symbol 'q'.* or a third-factor name \(e, err\)"):
        _learning_circuit().add_plasticity("w", "dw = -0.01*q*x1", third_factor={"e": "err"})
    # a structural rule (as stored in files) naming a modulator the spec does not declare
    rule = {"dw": Expression("dw", (Term(1.0, (Factor("q"), Factor("x1"))),))}
    with pytest.raises(RuleError, match=r"field 'rules': unknown symbol 'q' in the rules.*\['e'\]"):
        Plasticity("x", "g", rule, third_factor={"e": "err"})
    with pytest.raises(RuleSyntaxError, match="modulator 'e' cannot carry an offset or sgn"):
        _learning_circuit().add_plasticity("w", "dw = -0.01*sgn(e)*x1", third_factor={"e": "err"})


@pytest.mark.parametrize("trace", ["x2", "y1", "y2", "y3"])
def test_activity_trace_only_on_x1(trace):
    with pytest.raises(RuleError, match=rf"node 'w', field 'traces': only x1 can carry the pre activity .*{trace}"):
        _learning_circuit().add_plasticity("w", "dw = 0.01*x1", traces={trace: "activity"})


def test_activity_trace_spec_errors():
    with pytest.raises(RuleError, match="field 'traces': trace x1: unknown spec 'act'"):
        _learning_circuit().add_plasticity("w", "dw = 0.01*x1", traces={"x1": "act"})
    spec = _learning_circuit().add_plasticity("w", "dw = 0.01*x1", traces={"x1": "activity"})
    assert spec.pre_activity and spec.traces["x1"].activity and not spec.traces["x2"].activity
    assert spec.to_dict()["traces"]["x1"] == {"impulse": 1.0, "tau": 0.02, "activity": True}
    assert "activity" not in spec.to_dict()["traces"]["x2"]


def test_activity_survives_the_mapping_form_of_a_trace():
    """``Trace.to_dict()`` fed back to ``add_plasticity(traces=...)`` keeps the pre activity (it used to be dropped)."""
    spec = _learning_circuit().add_plasticity("w", "dw = 0.01*x0*x1", traces={"x1": "activity"})
    again = _learning_circuit().add_plasticity("w", "dw = 0.01*x0*x1", traces={"x1": spec.traces["x1"].to_dict()})
    assert again.pre_activity and again == spec
    with pytest.raises(RuleError, match="field 'traces': trace x1: 'activity' must be true or false, got 'yes'"):
        _learning_circuit().add_plasticity("w", "dw = 0.01*x1", traces={"x1": {"activity": "yes"}})
    with pytest.raises(RuleError, match="only x1 can carry the pre activity"):
        _learning_circuit().add_plasticity("w", "dw = 0.01*x1", traces={"x2": {"activity": True}})
