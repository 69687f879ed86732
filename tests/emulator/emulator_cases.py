"""Program builders shared by the emulator tests (unit, batch and differential vs Lava)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import strategies as st

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

    def given(self, name: str, data: np.ndarray) -> str:
        """A spike input with the given ``(steps, n)`` 0/1 data."""
        self.inputs.append(InputProgram(name, data.shape[1]))
        self.data[name] = np.asarray(data, dtype=np.int64)
        return name

    def pop(self, name: str, n: int, **kw) -> str:
        self.neurons.append(lif(name, n, **kw))
        return name

    def conn(self, name: str, src: str, dst: str, weights, **kw) -> str:
        self.conns.append(ConnectionProgram(name, src, dst, np.asarray(weights), **kw))
        return name

    def program(self) -> Program:
        return program(self.inputs, self.neurons, self.conns)

    def batched(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``(batch, steps, n)`` inputs: trial 0 is ``self.data``, trial b > 0 its steps in another random order
        (same rates, other spike times) -- every trial sees different inputs."""
        rng = np.random.default_rng(seed)
        return {k: np.stack([v] + [v[rng.permutation(len(v))] for _ in range(batch - 1)]) for k, v in self.data.items()}


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


def feature_cases(steps: int = 200, seed: int = 6) -> CaseBook:
    """Recurrent plastic connections, several plastic connections into one population, long epochs
    (t_epoch 5..63) and long delays (up to Lava's 63), as independent sub-circuits."""
    b = CaseBook(steps, seed)
    r = b.rng
    stdp = {"dw": "2^-2*x1*y0 - 2^-2*y1*x0"}
    # a recurrent plastic connection (pre = post = p_rec; the diagonal sees pre and post spikes at once), t_epoch 5
    b.conn(
        "rec_drive",
        b.spikes("i_rec", 12, 0.25),
        b.pop("p_rec", 8, du=1500, dv=1500, vth=900, bias_mant=r.integers(0, 200, 8), bias_exp=3),
        r.integers(0, 120, (8, 12)),
    )
    b.conn(
        "rec",
        "p_rec",
        "p_rec",
        r.integers(-60, 80, (8, 8)),
        learning=learning(stdp, {"x1": 24.5, "y1": 20}, {"x1": 6, "y1": 8}, t_epoch=5),
    )
    # three plastic connections into p_multi: 2-factor STDP from an input (t_epoch 2), a recurrent one with w, u1
    # and a tag rule (t_epoch 7), a 3-factor one from another input (t_epoch 3; y1 = reward, y2 = own spikes)
    b.pop("p_multi", 10, du=1200, dv=1000, vth=2400, bias_mant=r.integers(0, 300, 10), bias_exp=3)
    b.conn(
        "multi_a",
        b.spikes("i_multi_a", 16, 0.15),
        "p_multi",
        r.integers(0, 110, (10, 16)),
        learning=learning(stdp, {"x1": 30, "y1": 16.75}, {"x1": 5, "y1": 10}, t_epoch=2),
    )
    b.conn(
        "multi_rec",
        "p_multi",
        "p_multi",
        r.integers(-50, 50, (10, 10)),
        learning=learning(
            {"dw": "2^-3*x1*y0 - u1*w*2^-5 - 2^-3*y1*x0", "dt": "2^-1*x1*y0 - 2^-2*u1*t"},
            {"x1": 18, "y1": 12.5},
            {"x1": 9, "y1": 4},
            t_epoch=7,
        ),
    )
    b.conn(
        "multi_three",
        b.spikes("i_multi_b", 12, 0.2),
        "p_multi",
        r.integers(0, 100, (10, 12)),
        sign_mode="excitatory",
        learning=learning(
            {"dw": "2^-4*x1*y2*y0 - 2^-3*u0*x1*y1"},
            {"x1": 20},
            {"x1": 6},
            t_epoch=3,
            third_factor={"y1": b.graded("reward_multi", 10, 0.1, 127), "y2": "p_multi"},
        ),
    )
    # long epochs: two plastic inputs of one population with t_epoch 16 (u2 decimation) and 63 (with a dd rule)
    b.pop("p_epoch", 8, du=1500, dv=1500, vth=1000, bias_mant=200, bias_exp=3)
    b.conn(
        "ep16",
        b.spikes("i_ep16", 20, 0.15),
        "p_epoch",
        r.integers(0, 100, (8, 20)),
        learning=learning(
            {"dw": "2^-2*x1*y0 - 2^-2*y1*x0 + 2^-4*u2*x1"}, {"x1": 10.5, "y1": 8}, {"x1": 30, "y1": 20}, t_epoch=16
        ),
    )
    b.conn(
        "ep63",
        b.spikes("i_ep63", 10, 0.2),
        "p_epoch",
        r.integers(-80, 80, (8, 10)),
        learning=learning(
            {"dw": "2^-3*x1*y0 - 2^-3*y1*x0", "dd": "2^-2*x1*y0 - 2^-4*u0*d"},
            {"x1": 6.25, "y1": 5},
            {"x1": 40, "y1": 40},
            t_epoch=63,
        ),
    )
    # long delays: DelayDense with delays 0..20, a recurrent DelayDense (6..15) and delays 48 and 63 from pulses
    # that reach only the last neuron of p_dly (nothing else drives it): its u stays 0 until step 5 + 1 + 63
    b.pop("p_dly", 8, du=600, dv=800, vth=1500)
    w20 = r.integers(-40, 127, (8, 12))
    w20[-1] = 0
    b.conn("dly20", b.spikes("i_dly", 12, 0.2), "p_dly", w20, delays=r.integers(0, 21, (8, 12)), weight_exp=-1)
    w_rec = r.integers(-60, 100, (8, 8))
    w_rec[-1] = 0
    b.conn("dly_rec", "p_dly", "p_dly", w_rec, delays=r.integers(6, 16, (8, 8)))
    w_far = np.zeros((8, 2), dtype=np.int64)
    w_far[-1] = [100, 70]
    d_far = np.zeros((8, 2), dtype=np.int64)
    d_far[-1] = [63, 48]
    b.conn("dly63", b.given("i_far", pulses(steps, 2, {5: [0], 40: [1], 120: [0, 1]})), "p_dly", w_far, delays=d_far)
    return b


