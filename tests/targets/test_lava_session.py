"""Tests of the persistent Lava session (``neuro_hw.targets.loihi2.lava_session.LavaSession``).

A chunked session must equal one long Lava run and the emulator session chunk by chunk; closing it, a
dead worker, a raising process model and a timeout must all leave no process, shared-memory segment or
file behind.  Every test starts real Lava 0.10 processes.
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.circuits.tracking import tracking_circuit
from neuro_hw.compiler.program import ConnectionProgram, InputProgram, NeuronProgram, Program
from neuro_hw.emulator import EmulatorSession
from neuro_hw.errors import InputError
from neuro_hw.runner import stimulus_to_payloads

pytest.importorskip("lava")

from neuro_hw.targets.loihi2.lava_backend import LavaRunError, run_program_lava  # noqa: E402
from neuro_hw.targets.loihi2.lava_session import LavaSession  # noqa: E402
from neuro_hw.targets.loihi2.process_guard import SHM_NAMES_FILE, child_pids, group_members  # noqa: E402

DT = 1e-3


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must leave no child processes behind."""
    assert child_pids() == []
    yield
    assert child_pids() == []


@pytest.fixture(scope="module")
def stdp():
    """The STDP circuit, its integer payloads and the one-shot Lava run of 300 steps (seed 4)."""
    program = neuro_hw.compile(stdp_circuit(n_in=12, n_out=3), dt=DT)
    x = correlated_inputs(300, 12, seed=3)[0]
    whole = neuro_hw.run(program, {"input": x}, 300, backend="lava", seed=4)
    return program, stimulus_to_payloads(program, {"input": x}), whole


def _chunks(session, payloads, sizes):
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [
        session.step({k: v[a:b] for k, v in payloads.items()}, int(b - a))
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]


def _assert_same_chunk(lava, emu):
    """Two chunk Results agree in every recorded value, dtype, sampled step and first step."""
    assert (lava.steps, lava.batch, lava.metadata["first_step"]) == (emu.steps, emu.batch, emu.metadata["first_step"])
    for field in ("spikes", "states", "weights", "weight_steps"):
        a, b = getattr(lava, field), getattr(emu, field)
        assert a.keys() == b.keys(), field
        for key in a:
            assert a[key].dtype == b[key].dtype, (field, key)
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{field}[{key}]")


def _shm_names(session):
    path = Path(session.workdir) / SHM_NAMES_FILE
    return path.read_text().split() if path.exists() else []


def _assert_cleaned_up(pgid, workdir, shm_names=()):
    assert group_members(pgid) == []
    assert not Path(workdir).exists()
    for name in shm_names:
        assert not (Path("/dev/shm") / name.lstrip("/")).exists(), name


# ---------------------------------------------------------------------------------------------------
# chunked == whole
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", [1024, 16])
def test_chunked_session_equals_one_lava_run_and_the_emulator_session(stdp, capacity):
    program, payloads, whole = stdp
    sizes = [7, 50, 1, 242]
    with LavaSession(program, seed=4, capacity=capacity) as session:
        parts = _chunks(session, payloads, sizes)
    with EmulatorSession(program, seed=4) as emulator:
        emu_parts = _chunks(emulator, payloads, sizes)

    for key in whole.spikes:
        np.testing.assert_array_equal(np.concatenate([p.spikes[key] for p in parts], axis=1), whole.spikes[key])
    traces = {f"synapses.{t}" for t in ("x1", "x2", "y1", "y2", "y3")}
    assert set(whole.states) == {"neurons.u", "neurons.v"} | traces
    for key in whole.states:
        np.testing.assert_array_equal(np.concatenate([p.states[key] for p in parts], axis=1), whole.states[key])
    for key in ("synapses.w", "synapses.t", "synapses.d"):
        chunked = np.concatenate([p.weights[key] for p in parts], axis=1)
        np.testing.assert_array_equal(chunked, whole.weights[key][:, 1:])  # index 0 = initial weights
        np.testing.assert_array_equal(np.concatenate([p.weight_steps[key] for p in parts]), np.arange(1, 301))
    assert whole.spikes["neurons"].sum() > 0
    assert not np.array_equal(whole.weights["synapses.w"][0, 1], whole.weights["synapses.w"][0, -1])  # it learned
    assert [p.metadata["first_step"] for p in parts] == [1, 8, 58, 59]
    assert all(p.backend == "lava" and p.seed == 4 and p.batch == 1 for p in parts)
    for lava, emu in zip(parts, emu_parts, strict=True):
        _assert_same_chunk(lava, emu)


