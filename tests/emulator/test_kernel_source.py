"""What the generated step kernel contains, and so what a new circuit costs to compile.

numba compiles one step kernel per circuit structure, and its time grows faster than the kernel's size (a
~60-connection seed circuit took 294 s with its kernels in line, 46 s as calls; docs/emulator.md).  Tests do not
time it; they check the properties that keep it small and shared:

* bit widths, rounding, impulses, rule coefficients and what is recorded are runtime arguments: a precision
  sweep over one circuit compiles one kernel, not one per (weight bits, trace bits) pair, and training (spikes
  recorded) shares it with exact checks (everything recorded);
* plastic connections whose rules have one form share one rule function;
* the generated ``run_chunk`` has no loop of its own besides trials and steps (every loop is a compiled kernel
  it calls), so its size grows with the circuit's nodes only.
"""

from __future__ import annotations

import re

import nir
import numpy as np

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.emulator.engine import EmulatorRun


def _source(program) -> str:  # noqa: ANN001
    return EmulatorRun(program, [0, 1]).kernel.source


def _variant(**settings):  # noqa: ANN003, ANN202
    return neuro_hw.load_target("loihi2").variant(**settings)


def test_a_precision_sweep_shares_one_kernel():
    circuit = stdp_circuit(n_in=20, n_out=2)
    sources = set()
    for bits, rounding in (((8, 7), "stochastic"), ((5, 4), "stochastic"), ((3, 3), "nearest"), ((6, 7), "nearest")):
        target = _variant(**{"weights.bits": bits[0], "learning.trace_bits": bits[1], "learning.rounding": rounding})
        sources.add(_source(neuro_hw.compile(circuit, target=target, dt=1e-3)))
    # other coefficients, impulses and time constants of the same rule form
    other = stdp_circuit(n_in=20, n_out=2, a_plus=0.02, a_minus_ratio=1.5, tau_plus=0.01, tau_minus=0.04)
    sources.add(_source(neuro_hw.compile(other, dt=1e-3)))
    # recording spikes only (training) or everything (exact checks) is an argument too
    sources.add(EmulatorRun(neuro_hw.compile(other, dt=1e-3), [0], record="spikes").kernel.source)
    assert len(sources) == 1


def test_the_numbers_are_arguments_and_change_the_run():
    """The shared kernel really reads them: the same structure at other widths gives other weights (a kernel
    that kept one set of numbers as literals would give the same)."""
    x = correlated_inputs(800, 20, seed=1)[0]
    circuit = stdp_circuit(n_in=20, n_out=2)
    finals = []
    for bits in ((8, 7), (5, 4)):
        target = _variant(**{"weights.bits": bits[0], "learning.trace_bits": bits[1]})
        program = neuro_hw.compile(circuit, target=target, dt=1e-3)
        res = neuro_hw.run(program, {"input": x}, 800, backend="emulator", seed=0, weights_every=800)
        finals.append(res.weights["synapses.w"][0, -1])
        assert res.states["synapses.x1"].max() <= 2 ** bits[1] - 1  # traces saturate at the variant's width
    assert finals[0].max() > 31 >= finals[1].max()  # 8-bit weights grow past what 5 bits hold


def _two_plastic_layers(rate_1: float, rate_2: float) -> neuro_hw.Circuit:
    rng = np.random.default_rng(0)
    ones = np.ones(4)

    def lif():  # noqa: ANN202
        return nir.LIF(tau=0.02 * ones, r=20 * ones, v_leak=0 * ones, v_threshold=ones, v_reset=0 * ones)

    nodes = {
        "in": nir.Input(np.array([4])),
        "w1": nir.Linear(rng.uniform(0, 0.5, (4, 4))),
        "l1": lif(),
        "w2": nir.Linear(rng.uniform(0, 0.5, (4, 4))),
        "l2": lif(),
    }
    c = neuro_hw.Circuit(nodes, [("in", "w1"), ("w1", "l1"), ("l1", "w2"), ("w2", "l2")])
    for name, rate in (("w1", rate_1), ("w2", rate_2)):
        c.add_plasticity(name, f"dw = {rate!r}*x1*y0 - {rate!r}*y1*x0", traces={"x1": (1.0, 0.02), "y1": (1.0, 0.02)},
                         w_bounds=(0.0, 1.0))  # fmt: skip
    return c