# ---------------------------------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------------------------------
PRODUCTS = [
    "{c}*x1*y0",
    "{c}*y1*x0",
    "{c}*x1*y1*y0",
    "{c}*u{k}*w",
    "{c}*x0*(y2+{j})",
    "{c}*sgn(w-{j})*y0*x2",
    "{c}*u{k}*x1",
    "{c}*y0*x2*y3",
    "{c}*x0*y1*w",
    "{c}*u{k}*t*y1",
    "{c}*u{k}*d",
    "{c}*y0*sgn(d+{j})*x1",
    "{c}*x0*(t-{j})",
    "{c}*y0*x1*y2*w",
]
SIGN_RANGES = {"mixed": (-120, 120), "excitatory": (0, 120), "inhibitory": (-120, 0)}
#: t_epoch: 1..16, a fifth of the draws 24..63 (63: the largest epoch of the hardware; Lava's simulator has no bound)
EPOCHS = st.integers(1, 20).map(lambda e: e if e <= 16 else (24, 31, 48, 63)[e - 17])
#: the largest delay of a DelayDense: 6..20, a fifth of the draws 31..63 (Lava's DelayDense limit)
MAX_DELAYS = st.integers(6, 24).map(lambda d: d if d <= 20 else (31, 40, 55, 63)[d - 21])


@st.composite
def rules(draw, k: int) -> str:
    """A rule string of 1..3 random products (all ``u<k>`` share ``k``, as Lava requires)."""
    terms = []
    for template in draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3)):
        m = draw(st.integers(1, 7))
        e = draw(st.integers(-7, 2))
        sign = draw(st.sampled_from(["", "-"]))
        terms.append(sign + template.format(c=f"{m}*2^{e}", k=k, j=draw(st.integers(1, 9))))
    text = terms[0]
    for term in terms[1:]:
        text += (" - " + term[1:]) if term.startswith("-") else (" + " + term)
    return text


