"""neuro_hw.runner: stimulus conversion shared by the fixed-point backends."""

from __future__ import annotations

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import stdp_circuit
from neuro_hw.errors import InputError
from neuro_hw.runner import binary_to_bool, stimulus_to_payloads


@pytest.mark.parametrize(
    "values, first_bad",
    [
        ([0.0, 1.0, 1.0, 0.0], -1),
        ([0, 1, 2], 2),
        ([0, -1, 1], 1),
        ([0.0, 1.0, 0.5], 2),
        ([1.0, np.nan], 1),
        ([0.0, np.inf, 1.0], 1),
        ([1.0, 5e-324], 1),  # the smallest subnormal is not 0
        (np.array([0, 1, 2**32], dtype=np.int64), 2),  # v * (v - 1) wraps in int64 but is not 0
        (np.array([0, 2**63 - 1, 1], dtype=np.int64), 1),
        (np.array([1, 255], dtype=np.uint8), 1),
        (np.array([0.0, 1.0, 0.25], dtype=np.float32), 2),
    ],
)
def test_binary_to_bool_finds_the_first_value_that_is_not_0_or_1(values, first_bad):
    flat = np.asarray(values)
    out = np.empty(flat.shape, dtype=bool)
    assert binary_to_bool(flat, out) == first_bad
    if first_bad < 0:
        assert out.tolist() == [bool(v) for v in flat]


def test_spike_stimuli_become_bool_and_bad_values_are_named():
    program = neuro_hw.compile(stdp_circuit(n_in=4), dt=1e-3)
    name = next(iter(program.inputs))
    rng = np.random.default_rng(0)
    x = (rng.random((3, 50, 4)) < 0.3).astype(np.float64)
    payload = stimulus_to_payloads(program, {name: x})[name]
    assert payload.dtype == bool and payload.shape == x.shape and np.array_equal(payload, x != 0)
    x[2, 17, 3] = 0.5
    x[2, 40, 0] = 3.0
    with pytest.raises(
        InputError, match=r"node .input.*spike inputs must be 0 or 1 .*; value 0.5 at index \(2, 17, 3\)"
    ):
        stimulus_to_payloads(program, {name: x})


def test_hardware_backend_is_refused_plainly():
    from neuro_hw.errors import BackendUnavailableError

    program = neuro_hw.compile(stdp_circuit(n_in=4), dt=1e-3)
    x = np.zeros((5, 4))
    with pytest.raises(BackendUnavailableError, match="no Loihi 2 hardware backend"):
        neuro_hw.run(program, {"input": x}, 5, backend="lava-hw")
    with pytest.raises(BackendUnavailableError, match="no Loihi 2 hardware backend"):
        neuro_hw.run_circuit(stdp_circuit(n_in=4), {"input": x}, 5, 1e-3, backend="lava-hw")


def test_one_list_of_backends():
    from neuro_hw.backends import BACKENDS, PROGRAM_BACKENDS

    assert list(BACKENDS) == ["reference", "emulator", "lava", "lava-float", "lava-hw"]
    assert "reference" not in PROGRAM_BACKENDS
    with pytest.raises(InputError, match="unknown backend"):
        neuro_hw.run_circuit(stdp_circuit(n_in=4), {"input": np.zeros((5, 4))}, 5, 1e-3, backend="gpu")
