"""Program builders shared by the emulator tests (unit, batch and differential vs Lava)."""

from __future__ import annotations

import numpy as np

from neuro_hw.compiler.program import (
    ConnectionProgram,
    InputProgram,
    LearningProgram,
    NeuronProgram,
    Program,
)
from neuro_hw.emulator import first_mismatch
from neuro_hw.result import Result

TRACES = ("x1", "x2", "y1", "y2", "y3")


def lif(name: str, n: int, **kw) -> NeuronProgram:
    """A LIF population with defaults du=dv=0, vth=10, no bias, zero initial state."""
    args = dict(du=0, dv=0, vth=10, bias_mant=0, bias_exp=0, u_init=0, v_init=0)
    args.update(kw)
    return NeuronProgram(name, n, **args)


def learning(rules: dict, impulses: dict | None = None, taus: dict | None = None, **kw) -> LearningProgram:
    """A LearningProgram with all five traces given (missing ones: impulse 0, tau 0)."""
    imp = {k: 0.0 for k in TRACES}
    imp.update(impulses or {})
    tau = {k: 0 for k in TRACES}
    tau.update(taus or {})
    return LearningProgram(rules, impulses=imp, taus=tau, **kw)


def program(inputs=(), neurons=(), connections=()) -> Program:
    return Program(
        target="loihi2",
        dt=1.0,
        inputs={i.name: i for i in inputs},
        neurons={p.name: p for p in neurons},
        connections={c.name: c for c in connections},
        circuit_hash="emulator-test",
    )


def pulses(steps: int, n: int, events: dict[int, list[int]]) -> np.ndarray:
    """``(steps, n)`` 0/1 input with spikes at ``{step (1-based): [channels]}``."""
    x = np.zeros((steps, n), dtype=np.int64)
    for step, chans in events.items():
        x[step - 1, chans] = 1
    return x


def assert_identical(emu: Result, ref: Result, what: str = "") -> None:
    """Zero mismatches on every recorded variable; the message names the first one."""
    m = first_mismatch(emu, ref)
    assert m is None, f"{what}: emulator != reference -- {m}"


class CaseBook:
    """Collects independent sub-circuits (disjoint names) into one Program, so Lava starts only once."""

    def __init__(self, steps: int, seed: int = 0) -> None:
        self.steps = steps
        self.rng = np.random.default_rng(seed)
        self.inputs: list[InputProgram] = []
        self.neurons: list[NeuronProgram] = []
        self.conns: list[ConnectionProgram] = []
        self.data: dict[str, np.ndarray] = {}

    def spikes(self, name: str, n: int, rate: float) -> str:
        self.inputs.append(InputProgram(name, n))
        self.data[name] = (self.rng.random((self.steps, n)) < rate).astype(np.int64)
        return name

    def graded(self, name: str, n: int, rate: float, max_payload: int) -> str:
        self.inputs.append(InputProgram(name, n, graded=True, max_payload=max_payload))
        values = self.rng.integers(0, max_payload + 1, (self.steps, n))
        self.data[name] = values * (self.rng.random((self.steps, n)) < rate)
        return name

    def pop(self, name: str, n: int, **kw) -> str:
        self.neurons.append(lif(name, n, **kw))
        return name

    def conn(self, name: str, src: str, dst: str, weights, **kw) -> str:
        self.conns.append(ConnectionProgram(name, src, dst, np.asarray(weights), **kw))
        return name

    def program(self) -> Program:
        return program(self.inputs, self.neurons, self.conns)