@st.composite
def learning_programs(draw, t_epoch: int, third_factor: dict[str, str] | None = None) -> LearningProgram:
    """Random rules (dw always, dt/dd sometimes), impulses and taus; y impulses only without a third factor."""
    k = draw(st.integers(0, 2))
    targets = ["dw"] + sorted(draw(st.sets(st.sampled_from(["dt", "dd"]))))
    quarter = st.integers(0, 100).map(lambda q: q / 4)
    imp = {t: draw(quarter) for t in ("x1", "x2")}
    if not third_factor:
        imp.update({t: draw(quarter) for t in ("y1", "y2", "y3")})
    taus = {t: draw(st.integers(0, 40)) for t in TRACES}
    rule_set = {tgt: draw(rules(k)) for tgt in targets}
    return learning(rule_set, imp, taus, t_epoch=t_epoch, third_factor=dict(third_factor or {}))


def program_features(prog: Program) -> dict[str, int]:
    """What a Program exercises: recurrent plastic connections, plastic inputs per population, epochs, delays."""
    plastic = [c for c in prog.connections.values() if c.learning is not None]
    delays = [int(c.delays.max()) for c in prog.connections.values() if c.delays is not None and c.delays.size]
    return {
        "recurrent_plastic": sum(c.source == c.target for c in plastic),
        "most_plastic_inputs": max(Counter(c.target for c in plastic).values(), default=0),
        "max_t_epoch": max((int(c.learning.t_epoch) for c in plastic), default=0),
        "distinct_t_epochs": len({int(c.learning.t_epoch) for c in plastic}),
        "three_factor": sum(bool(c.learning.third_factor) for c in plastic),
        "max_delay": max(delays, default=-1),
    }


def _lif_kw(draw, r: np.random.Generator, n: int) -> dict:
    return dict(
        du=draw(st.integers(0, 4095)),
        dv=draw(st.integers(0, 4095)),
        vth=draw(st.integers(1, 1500)),
        bias_mant=r.integers(-100, 300, n),
        bias_exp=draw(st.integers(0, 5)),
        u_init=r.integers(-2000, 2000, n),
        v_init=r.integers(-2000, 2000, n),
    )


@st.composite
def feature_circuits(draw, steps: int = 120, batch: tuple[int, int] = (3, 4)) -> tuple[CaseBook, list[int], dict]:
    """One connected circuit with a recurrent plastic connection and a second (or third) plastic connection into
    the same population (other rules, other t_epoch, 2- or 3-factor, in random Program order), t_epoch up to 63
    (at least one above 4), DelayDense delays up to 63 (at least one above 5), and a batch of ``batch[0]..batch[1]``
    trials with distinct per-trial seeds and inputs.  Returns ``(book, seeds, (B, T, n) inputs)``."""
    b = CaseBook(steps, draw(st.integers(0, 2**16)))
    r = b.rng
    n_in, n0 = draw(st.integers(1, 10)), draw(st.integers(1, 8))
    b.spikes("i0", n_in, draw(st.floats(0.05, 0.4)))
    b.pop("p0", n0, **_lif_kw(draw, r, n0))
    d_max = draw(MAX_DELAYS)
    delays = r.integers(0, d_max + 1, (n0, n_in))
    delays[r.integers(n0), r.integers(n_in)] = d_max
    sign = draw(st.sampled_from(sorted(SIGN_RANGES)))
    lo, hi = (2 * x for x in SIGN_RANGES[sign])
    static = [
        ConnectionProgram(
            "c_delay", "i0", "p0", r.integers(lo, hi + 1, (n0, n_in)), sign_mode=sign,
            weight_exp=draw(st.integers(-2, 2)), delays=delays,
        )
    ]  # fmt: skip
    sizes = {"i0": n_in, "p0": n0}
    if draw(st.booleans()):  # a second population behind p0, through long delays
        n1 = draw(st.integers(1, 6))
        b.pop("p1", n1, **_lif_kw(draw, r, n1))
        sizes["p1"] = n1
        d1 = draw(MAX_DELAYS)
        static.append(
            ConnectionProgram(
                "c_chain", "p0", "p1", r.integers(-128, 128, (n1, n0)), delays=r.integers(0, d1 + 1, (n1, n0)),
                weight_exp=draw(st.integers(-1, 2)),
            )
        )  # fmt: skip
    if draw(st.booleans()):  # graded payloads into p0 (static) and maybe into a plastic connection
        b.graded("g0", n_in, draw(st.floats(0.05, 0.4)), 255)
        sizes["g0"] = n_in
        static.append(ConnectionProgram("c_graded", "g0", "p0", r.integers(-60, 60, (n0, n_in)), num_message_bits=8))
    pops = [p.name for p in b.neurons]
    post = draw(st.sampled_from(pops))  # gets the recurrent plastic connection and 1..2 more plastic inputs
    others = [s for s in sizes if s != post]
    sources = [post] + draw(st.lists(st.sampled_from(others), min_size=1, max_size=2))
    epochs = [draw(EPOCHS) for _ in sources]
    if max(epochs) <= 4:
        epochs[draw(st.integers(0, len(epochs) - 1))] = draw(st.integers(5, 16))
    reward = None
    plastic = []
    for i, (src, t_epoch) in enumerate(zip(sources, epochs, strict=True)):
        third = None
        if draw(st.integers(0, 2)) == 0:  # a 3-factor rule: a graded reward and/or spikes of a population
            same = [p for p in pops if sizes[p] == sizes[post]]
            ys = draw(st.lists(st.sampled_from(["y1", "y2", "y3"]), min_size=1, max_size=2, unique=True))
            third = {y: draw(st.sampled_from(["r0"] + same)) for y in ys}
            if "r0" in third.values() and reward is None:
                reward = b.graded("r0", sizes[post], 0.2, draw(st.sampled_from([1, 127, 255])))
        p_sign = draw(st.sampled_from(sorted(SIGN_RANGES)))
        lo, hi = (-400, 400) if draw(st.booleans()) else SIGN_RANGES[p_sign]
        plastic.append(
            ConnectionProgram(
                f"L{i}_{src}", src, post, r.integers(lo, hi + 1, (sizes[post], sizes[src])), sign_mode=p_sign,
                weight_exp=draw(st.integers(-2, 1)), num_message_bits=8 if src == "g0" else 0,
                learning=draw(learning_programs(t_epoch, third)),
            )
        )  # fmt: skip
    # Program order decides the learning rng seeds (learning_rng_seed): shuffle it, statics in between
    b.conns = draw(st.permutations(static + plastic))
    n_trials = draw(st.integers(*batch))
    seeds = draw(st.lists(st.integers(0, 1000), min_size=n_trials, max_size=n_trials, unique=True))
    return b, seeds, b.batched(n_trials, draw(st.integers(0, 2**16)))


