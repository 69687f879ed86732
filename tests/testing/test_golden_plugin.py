"""Golden traces (atomic, refused for other circuits, update flow) and the pytest --target plugin."""

import pytest

import neuro_hw
from neuro_hw.backends import lava_missing
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.testing.golden import GoldenMismatchError, GoldenMissingError, check_golden, record_golden

DT = 1e-3


def run(seed_circuit=0, steps=300):
    circuit = stdp_circuit(n_in=8, n_out=2, seed=seed_circuit)
    return neuro_hw.simulate(circuit, {"input": correlated_inputs(steps, 8, seed=4)}, steps, DT, record="all")


def test_golden_round_trip_update_and_refusal(tmp_path):
    path = tmp_path / "g.h5"
    result = run()
    with pytest.raises(GoldenMissingError, match="no golden trace recorded yet"):
        check_golden(result, path)
    record_golden(result, path)
    assert not list(tmp_path.glob("*.tmp"))
    assert check_golden(run(), path).passed
    changed = run()
    changed.weights["synapses.w"][0, -1, 0, 0] += 1e-6
    with pytest.raises(AssertionError, match="(?s)differs from golden trace.*synapses"):
        check_golden(changed, path)
    with pytest.raises(GoldenMismatchError, match="field 'circuit_hash': golden was recorded with circuit_hash"):
        check_golden(run(seed_circuit=1), path)
    check_golden(changed, path, update=True)  # intended change: re-record
    assert check_golden(changed, path).passed


@pytest.fixture
def emulator_imported():
    """pytester runs pytest in this process and then drops every module imported since its snapshot (taken when the
    ``pytester`` fixture is set up); numba's lazily imported typing modules would then register twice in a later
    test ("duplicate registration for PolynomialType"), so the emulator runs once before that snapshot."""
    neuro_hw.run_circuit(stdp_circuit(n_in=6, n_out=2), {"input": correlated_inputs(20, 6)}, 20, DT, "emulator")


def test_plugin_target_option_fixture_and_hardware_marker(emulator_imported, pytester):
    pytester.makepyfile(
        """
        import numpy as np, pytest
        from neuro_hw.circuits.stdp import stdp_circuit, correlated_inputs

        def test_runs_on_target(target):
            c = stdp_circuit(n_in=6, n_out=2)
            r = target.run(c, {"input": correlated_inputs(100, 6)}, 100, 1e-3)
            assert r.backend == target.backend

        @pytest.mark.hardware
        def test_needs_board(target):
            raise AssertionError("must be skipped")

        @pytest.mark.fixed_point
        def test_fixed_only(target):
            assert target.fixed_point

        def test_golden(target, golden):
            c = stdp_circuit(n_in=6, n_out=2)
            r = target.run(c, {"input": correlated_inputs(50, 6)}, 50, 1e-3)
            golden(r, "g_" + target.backend)
        """
    )
    res = pytester.runpytest("-p", "no:cacheprovider", "--update-golden", "-rs")
    res.assert_outcomes(passed=2, skipped=2)
    res.stdout.fnmatch_lines(
        ["*needs a Loihi 2 board: neuro-hw has no Loihi 2 hardware backend*", "*fixed-point only*"]
    )
    res = pytester.runpytest("-p", "no:cacheprovider")
    res.assert_outcomes(passed=2, skipped=2)
    res = pytester.runpytest("-p", "no:cacheprovider", "--target=reference", "--target=emulator", "--update-golden")
    res.assert_outcomes(passed=5, skipped=3)  # once per backend; fixed_point skipped on reference only
    res.stdout.fnmatch_lines(["*5 passed, 3 skipped*"])
    if lava_missing() is None:
        res = pytester.runpytest("-p", "no:cacheprovider", "--target=lava", "--update-golden", "-rs")
        res.assert_outcomes(passed=3, skipped=1)
    else:
        res = pytester.runpytest("-p", "no:cacheprovider", "--target=lava", "-rs")
        res.assert_outcomes(skipped=4)
        res.stdout.fnmatch_lines(["*--target=lava cannot run here: Lava is not installed*"])
    res = pytester.runpytest("-p", "no:cacheprovider", "--target=lava-hw", "-rs")
    res.assert_outcomes(skipped=4)
    res.stdout.fnmatch_lines(["*--target=lava-hw cannot run here: neuro-hw has no Loihi 2 hardware backend*"])