def lif_dense_cases(steps: int = 200, seed: int = 1) -> CaseBook:
    """LIF + Dense / DelayDense edge cases of lava-semantics.md §2-3 as independent sub-circuits."""
    b = CaseBook(steps, seed)
    r = b.rng
    # mixed weights, du/dv decays, per-neuron bias with bias_exp=2
    b.conn(
        "mixed",
        b.spikes("i_mixed", 20, 0.1),
        b.pop("p_mixed", 10, du=400, dv=300, vth=50, bias_mant=r.integers(-50, 50, 10), bias_exp=2),
        r.integers(-100, 100, (10, 20)),
    )
    # excitatory, no decay
    b.conn(
        "exc",
        b.spikes("i_exc", 20, 0.2),
        b.pop("p_exc", 10, vth=100),
        r.integers(0, 120, (10, 20)),
        sign_mode="excitatory",
    )
    # inhibitory, full decay, large bias (bias_exp 5)
    b.conn(
        "inh",
        b.spikes("i_inh", 20, 0.2),
        b.pop("p_inh", 10, du=4095, dv=4095, vth=20, bias_mant=100, bias_exp=5),
        -r.integers(0, 120, (10, 20)),
        sign_mode="inhibitory",
    )
    # weight_exp < 0, num_weight_bits 6, weights beyond 8 bits (clipped)
    b.conn(
        "wexp",
        b.spikes("i_wexp", 20, 0.3),
        b.pop("p_wexp", 10, du=100, dv=200, vth=30),
        r.integers(-300, 300, (10, 20)),
        weight_exp=-3,
        num_weight_bits=6,
    )
    # weight_exp > 0 and num_weight_bits 4 (coarse weights)
    b.conn(
        "wexp_pos",
        b.spikes("i_wexp_pos", 15, 0.1),
        b.pop("p_wexp_pos", 6, du=1000, dv=500, vth=300),
        r.integers(-128, 128, (6, 15)),
        weight_exp=2,
        num_weight_bits=4,
    )
    # u overflow: single conditional 24-bit wrap and int32 wrap, both signs
    b.conn(
        "ovf_pos",
        b.spikes("i_ovf_pos", 200, 0.5),
        b.pop("p_ovf_pos", 5, vth=100000),
        np.full((5, 200), 250),
        weight_exp=6,
        sign_mode="excitatory",
    )
    b.conn(
        "ovf_neg",
        b.spikes("i_ovf_neg", 200, 0.5),
        b.pop("p_ovf_neg", 5, vth=100000),
        np.full((5, 200), -250),
        weight_exp=6,
        sign_mode="inhibitory",
    )
    # graded payloads (num_message_bits = 8)
    b.conn(
        "graded",
        b.graded("i_graded", 15, 0.3, 255),
        b.pop("p_graded", 8, du=300, dv=300, vth=20000),
        r.integers(-50, 80, (8, 15)),
        num_message_bits=8,
        weight_exp=-2,
    )
    # negative bias exponents, nonzero initial state, v clip at -(2**23 - 1)
    b.conn(
        "bias",
        b.spikes("i_bias", 10, 0.1),
        b.pop(
            "p_bias",
            8,
            du=10,
            dv=0,
            vth=5000,
            bias_mant=np.array([-4096, -4000, 4095, 1, -1, 300, -300, 17]),
            bias_exp=np.array([7, 7, -3, 0, 0, -1, -2, 3]),
            u_init=r.integers(-5000, 5000, 8),
            v_init=r.integers(-8_000_000, 8_000_000, 8),
        ),
        r.integers(-128, 127, (8, 10)),
    )
    # DelayDense (delays 0..5) plus a recurrent Dense from the population itself; 2 connections sum
    b.conn(
        "delay",
        b.spikes("i_delay", 12, 0.2),
        b.pop("p_delay", 6, du=50, dv=80, vth=20, u_init=r.integers(-1000, 1000, 6), v_init=r.integers(-1000, 1000, 6)),
        r.integers(-100, 127, (6, 12)),
        delays=r.integers(0, 6, (6, 12)),
        weight_exp=-1,
    )
    b.conn("recurrent", "p_delay", "p_delay", r.integers(-60, 60, (6, 6)))
    # a chain: population -> population with a graded (num_message_bits > 0) Dense
    b.conn(
        "chain_in",
        b.spikes("i_chain", 10, 0.3),
        b.pop("p_chain1", 8, du=1500, dv=1500, vth=600),
        r.integers(0, 100, (8, 10)),
    )
    b.conn(
        "chain",
        "p_chain1",
        b.pop("p_chain2", 5, du=1000, dv=1000, vth=100),
        r.integers(-80, 120, (5, 8)),
        num_message_bits=4,
    )
    return b


