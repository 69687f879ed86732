"""Plasticity masks in the IR: validation, the file format (an HDF5 dataset beside the JSON, format_version 3),
stock NIR readers, and clear errors for bad masks and bad files."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.errors import CircuitFileError, RuleError
from neuro_hw.ir.plasticity import Plasticity

MASK = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)


def _circuit(mask=MASK, weight=None) -> neuro_hw.Circuit:
    w = np.array([[0.5, 0.0, -0.25], [0.0, 0.75, 0.125]]) if weight is None else weight
    nodes = {
        "in": nir.Input(np.array([3])),
        "w": nir.Linear(w),
        "pop": nir.LIF(tau=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
        "out": nir.Output(np.array([2])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "w"), ("w", "pop"), ("pop", "out")])
    circuit.add_plasticity("w", "dw = 0.01*x1*y0 - 0.01*y1*x0", mask=mask)
    return circuit


def test_mask_round_trips_through_a_file_and_a_stock_reader_loads_the_static_network(tmp_path):
    circuit = _circuit()
    path = neuro_hw.save(circuit, tmp_path / "c.nir")
    loaded = neuro_hw.load(path)
    spec = loaded.plasticity["w"]
    assert spec.mask.dtype == bool and np.array_equal(spec.mask, MASK) and spec.present == 4
    assert spec == circuit.plasticity["w"] and loaded.hash() == circuit.hash()
    with h5py.File(path, "r") as f:
        assert f["neuro_hw"].attrs["format_version"] == 3
        assert f["neuro_hw/masks/0"].dtype == np.uint8
    graph = nir.read(path)  # the stock reader: the weights, absent synapses 0
    np.testing.assert_array_equal(np.asarray(graph.nodes["w"].weight) != 0, MASK)
    # without a mask the file stays at version 2 (older neuro-hw reads it)
    plain = _circuit(mask=None)
    with h5py.File(neuro_hw.save(plain, tmp_path / "p.nir"), "r") as f:
        assert f["neuro_hw"].attrs["format_version"] == 2


def test_the_mask_is_part_of_the_circuit_identity():
    other = MASK.copy()
    other[0, 1] = True  # a present synapse with weight 0
    assert _circuit().hash() != _circuit(mask=other).hash()
    assert _circuit().plasticity["w"] != _circuit(mask=other).plasticity["w"]
    assert _circuit().hash() != _circuit(mask=None).hash()


@pytest.mark.parametrize(
    ("mask", "weight", "match"),
    [
        (
            np.array([[1, 1, 1], [0, 1, 1]], bool),
            np.array([[0.5, 0, -0.25], [0.3, 0.75, 0.125]]),
            r"absent synapse.*\(1, 0\) = 0.3.*must be 0",
        ),
        (np.ones((3, 2), bool), None, r"mask has shape \(3, 2\), the weight matrix \(2, 3\)"),
        (np.array([[1, 0, 2], [0, 1, 1]]), None, r"only 0 and 1; entry \(0, 2\) is 2"),
        (np.array([[1, 0, np.nan], [0, 1, 1]]), None, r"only 0 and 1; entry \(0, 2\) is nan"),
        (np.array(["1", "0"]), None, r"2-D"),
        (np.array([["a", "b", "c"], ["a", "b", "c"]]), None, r"0/1 \(or bool\) values"),
        (np.zeros((2, 3)), np.zeros((2, 3)), r"the mask has no synapse"),
    ],
)
def test_bad_masks_are_refused_naming_node_and_field(mask, weight, match):
    with pytest.raises(RuleError, match=match) as info:
        _circuit(mask=mask, weight=weight)
    assert info.value.node == "w" and info.value.field == "mask"


def test_w_bounds_apply_to_present_synapses_only():
    circuit = _circuit(weight=np.array([[0.5, 0.0, 0.25], [0.0, 0.75, 0.125]]))
    circuit.add_plasticity("w", "dw = 0.01*x1*y0", mask=MASK, w_bounds=(0.1, 1.0))  # absent zeros are no weights
    with pytest.raises(RuleError, match="outside w_bounds"):
        circuit.add_plasticity("w", "dw = 0.01*x1*y0", w_bounds=(0.1, 1.0))  # without the mask the zeros count


def _replace_mask(f, data) -> None:
    del f["neuro_hw/masks/0"]
    f.create_dataset("neuro_hw/masks/0", data=data)


def _edit(path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f["neuro_hw/masks/0"].__setitem__((0, 0), 7), r"only 0 and 1; entry \(0, 0\) is 7"),
        (lambda f: f.__delitem__("neuro_hw/masks/0"), r"mask dataset '/neuro_hw/masks/0' is missing"),
        (lambda f: f["neuro_hw"].attrs.__setitem__("format_version", 2), r"needs format_version 3"),
        (lambda f: _replace_mask(f, np.ones((2, 3))), r"2-D integer 0/1 array, got dtype float64"),
        (
            lambda f: _replace_mask(f, np.ones((2, 2), np.uint8)),
            r"marker shape \[2, 3\] differs from the mask array's shape \(2, 2\)",
        ),
        (lambda f: _replace_mask(f, np.ones((2, 3), np.uint8)), r"marker counts 4 present synapses, the array has 6"),
    ],
)
def test_bad_mask_in_a_file_names_file_node_and_field(tmp_path, edit, match):
    path = neuro_hw.save(_circuit(), tmp_path / "c.nir")
    _edit(path, edit)
    with pytest.raises((CircuitFileError, RuleError), match=match) as info:
        neuro_hw.load(path)
    assert info.value.file == str(path) and info.value.node == "w" and info.value.field == "mask"


def test_a_version_2_reader_refuses_a_masked_file_rather_than_dropping_the_mask(tmp_path, monkeypatch):
    path = neuro_hw.save(_circuit(), tmp_path / "c.nir")
    monkeypatch.setattr(neuro_hw.ir.io, "READABLE_VERSIONS", (1, 2))
    with pytest.raises(CircuitFileError, match="format_version 3 is not supported"):
        neuro_hw.load(path)


def test_from_dict_needs_the_array_a_marker_declares():
    spec = _circuit().plasticity["w"]
    with pytest.raises(RuleError, match="declares a mask but no mask array"):
        Plasticity.from_dict(spec.to_dict())
    with pytest.raises(RuleError, match="without a 'mask' marker"):
        Plasticity.from_dict(_circuit(mask=None).plasticity["w"].to_dict(), MASK)
    assert Plasticity.from_dict(spec.to_dict(), MASK.astype(np.uint8)) == spec


def test_a_spec_keeps_its_own_read_only_copy_of_the_mask():
    mask = MASK.copy()
    circuit = _circuit(mask=mask)
    before = circuit.hash()
    mask[0, 0] = False  # the caller's array changes after the check: the circuit does not
    assert circuit.hash() == before and circuit.plasticity["w"].mask[0, 0]
    with pytest.raises(ValueError, match="read-only"):
        circuit.plasticity["w"].mask[0, 0] = False


def test_a_null_mask_marker_is_refused_not_read_as_no_mask(tmp_path):
    path = neuro_hw.save(_circuit(), tmp_path / "c.nir")
    with h5py.File(path, "a") as f:
        ext = json.loads(f["neuro_hw"].attrs["extension"])
        ext["plasticity"]["w"]["mask"] = None
        f["neuro_hw"].attrs["extension"] = json.dumps(ext)
    with pytest.raises(RuleError, match="got null") as info:
        neuro_hw.load(path)
    assert info.value.node == "w" and info.value.field == "mask"


def test_an_unreadable_mask_dataset_names_node_and_field(tmp_path):
    path = neuro_hw.save(_circuit(), tmp_path / "c.nir")
    with h5py.File(path, "a") as f:
        del f["neuro_hw/masks/0"]
        f["neuro_hw/masks/0"] = h5py.SoftLink("/neuro_hw/masks/0")  # a link to itself
    with pytest.raises(CircuitFileError) as info:
        neuro_hw.load(path)
    assert info.value.node == "w" and info.value.field == "mask"