def test_two_components_and_static_weights_match_the_emulator_session():
    # tracking circuit: two independent input -> Dense -> LIF chains (two Lava runtimes), static weights
    program = neuro_hw.compile(tracking_circuit(), dt=DT)
    rng = np.random.default_rng(1)
    payloads = {name: rng.random((60, spec.n)) < 0.4 for name, spec in program.inputs.items()}
    sizes = [5, 30, 1, 24]  # capacity 8: the 30- and 24-step chunks are split into several run commands
    with LavaSession(program, seed=0, capacity=8) as session:
        parts = _chunks(session, payloads, sizes)
    with EmulatorSession(program, seed=0) as emulator:
        emu_parts = _chunks(emulator, payloads, sizes)
    for lava, emu in zip(parts, emu_parts, strict=True):
        _assert_same_chunk(lava, emu)
        assert lava.weights["w_right.w"].shape == (1, 1, 4, 8)
        np.testing.assert_array_equal(lava.weight_steps["w_right.w"], [0])
    assert sum(int(p.spikes["right"].sum()) for p in parts) > 0


def test_graded_payloads_and_delays_in_flight_across_chunks_equal_one_run():
    inp = InputProgram("in", 3, graded=True, max_payload=100)
    out = NeuronProgram("out", 2, du=100, dv=200, vth=40, bias_mant=0, bias_exp=0, u_init=0, v_init=0)
    conn = ConnectionProgram(
        "c", "in", "out", weights=[[10, 20, -5], [3, 4, 50]], delays=[[1, 3, 0], [2, 5, 1]], num_message_bits=8
    )
    program = Program(
        target="loihi2", dt=1.0, inputs={"in": inp}, neurons={"out": out}, connections={"c": conn}, circuit_hash="g"
    )
    x = np.random.default_rng(0).integers(0, 101, (80, 3))
    whole = run_program_lava(program, {"in": x}, 80)
    with LavaSession(program, capacity=7) as session:
        parts = _chunks(session, {"in": x}, [9, 1, 70])  # delayed spikes cross every chunk boundary
    np.testing.assert_array_equal(np.concatenate([p.spikes["out"] for p in parts], axis=1), whole.spikes["out"])
    for key in whole.states:
        np.testing.assert_array_equal(np.concatenate([p.states[key] for p in parts], axis=1), whole.states[key])
    for part in parts:
        np.testing.assert_array_equal(part.weights["c.w"], whole.weights["c.w"])
    assert whole.spikes["out"].sum() > 0


# ---------------------------------------------------------------------------------------------------
# robustness: nothing left behind
# ---------------------------------------------------------------------------------------------------
def _small_program(delays=((1, 2),)):
    inp = InputProgram("in", 2)
    out = NeuronProgram("out", 1, du=0, dv=0, vth=10, bias_mant=0, bias_exp=0, u_init=0, v_init=0)
    conn = ConnectionProgram("c", "in", "out", weights=[[10, 10]], delays=np.asarray(delays))
    return Program(
        target="loihi2", dt=1.0, inputs={"in": inp}, neurons={"out": out}, connections={"c": conn}, circuit_hash="x"
    )