def learning_cases(steps: int = 200, seed: int = 2) -> CaseBook:
    """Plastic connections (2-factor and 3-factor rules) as independent sub-circuits."""
    b = CaseBook(steps, seed)
    r = b.rng
    stdp = {"dw": "2^-2*x1*y0 - 2^-2*y1*x0"}
    # STDP, t_epoch 1
    b.conn(
        "stdp1",
        b.spikes("i_stdp1", 30, 0.1),
        b.pop("p_stdp1", 10, du=1500, dv=1500, vth=1100),
        r.integers(0, 100, (10, 30)),
        learning=learning(stdp, {"x1": 16, "y1": 16}, {"x1": 10, "y1": 10}, t_epoch=1),
    )
    # STDP, t_epoch 4, fractional impulses (multi-spikes within an epoch)
    b.conn(
        "stdp4",
        b.spikes("i_stdp4", 30, 0.15),
        b.pop("p_stdp4", 10, du=1500, dv=1500, vth=2200),
        r.integers(0, 100, (10, 30)),
        learning=learning(stdp, {"x1": 20.5, "y1": 16.25}, {"x1": 8, "y1": 5}, t_epoch=4),
    )
    # several products with w, sgn(), (y1+3), two traces (width shift), u1 decimation, mixed weights
    b.conn(
        "multi",
        b.spikes("i_multi", 25, 0.15),
        b.pop("p_multi", 12, du=1500, dv=1500, vth=60, bias_mant=600, bias_exp=2),
        r.integers(-100, 100, (12, 25)),
        learning=learning(
            {"dw": "-3*2^-4*x1*y1*y0 + 2^-1*x1*y0 - u1*w*2^-5 - 2^-2*x0*(y1+3) + 2^-3*sgn(w-10)*y0*x2"},
            {"x1": 30, "x2": 10.75, "y1": 25},
            {"x1": 6, "y1": 12},
            t_epoch=2,
        ),
    )
    # excitatory sign mode with a dt (tag_1) and a dd (tag_2) rule, t_epoch 3
    b.conn(
        "tags",
        b.spikes("i_tags", 20, 0.2),
        b.pop("p_tags", 8, du=1500, dv=1500, vth=1400),
        r.integers(0, 100, (8, 20)),
        sign_mode="excitatory",
        learning=learning(
            {
                "dw": "2^-3*x1*y0 - 2^-3*y2*x0 + u0*t*2^-4",
                "dt": "2^-1*x1*y0 - u0*t*2^-2 - 2^-2*y2*x0",
                "dd": "2^-2*x1*y0 + 2^-4*u0*d*x2",
            },
            {"x1": 40, "x2": 5, "y2": 30.5},
            {"x1": 5, "x2": 20, "y2": 7},
            t_epoch=3,
        ),
    )
    # inhibitory sign mode
    b.conn(
        "inhib",
        b.spikes("i_inhib", 20, 0.2),
        b.pop("p_inhib", 8, du=1500, dv=1500, vth=100, bias_mant=1000, bias_exp=4),
        -r.integers(0, 30, (8, 20)),
        sign_mode="inhibitory",
        learning=learning({"dw": "2^-2*y1*x0 - 2^-1*x1*y0"}, {"x1": 20, "y1": 24}, {"x1": 4, "y1": 6}),
    )
    # 3-factor rule: y1 from a graded input, y2 from the target's own spikes (overwritten each step)
    b.conn(
        "three",
        b.spikes("i_three", 20, 0.2),
        b.pop("p_three", 8, du=1500, dv=1500, vth=700),
        r.integers(0, 100, (8, 20)),
        learning=learning(
            {"dw": "2^-4*x1*y2*y0 - 2^-3*u0*x1*y1"},
            {"x1": 20},
            {"x1": 6},
            t_epoch=2,
            third_factor={"y1": b.graded("reward", 8, 0.1, 127), "y2": "p_three"},
        ),
    )
    return b