def masked_cases(steps: int = 200, seed: int = 2) -> CaseBook:
    """:func:`learning_cases` with a plasticity mask on every plastic connection (about 60 % of the synapses
    present, absent ones 0, one present synapse per connection starting at 0), plus a graded-pre connection with
    a signed modulator on two post traces and a ``u0*w`` decay (the heterosynaptic circuits' rule form)."""
    b = learning_cases(steps, seed)
    r = np.random.default_rng(seed + 100)
    for conn in b.conns:
        if conn.learning is None:
            continue
        mask = r.random(conn.shape) < 0.6
        mask[0, 0] = True
        # the present synapses 1/0.6 stronger, so that the post neurons keep their firing rates
        conn.weights = np.where(mask, np.clip(np.round(conn.weights / 0.6), -256, 255), 0).astype(np.int32)
        conn.weights[0, 0] = 0  # a present synapse at 0: it must learn like the others
        conn.learning.mask = mask
    pre = b.graded("g_pre", 12, 0.5, 254)
    n_post = 6
    post = b.pop("p_graded_post", n_post, du=1500, dv=1500, vth=900)
    b.conn("drive_graded_post", b.spikes("i_graded_post", 5, 0.3), post, r.integers(0, 100, (n_post, 5)))
    plus, minus = b.graded("e_plus", n_post, 0.4, 100), b.graded("e_minus", n_post, 0.4, 100)
    mask = r.random((n_post, 12)) < 0.4
    mask[0, 0] = True
    weights = np.where(mask, r.integers(-80, 80, (n_post, 12)), 0)
    weights[0, 0] = 0
    b.conn(
        "masked_graded",
        pre,
        post,
        weights,
        num_message_bits=8,
        learning=learning(
            {"dw": "-2^-4*x0*y2*x1 + 2^-4*x0*y3*x1 - 2^-6*u0*w"},
            {},
            {"x1": 65535},
            t_epoch=3,
            third_factor={"y2": plus, "y3": minus},
            pre_activity=True,
            mask=mask,
        ),
    )
    return b
