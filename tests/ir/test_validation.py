"""Circuits built in Python: every kind of bad input gets one clear error naming node and field."""

import math

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.errors import RuleError, RuleSyntaxError, UnsupportedNodeError, ValidationError


def lif(n, **overrides):
    params = dict(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    params.update(overrides)
    return nir.LIF(**params)


def chain(weight=None, neuron=None):
    weight = np.full((2, 3), 0.5) if weight is None else weight
    return {
        "in": nir.Input(np.array([3])),
        "syn": nir.Linear(weight),
        "pop": neuron or lif(2),
        "out": nir.Output(np.array([2])),
    }, [("in", "syn"), ("syn", "pop"), ("pop", "out")]


def test_valid_chain_and_description():
    circuit = neuro_hw.Circuit(*chain())
    assert circuit.input_names == ["in"] and circuit.output_names == ["out"]
    assert "syn" in circuit.describe()
    assert len(circuit.hash()) == 64


def test_hash_changes_with_parameters_and_rules():
    a = neuro_hw.Circuit(*chain())
    b = neuro_hw.Circuit(*chain(weight=np.full((2, 3), 0.25)))
    assert a.hash() != b.hash()
    c = neuro_hw.Circuit(*chain())
    c.add_plasticity("syn", "dw = 0.01*x1*y0")
    assert c.hash() != a.hash()


def test_shape_mismatch_on_edge():
    nodes, edges = chain(weight=np.ones((2, 4)))
    with pytest.raises(ValidationError, match=r"node 'syn', field 'input': shape mismatch on edge 'in' -> 'syn'"):
        neuro_hw.Circuit(nodes, edges)


@pytest.mark.parametrize("field, value", [("r", np.array([1.0, np.nan])), ("v_threshold", np.array([np.inf, 1.0]))])
def test_non_finite_parameters(field, value):
    nodes, edges = chain(neuron=lif(2, **{field: value}))
    with pytest.raises(ValidationError, match=rf"node 'pop', field '{field}': .*must be finite"):
        neuro_hw.Circuit(nodes, edges)


def test_non_positive_time_constant():
    nodes, edges = chain(neuron=lif(2, tau=np.array([0.02, 0.0])))
    with pytest.raises(ValidationError, match=r"node 'pop', field 'tau': time constants must be > 0"):
        neuro_hw.Circuit(nodes, edges)


def test_edge_to_missing_node():
    nodes, edges = chain()
    with pytest.raises(ValidationError, match=r"node 'ghost', field 'edges'"):
        neuro_hw.Circuit(nodes, edges + [("pop", "ghost")])


def test_pooling_without_a_shape_is_refused():
    """Pooling nodes are supported (issue 16), but nir gives them no shape: without a predecessor to infer it from,
    the error names the node and says why."""
    nodes, edges = chain()
    nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    with pytest.raises(ValidationError, match="node 'pool', field 'input_type': the input shape of this SumPool2d"):
        neuro_hw.Circuit(nodes, edges)


def test_nested_graph_node_is_refused():
    nodes, edges = chain()
    nodes["sub"] = nir.NIRGraph(nodes={}, edges=[], type_check=False)
    with pytest.raises(UnsupportedNodeError, match="node 'sub': nested graphs must be flattened first"):
        neuro_hw.Circuit(nodes, edges)


def test_plasticity_on_non_weight_node():
    circuit = neuro_hw.Circuit(*chain())
    with pytest.raises(RuleError, match="node 'pop': plasticity must attach to a Linear or Affine node"):
        circuit.add_plasticity("pop", "dw = x1*y0", pre="syn", post="out")
    assert circuit.plasticity == {}


def test_plasticity_population_checks():
    circuit = neuro_hw.Circuit(*chain())
    with pytest.raises(RuleError, match="field 'post': post population 'in' is not fed by 'syn'"):
        circuit.add_plasticity("syn", "dw = x1*y0", pre="in", post="in")
    with pytest.raises(RuleError, match="field 'third_factor': third-factor source 'in' has 3 values"):
        circuit.add_plasticity("syn", "dw = x1*y2", third_factor={"y2": "in"})
    with pytest.raises(RuleError, match="third factor 'in' is bound to 'x1'"):
        circuit.add_plasticity("syn", "dw = x1*y0", third_factor={"x1": "in"})
    assert circuit.plasticity == {}


def test_rule_errors_name_the_synapse():
    circuit = neuro_hw.Circuit(*chain())
    with pytest.raises(RuleSyntaxError, match=r"node 'syn', field 'rules': unknown symbol 'v'"):
        circuit.add_plasticity("syn", "dw = 0.1*v*y0")
    with pytest.raises(RuleError, match="t_epoch must be an integer >= 1"):
        circuit.add_plasticity("syn", "dw = x1*y0", t_epoch=0)
    with pytest.raises(RuleError, match="outside w_bounds"):
        circuit.add_plasticity("syn", "dw = x1*y0", w_bounds=(0.0, 0.4))
    with pytest.raises(RuleError, match="w_min < w_max"):
        circuit.add_plasticity("syn", "dw = x1*y0", w_bounds=(1.0, 0.0))
    with pytest.raises(RuleError, match="trace tau must be >= 0"):
        circuit.add_plasticity("syn", "dw = x1*y0", traces={"x1": (1.0, -1.0)})
    with pytest.raises(RuleError, match="unknown trace"):
        circuit.add_plasticity("syn", "dw = x1*y0", traces={"x3": (1.0, 1.0)})
    with pytest.raises(RuleError, match="two rules for target 'dw'"):
        circuit.add_plasticity("syn", ["dw = x1*y0", "dw = y1*x0"])


def test_third_factor_by_name_and_infinite_trace():
    nodes, edges = chain()
    nodes["reward"] = nir.Input(np.array([2]))
    circuit = neuro_hw.Circuit(nodes, edges)
    spec = circuit.add_plasticity(
        "syn", "dw = 0.5*x1*reward - 0.001*w", third_factor={"y2": "reward"}, traces={"x1": (1.0, math.inf)}
    )
    assert str(spec.rules["dw"]) == "dw = 0.5*x1*y2 - 0.001*w"
    assert circuit.input_names == ["in", "reward"]


def test_nested_graph_is_flattened():
    inner = nir.NIRGraph(
        nodes={"i": nir.Input(np.array([2])), "p": lif(2), "o": nir.Output(np.array([2]))},
        edges=[("i", "p"), ("p", "o")],
    )
    nodes, edges = chain()
    nodes = {"in": nodes["in"], "syn": nodes["syn"], "sub": inner, "out": nodes["out"]}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "syn"), ("syn", "sub"), ("sub", "out")], type_check=False)
    circuit = neuro_hw.Circuit.from_nir(graph)
    assert "sub.p" in circuit.nodes
    assert ("syn", "sub.i") in circuit.edges and ("sub.o", "out") in circuit.edges
