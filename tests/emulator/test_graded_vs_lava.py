"""Differential tests of graded circuits: emulator vs Lava 0.10 fixed_pt, zero mismatches.

Random Programs with graded populations of every datapath (identity, relu, clip, hard softplus; product
gates identity / step / window / half step; shifts), graded payloads into Dense, DelayDense and LIF,
recurrent graded connections, and plastic connections whose x1 is the graded pre payload
(``GradedSpikeCfg.OVERWRITE``: payloads above 254 and negative ones included, where Lava's uint8 wraps)
with third factors sent by graded populations.  Lava lowers the plain populations to its own
GradedVec / GradedReluVec / ProdNeuron and the rest to the custom GradedNeuron process.
"""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import assert_identical, learning, program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuro_hw.compiler.checks import check_program
from neuro_hw.compiler.program import ConnectionProgram, GradedProgram, InputProgram, NeuronProgram
from neuro_hw.emulator import run_program_emulator
from neuro_hw.targets.loihi2 import lava_backend

pytestmark = pytest.mark.lava

RULES = [
    "2^-3*x0*x1*y2 - 2^-3*x0*x1*y3",
    "-1*2^-7*u0*x0*y2*x1 + 3*2^-7*u0*x0*y3*x1",
    "2^-2*y0*x1 - 2^-4*u0*w",
    "5*2^-6*x0*x1*y2 - 2^-5*x0*(y3+2)",
    "2^-4*u0*x1*y2",
]


@st.composite
def graded_programs(draw, steps: int = 60):  # type: ignore[no-untyped-def]
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    inputs, neurons, conns, data = [], [], [], {}
    n_in = int(r.integers(2, 6))
    max_payload = int(draw(st.sampled_from([16, 254, 600])))
    inputs.append(InputProgram("g", n_in, graded=True, max_payload=max_payload))
    data["g"] = r.integers(0, max_payload + 1, (steps, n_in)) * (r.random((steps, n_in)) < 0.6)
    inputs.append(InputProgram("s", 3))
    data["s"] = (r.random((steps, 3)) < 0.3).astype(np.int64)
    sources = ["g", "s"]
    n_pops = draw(st.integers(2, 4))
    for p in range(n_pops):
        n = int(r.integers(2, 6))
        act = draw(st.sampled_from(["identity", "relu", "clip", "hard_softplus"]))
        gate = draw(st.sampled_from(["none", "none", "identity", "step", "window", "half_step"]))
        lo, hi = int(r.integers(-5, 20)), int(r.integers(20, 300))
        pop = GradedProgram(
            f"p{p}", n, act, clip=int(r.integers(0, 400)) if act in ("clip", "hard_softplus") else 0,
            knee=int(r.integers(0, 60)) if act == "hard_softplus" else 0, gate=gate, gate_lo=lo, gate_hi=hi,
            shift=int(r.integers(0, 5)) if gate != "none" else 0,
        )  # fmt: skip
        if act == "clip" and pop.clip == 0:
            pop.clip = 1
        neurons.append(pop)
        ports = ["a", "b"] if gate != "none" else ["a"]
        for port in ports:
            src = sources[int(r.integers(len(sources)))]
            n_src = data[src].shape[1] if src in data else next(q.n for q in neurons if q.name == src)
            graded_src = src != "s"
            delayed = bool(r.random() < 0.25)
            conns.append(
                ConnectionProgram(
                    f"c{p}{port}",
                    src,
                    f"p{p}",
                    weights=r.integers(-40, 41, (n, n_src)),
                    weight_exp=int(r.integers(-3, 2)),
                    num_message_bits=24 if graded_src else 0,
                    port=port,
                    delays=r.integers(0, 4, (n, n_src)) if delayed else None,
                )  # fmt: skip
            )
        if r.random() < 0.3:  # a recurrent graded connection
            conns.append(
                ConnectionProgram(
                    f"rec{p}",
                    f"p{p}",
                    f"p{p}",
                    weights=r.integers(-8, 9, (n, n)),
                    weight_exp=-2,
                    num_message_bits=24,
                )  # fmt: skip
            )
        sources.append(f"p{p}")
    neurons.append(NeuronProgram("lif", 3, du=100, dv=200, vth=30, bias_mant=0, bias_exp=0, u_init=0, v_init=0))
    conns.append(
        ConnectionProgram("to_lif", "p0", "lif", weights=r.integers(-20, 30, (3, neurons[0].n)), num_message_bits=24)
    )
    # plastic connections: graded pre activity, third factors from graded populations of the post's size
    n_plastic = draw(st.integers(1, 2))
    for k in range(n_plastic):
        pre = draw(st.sampled_from(["g"] + [q.name for q in neurons if isinstance(q, GradedProgram)]))
        n_pre = data[pre].shape[1] if pre in data else next(q.n for q in neurons if q.name == pre)
        n_post = int(r.integers(2, 5))
        post = f"post{k}"
        neurons.append(GradedProgram(post, n_post, "identity"))
        conns.append(
            ConnectionProgram(f"drive{k}", "s", post, weights=r.integers(0, 40, (n_post, 3)), num_message_bits=0)
        )
        factors = {}
        for trace in draw(st.sampled_from([("y2",), ("y2", "y3"), ("y1", "y2", "y3")])):
            name = f"f{k}{trace}"
            kind = draw(st.sampled_from(["relu", "clip"]))
            neurons.append(GradedProgram(name, n_post, kind, clip=int(r.integers(1, 200)) if kind == "clip" else 0))
            src = sources[int(r.integers(len(sources)))]
            n_src = data[src].shape[1] if src in data else next(q.n for q in neurons if q.name == src)
            conns.append(
                ConnectionProgram(
                    f"tf{k}{trace}",
                    src,
                    name,
                    weights=r.integers(-30, 31, (n_post, n_src)),
                    num_message_bits=0 if src == "s" else 24,
                    weight_exp=-1,
                )  # fmt: skip
            )
            factors[trace] = name
        t_epoch = int(draw(st.sampled_from([1, 2, 5, 7])))
        lp = learning(
            {"dw": draw(st.sampled_from(RULES))},
            {"x2": float(r.integers(0, 20))},
            {"x1": int(draw(st.sampled_from([65535, 8, 1]))), "x2": 6},
            t_epoch=t_epoch,
            third_factor=factors,
            pre_activity=True,
        )
        conns.append(
            ConnectionProgram(
                f"plastic{k}",
                pre,
                post,
                weights=r.integers(-60, 61, (n_post, n_pre)),
                num_message_bits=24,
                learning=lp,
                sign_mode=draw(st.sampled_from(["mixed", "excitatory"])),
            )  # fmt: skip
        )
    for c in conns:
        if c.sign_mode == "excitatory":
            c.weights = np.abs(c.weights)
    prog = program(inputs, neurons, conns)
    check_program(prog)
    seeds = [int(s) for s in r.integers(0, 1000, 2)]
    return prog, data, steps, seeds


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graded_programs())
def test_random_graded_programs_match_lava(case):
    prog, data, steps, seeds = case
    emu = run_program_emulator(prog, data, steps, seed=seeds)
    lava = lava_backend.run_program_lava(prog, data, steps, seed=seeds)
    kinds = {p.lava_process for p in prog.graded.values()}
    assert_identical(emu, lava, f"graded program with {sorted(kinds)}")


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graded_programs(steps=120))
def test_many_random_graded_programs_match_lava(case):
    prog, data, steps, seeds = case
    emu = run_program_emulator(prog, data, steps, seed=seeds)
    lava = lava_backend.run_program_lava(prog, data, steps, seed=seeds)
    assert_identical(emu, lava, "graded program")