def test_rules_of_one_form_share_one_function():
    same_form = _source(neuro_hw.compile(_two_plastic_layers(0.002, 0.03), dt=1e-3))
    assert len(re.findall(r"^def apply_rules_", same_form, flags=re.M)) == 1
    assert len(re.findall(r"= apply_rules_\w+\(", same_form)) == 2  # called by both connections


def test_the_step_loop_has_no_loops_of_its_own():
    program = neuro_hw.compile(_two_plastic_layers(0.002, 0.03), dt=1e-3)
    source = _source(program)
    run_chunk = source[source.index("def run_chunk(") :]
    loops = [line.strip() for line in run_chunk.splitlines() if line.strip().startswith(("for ", "while "))]
    assert loops == ["for b in range(b0, b1):", "for row in range(steps):"]


def test_the_first_call_of_a_kernel_holds_its_cache_lock(tmp_path, monkeypatch):
    """While one process compiles a kernel (first call), another process asking for the same lock waits; after
    the first call the lock is free again and the function is compiled."""
    import subprocess
    import sys

    from neuro_hw.emulator import codegen

    monkeypatch.setenv("NEURO_HW_CACHE", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})
    module = codegen.load_generated("from numba import njit\n\n@njit\ndef f(x):\n    return x + 1\n", "locktest")
    lock = module.__file__.replace(".py", ".lock")
    probe = ("import fcntl, sys\nh = open(sys.argv[1], 'a')\ntry:\n    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    print('free')\nexcept BlockingIOError:\n    print('held')\n")  # fmt: skip

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", probe, lock], capture_output=True, text=True).stdout.strip()

    with codegen.compile_lock(module):
        assert other_process() == "held"
        assert module.f(1) == 2
    assert other_process() == "free" and module.f.signatures


def test_a_changed_kernel_module_flushes_the_fixed_kernels_cache(tmp_path, monkeypatch):
    """numba keys a cached function by its own file; a fixed kernel cached before an edit of a module it calls
    (intmath.py) would keep the old code.  The kernel modules' fingerprint is stamped beside their cache, and a
    different one flushes the cache index (a toy cached function stands in for the fixed kernels here)."""
    import importlib.util

    from neuro_hw.emulator.step_kernel import _invalidate_stale_kernel_caches

    (tmp_path / "toy_kernel.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
    )
    spec = importlib.util.spec_from_file_location("toy_kernel", tmp_path / "toy_kernel.py")
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    assert toy.f(1) == 2
    cache_file = toy.f._cache._cache_file
    assert cache_file._load_index()  # compiled and cached
    _invalidate_stale_kernel_caches([toy.f], "fingerprint-a")
    stamp = tmp_path / "__pycache__" / "neuro_hw_kernel_modules.fingerprint"
    assert stamp.read_text() == "fingerprint-a" and not cache_file._load_index()  # flushed: recompiled on next use
    assert toy.f.py_func(1) == 2
    toy.f.recompile()  # caches again
    assert cache_file._load_index()
    _invalidate_stale_kernel_caches([toy.f], "fingerprint-a")  # unchanged modules: the cache stays
    assert cache_file._load_index()


def test_record_modes_share_the_kernel_when_a_trace_is_not_read():
    """A trace with an impulse that no rule reads is still kept when only spikes are recorded, so the trace layout
    (and the rule function) is the same in both modes."""
    from emulator_cases import learning, lif, program

    from neuro_hw.compiler.program import ConnectionProgram, InputProgram

    lp = learning({"dw": "2^-3*x1*y0 - 2^-3*y1*x0"}, {"x1": 8.0, "y1": 8.0, "x2": 4.0}, {"x1": 4, "y1": 4, "x2": 4})
    conn = ConnectionProgram("c", "in", "p", np.full((2, 3), 4), learning=lp)
    prog = program(inputs=[InputProgram("in", 3)], neurons=[lif("p", 2)], connections=[conn])
    assert EmulatorRun(prog, [0], record="all").kernel.source == EmulatorRun(prog, [0], record="spikes").kernel.source