def test_close_is_idempotent_and_leaves_nothing_behind():
    session = LavaSession(_small_program())
    pgid, workdir = session.worker_pid, session.workdir
    result = session.step({"in": np.ones((5, 2), dtype=np.int32)}, 5)
    assert result.spikes["out"].shape == (1, 5, 1) and result.spikes["out"].any()
    assert group_members(pgid)  # the worker and its Lava processes are alive between chunks
    shm = _shm_names(session)
    assert shm  # Lava's segments were recorded
    session.close()
    _assert_cleaned_up(pgid, workdir, shm)
    session.close()  # idempotent
    assert session.closed
    with pytest.raises(InputError, match="session is closed"):
        session.step({"in": np.ones((1, 2))}, 1)


def test_killed_worker_raises_lava_run_error_and_leaves_nothing_behind():
    session = LavaSession(_small_program())
    pgid, workdir = session.worker_pid, session.workdir
    session.step({"in": np.ones((3, 2))}, 3)
    shm = _shm_names(session)
    os.kill(pgid, signal.SIGKILL)  # only the worker: its Lava processes are orphaned mid-session
    with pytest.raises(LavaRunError, match="exited with status -9") as info:
        session.step({"in": np.ones((3, 2))}, 3)
    assert info.value.worker_pid == pgid
    assert session.closed
    _assert_cleaned_up(pgid, workdir, shm)
    with pytest.raises(InputError, match="session is closed"):
        session.step({"in": np.ones((3, 2))}, 3)


def test_process_model_exception_surfaces_with_its_traceback():
    # Lava's DelayDense model raises in its first run_spk for delays > 63 (and Lava then blocks)
    session = LavaSession(_small_program(delays=((1, 64),)), error_grace=0.2)
    pgid, workdir = session.worker_pid, session.workdir
    with pytest.raises(LavaRunError, match="between 0 and 63") as info:
        session.step({"in": np.ones((5, 2))}, 5)
    assert info.value.model_tracebacks and "ValueError" in info.value.model_tracebacks[0]
    assert session.closed
    _assert_cleaned_up(pgid, workdir)


def test_step_timeout_kills_the_whole_process_group():
    session = LavaSession(_small_program(), timeout=0.5)
    pgid, workdir = session.worker_pid, session.workdir
    with pytest.raises(LavaRunError, match="timed out"):
        session.step({"in": np.ones((10**5, 2))}, 10**5)  # far more than 0.5 s of steps
    assert session.closed
    _assert_cleaned_up(pgid, workdir)


def test_garbage_collected_session_is_cleaned_up():
    session = LavaSession(_small_program())
    pgid, workdir = session.worker_pid, session.workdir
    session.step({"in": np.ones((2, 2))}, 2)
    del session
    gc.collect()
    _assert_cleaned_up(pgid, workdir)


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
def test_bad_input_raises_input_error_and_keeps_the_session_usable():
    with pytest.raises(InputError, match="capacity"):
        LavaSession(_small_program(), capacity=0)
    with pytest.raises(InputError, match="single trial"):
        LavaSession(_small_program(), seed=[1, 2])
    with LavaSession(_small_program()) as session:
        with pytest.raises(InputError, match="last axis has 3 channels") as info:
            session.step({"in": np.ones((4, 3))}, 4)
        assert info.value.node == "in"
        with pytest.raises(InputError, match="fewer than steps") as info:
            session.step({"in": np.ones((2, 2))}, 4)
        assert info.value.node == "in"
        with pytest.raises(InputError, match="only 0 and 1") as info:
            session.step({"in": np.full((2, 2), 2)}, 2)
        assert info.value.node == "in"
        with pytest.raises(InputError, match="missing input"):
            session.step({}, 2)
        with pytest.raises(InputError, match="single trial"):
            session.step({"in": np.ones((2, 4, 2))}, 4)
        assert session.done == 0 and not session.closed
        result = session.step({"in": np.ones((4, 2))}, 4)  # still usable
        assert result.metadata["first_step"] == 1 and result.steps == 4
