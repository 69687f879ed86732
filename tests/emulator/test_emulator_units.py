"""Unit tests of the emulator against hand-computed integers (``docs/lava-semantics.md``).

Every expected number below is derived by hand (or, for the random streams, from the documented
numpy streams) in the comments next to it -- not by running the emulator.
"""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import learning, lif, program, pulses

from neuro_hw.compiler.program import ConnectionProgram, InputProgram, learning_rng_seed
from neuro_hw.emulator import first_mismatch, run_program_emulator
from neuro_hw.emulator.dense import clip_weights, dense_effective_weights, learning_effective_weights
from neuro_hw.emulator.lif import LifPopulation, decay_toward_zero, effective_bias
from neuro_hw.emulator.microcode import decimation_exponent, parse_microcode
from neuro_hw.errors import InputError, RuleError, ValidationError


def one_lif(du=0, dv=0, vth=10, bias_mant=0, bias_exp=0, u=0, v=0, n=1):
    return LifPopulation(n, 1, du, dv, vth, np.full(n, bias_mant), np.full(n, bias_exp), np.full(n, u), np.full(n, v))


def a(*values):
    return np.array([values], dtype=np.int32)


# ---------------------------------------------------------------------------------------------------
# LIF (docs/lava-semantics.md §2)
# ---------------------------------------------------------------------------------------------------
def test_decay_rounds_toward_zero_and_du_has_offset_one():
    # u=-5000, du=100: p = -5000 * (4096 - 101) = -19_975_000; /4096 = -4876.7 -> -4876 (floor: -4877)
    pop = one_lif(du=100, u=-5000)
    pop.step(None)
    assert pop.u.tolist() == [[-4876]]
    # du=0 still decays by 1/4096: 4096 * 4095 / 4096 = 4095; 100 * 4095 / 4096 = 99.98 -> 99
    pop = one_lif(du=0, u=4096)
    pop.step(None)
    assert pop.u.tolist() == [[4095]]
    pop = one_lif(du=0, u=100)
    pop.step(None)
    assert pop.u.tolist() == [[99]]
    # du=4095: factor 4096 - 4096 = 0; dv=0: no decay of v at all
    pop = one_lif(du=4095, dv=0, u=123456, v=-777, vth=1000)
    pop.step(None)
    assert pop.u.tolist() == [[0]] and pop.v.tolist() == [[-777]]
    # v decays toward zero with dv (no offset): -1000 * (4096 - 10) / 4096 = -997.56 -> -997
    assert decay_toward_zero(np.array([-1000, 1000], dtype=np.int32), 4096 - 10).tolist() == [-997, 997]


def test_input_is_shifted_by_6_and_u_feeds_v():
    pop = one_lif(du=4095, dv=4095, vth=1000)
    s = pop.step(a(3))  # u = 0 + 3 << 6 = 192; v = 0 + 192 + 0
    assert pop.u.tolist() == [[192]] and pop.v.tolist() == [[192]] and not s.any()


def test_single_conditional_24bit_wrap_of_u():
    # u = 8_388_000 * 4095 / 4096 = 8_385_952.1 -> 8_385_952; + 100 << 6 = 8_392_352 > 2**23 -> -8_384_864
    pop = one_lif(du=0, dv=4095, u=8_388_000, vth=131071)
    pop.step(a(100))
    assert pop.u.tolist() == [[8_392_352 - 2**24]]
    # exactly 2**23 is left alone (the test is u > 2**23): 2**23 - 64 + 1 << 6
    pop = one_lif(du=4095, dv=4095, vth=131071)
    pop.step(a(2**17))  # u = 2**17 << 6 = 2**23
    assert pop.u.tolist() == [[2**23]]
    # -2**23 is wrapped (the test is u <= -2**23)
    pop = one_lif(du=4095, dv=4095, vth=131071)
    pop.step(a(-(2**17)))
    assert pop.u.tolist() == [[-(2**23) + 2**24]]


def test_int32_wraparound_of_input_shift_and_v_clip():
    # a << 6 with a = 2**25 + 5 wraps in int32: 2**31 + 320 -> -2**31 + 320 = -2_147_483_328;
    # the single wrap adds 2**24 -> -2_130_706_112 (a true modulo would give something else)
    pop = one_lif(du=4095, dv=4095, vth=131071)
    pop.step(a(2**25 + 5))
    assert pop.u.tolist() == [[-2_147_483_328 + 2**24]]
    # v = 0 + u saturates at -(2**23 - 1)
    assert pop.v.tolist() == [[-(2**23 - 1)]]


def test_threshold_is_strict_and_vth_shifted_by_6_and_reset_keeps_u():
    # bias 640 = vth << 6 exactly: v = 640 is not > 640; next step v = 1280 spikes and resets to 0
    pop = one_lif(vth=10, bias_mant=640, dv=0, du=0)
    assert not pop.step(None).any() and pop.v.tolist() == [[640]]
    assert pop.step(None).all() and pop.v.tolist() == [[0]]
    # v clipped at 2**23 - 1 = 8_388_607 > vth << 6 = 8_388_544 spikes
    pop = one_lif(vth=131071, v=8_388_000, bias_mant=4000, bias_exp=2, du=4095)
    assert pop.step(None).all() and pop.v.tolist() == [[0]]
    # u is not reset by a spike
    pop = one_lif(du=4095, dv=4095, vth=1)
    assert pop.step(a(10)).all() and pop.u.tolist() == [[640]] and pop.v.tolist() == [[0]]


def test_bias_exponent_shifts_and_int16_storage():
    # -300 >> 2 = -75; -301 >> 2 = -76 (floor); 5 << 3 = 40; 40000 wraps to int16 -25536
    got = effective_bias(np.array([-300, -301, 5, 40000]), np.array([-2, -2, 3, 0]))
    assert got.tolist() == [-75, -76, 40, -25536]


def test_lif_program_bias_only_spike_times_by_hand():
    # u stays 0; v_k = v_{k-1} * (4096 - 100) // 4096 (toward zero) + 1000; spike when v > 3200
    prog = program(neurons=[lif("p", 1, du=0, dv=100, vth=50, bias_mant=1000)])
    res = run_program_emulator(prog, {}, 8)
    v, expected_v, expected_s = 0, [], []
    for _ in range(8):
        v = v * 3996 // 4096 + 1000
        spike = v > 3200
        expected_s.append(spike)
        v = 0 if spike else v
        expected_v.append(v)
    assert res.states["p.v"][0, :, 0].tolist() == expected_v
    assert res.spikes["p"][0, :, 0].tolist() == expected_s
    assert expected_s[3] and not any(expected_s[:3])  # 1000, 1976, 2929, 3859 > 3200


# ---------------------------------------------------------------------------------------------------
# Dense weight preparation and accumulation (§3)
# ---------------------------------------------------------------------------------------------------
def test_dense_weight_preparation():
    w = np.array([3, -3, 67, 300, -300, 255, -256, 1])
    # MIXED, 8 bits: clip to [-256, 255] then drop the LSB with a floor shift
    assert dense_effective_weights(w, "mixed", 8).tolist() == [2, -4, 66, 254, -256, 254, -256, 0]
    # EXCITATORY: clip to [0, 255], no truncation with 8 bits
    assert dense_effective_weights(w, "excitatory", 8).tolist() == [3, 0, 67, 255, 0, 255, 0, 1]
    # INHIBITORY: clip to [-255, 0]
    assert dense_effective_weights(w, "inhibitory", 8).tolist() == [0, -3, 0, 0, -255, 0, -255, 0]
    # MIXED with 6 weight bits drops 8 - 6 + 1 = 3 LSBs: 67 -> 64, -3 -> -8
    assert dense_effective_weights(np.array([67, -3, 7]), "mixed", 6).tolist() == [64, -8, 0]
    # INHIBITORY truncation is mirrored: -(13 >> 2 << 2) = -12
    assert dense_effective_weights(np.array([-13]), "inhibitory", 6).tolist() == [-12]
    # LearningDense: truncation only, no clip (300 stays, 3 -> 2)
    assert learning_effective_weights(np.array([3, 300, -301]), "mixed", 8).tolist() == [2, 300, -302]
    assert clip_weights(np.array([-1000, 1000]), "mixed", 8).tolist() == [-256, 255]


def _sum_program(weights, weight_exp, sign_mode, n_in=2):
    prog = program(
        inputs=[InputProgram("in", n_in)],
        neurons=[lif("p", len(weights), du=4095, dv=4095, vth=100000)],
        connections=[ConnectionProgram("c", "in", "p", np.array(weights), weight_exp=weight_exp, sign_mode=sign_mode)],
    )
    x = pulses(4, n_in, {1: list(range(n_in))})
    return run_program_emulator(prog, {"in": x}, 4)


def test_weight_exp_shifts_the_sum_not_each_weight():
    # weights 3, 3 (EXC, kept): (3 + 3) >> 1 = 3 -> u = 3 << 6 = 192 (per weight: 1 + 1 = 2 -> 128)
    res = _sum_program([[3, 3]], -1, "excitatory")
    assert res.states["p.u"][0, :, 0].tolist() == [0, 192, 0, 0]  # arrives at step 2, du=4095 forgets
    # -3 >> 1 = -2 (floor), not -1
    res = _sum_program([[-3, 0]], -1, "inhibitory")
    assert res.states["p.u"][0, 1, 0] == -2 << 6
    # positive exponent: (3 + 3) << 2 = 24
    res = _sum_program([[3, 3]], 2, "excitatory")
    assert res.states["p.u"][0, 1, 0] == 24 << 6
    # effective static weights are reported once, after clip and truncation
    assert res.weights["c.w"].shape == (1, 1, 1, 2) and res.weight_steps["c.w"].tolist() == [0]


def test_delay_dense_arrives_at_t_plus_1_plus_d():
    delays = np.array([[0], [1], [2], [3]])
    prog = program(
        inputs=[InputProgram("in", 1)],
        neurons=[lif("p", 4, du=4095, dv=4095, vth=100000)],
        connections=[ConnectionProgram("c", "in", "p", np.full((4, 1), 10), sign_mode="excitatory", delays=delays)],
    )
    res = run_program_emulator(prog, {"in": pulses(8, 1, {1: [0]})}, 8)
    u = res.states["p.u"][0]
    for k in range(4):
        expected = [0] * 8
        expected[1 + k] = 640  # step 2 + d (index 1 + d)
        assert u[:, k].tolist() == expected


def test_several_connections_into_one_population_add():
    prog = program(
        inputs=[InputProgram("a", 1), InputProgram("b", 1)],
        neurons=[lif("p", 1, du=4095, dv=4095, vth=100000)],
        connections=[
            ConnectionProgram("ca", "a", "p", np.array([[7]]), sign_mode="excitatory"),
            ConnectionProgram("cb", "b", "p", np.array([[-3]]), sign_mode="inhibitory"),
        ],
    )
    res = run_program_emulator(prog, {"a": pulses(3, 1, {1: [0]}), "b": pulses(3, 1, {1: [0]})}, 3)
    assert res.states["p.u"][0, :, 0].tolist() == [0, (7 - 3) << 6, 0]


# ---------------------------------------------------------------------------------------------------
# learning engine (§4)
# ---------------------------------------------------------------------------------------------------
CONN_R = np.random.default_rng(2).random(1000)  # Lava's ConnVarRandom: seed 2, draw k used in epoch k


def _pair_program(rule: dict, pairs: list[int], x1=10.0, y1=0.0, sign_mode="mixed", w0=0, steps=8):
    """Pre and post neuron spike together at each step of ``pairs`` (t_epoch 1, traces reset: tau 0).

    The post neuron is forced by a static drive (one step earlier); its threshold keeps it silent
    otherwise.  The plastic weight starts at ``w0``.
    """
    prog = program(
        inputs=[InputProgram("pre", 1), InputProgram("drive", 1)],
        neurons=[lif("post", 1, du=4095, dv=4095, vth=50)],
        connections=[
            ConnectionProgram("drive_c", "drive", "post", np.array([[100]]), sign_mode="excitatory"),
            ConnectionProgram(
                "plastic",
                "pre",
                "post",
                np.array([[w0]]),
                sign_mode=sign_mode,
                learning=learning(rule, {"x1": x1, "y1": y1}),
            ),
        ],
    )
    data = {"pre": pulses(steps, 1, {p: [0] for p in pairs}), "drive": pulses(steps, 1, {p - 1: [0] for p in pairs})}
    res = run_program_emulator(prog, data, steps)
    assert res.spikes["post"][0, :, 0].nonzero()[0].tolist() == [p - 1 for p in pairs]
    return res


def test_learning_epoch_exact_product():
    # "x1*y0": m=1, e=0 -> s_exp 7; width 7+4 = 11 <= 15: c = x1 << 7 -> dw = x1 = 10 exactly
    res = _pair_program({"dw": "x1*y0"}, [5])
    w = res.weights["plastic.w"][0, :, 0, 0]
    assert res.weight_steps["plastic.w"].tolist() == list(range(9))
    assert w.tolist() == [0, 0, 0, 0, 0, 10, 10, 10, 10]
    # the trace registers: x1 = impulse at the spike step, reset (tau 0) otherwise
    assert res.states["plastic.x1"][0, :, 0].tolist() == [0, 0, 0, 0, 10, 0, 0, 0]


def test_learning_stochastic_rounding_uses_conn_stream_seed_2():
    # "2^-1*x1*y0" with x1 = 11: 11 << 6 = 704 = 5.5 * 128 -> 5 + (r_k < 0.5), r_k = draw k of rng(2)
    res = _pair_program({"dw": "2^-1*x1*y0"}, [3, 5], x1=11)
    w = res.weights["plastic.w"][0, :, 0, 0]
    up3, up5 = int(CONN_R[3] < 0.5), int(CONN_R[5] < 0.5)
    assert (up3, up5) == (1, 0)  # 0.0919 rounds up, 0.7286 rounds down: both cases are exercised
    assert w.tolist() == [0, 0, 0, 5 + up3, 5 + up3, 10 + up3 + up5, 10 + up3 + up5, 10 + up3 + up5, 10 + up3 + up5]


def test_two_trace_product_is_shifted_by_width_excess_with_floor():
    # "x1*y1*y0": widths 7+7+4 = 18 -> shift 3; 10 * 13 = 130 >> 3 = 16 -> dw = 16 (literal: 130)
    res = _pair_program({"dw": "x1*y1*y0"}, [4], x1=10, y1=13)
    assert res.weights["plastic.w"][0, -1, 0, 0] == 16
    # negative mantissa before the shift: -130 >> 3 = -17 (floor of -16.25)
    res = _pair_program({"dw": "-x1*y1*y0"}, [4], x1=10, y1=13)
    assert res.weights["plastic.w"][0, -1, 0, 0] == -17


@pytest.mark.parametrize(("sign_mode", "expected"), [("mixed", 255), ("excitatory", 255), ("inhibitory", 0)])
def test_accumulator_saturation_and_sign_mode_high(sign_mode, expected):
    # 7*2^8*x1*y0, x1=127: 889 << 15 overflows 16 bits -> clip 32767 -> 255.99 -> 255 or 256 -> clip
    w0 = -10 if sign_mode == "inhibitory" else 10
    res = _pair_program({"dw": "7*2^8*x1*y0"}, [3], x1=127, sign_mode=sign_mode, w0=w0)
    assert res.weights["plastic.w"][0, -1, 0, 0] == expected


@pytest.mark.parametrize(
    ("sign_mode", "w0", "expected"),
    [
        # the product saturates at -32769 BEFORE it is added: 10 << 7 - 32769 = -31489 = -247*128 + 127
        # -> -247 + (r_3 = 0.09 < 127/128) = -246 (not -256)
        ("mixed", 10, -246),
        # from 0: -32769 -> -257 + 1 = -256 (the clip to [-256, 255] would also give -256)
        ("mixed", 0, -256),
        ("excitatory", 10, 0),  # max(0, acc)
        ("inhibitory", -10, -255),  # -1280 - 32769 -> clip -32769 -> -256 -> clip to [-255, 0]
    ],
)
def test_accumulator_saturation_and_sign_mode_low(sign_mode, w0, expected):
    assert CONN_R[3] < 127 / 128
    res = _pair_program({"dw": "-7*2^8*x1*y0"}, [3], x1=127, sign_mode=sign_mode, w0=w0)
    assert res.weights["plastic.w"][0, -1, 0, 0] == expected


def test_tag1_lower_bound_is_minus_32769_and_minus_257_is_not_stable():
    # dt = -7*2^8*x1*y0 saturates the accumulator at -32769 = -257*128 + 127, which rounds to -257
    # only if r >= 127/128.  Epoch 398 has r = 0.99996 (first such draw), epoch 3 has r = 0.09.
    assert CONN_R[398] >= 127 / 128 and not (CONN_R[:398] >= 127 / 128).any()
    steps = 400
    res = _pair_program({"dt": "-7*2^8*x1*y0"}, [3, 398], x1=127, steps=steps)
    t = res.weights["plastic.t"][0, :, 0, 0]
    assert t[1:3].tolist() == [0, 0]
    assert (t[3:398] == -256).all()  # -32768 (-256 << 7) is a fixed point when nothing spikes
    assert t[398] == -257
    # -257 << 7 = -32896 is clipped to -32769 after the (zero) product -> -256 unless r >= 127/128
    assert t[399] == (-257 if CONN_R[399] >= 127 / 128 else -256)
    assert t[400] == (-257 if (t[399] == -257 and CONN_R[400] >= 127 / 128) else -256)
    assert (res.weights["plastic.w"] == 0).all()  # no dw rule: weights untouched


def test_trace_history_replays_the_documented_random_streams():
    # x1: impulse 5.25 (int 5, frac 64/256), tau 4; pre spikes at steps 1, 2, 6 (t_epoch 1).
    # Learning phase of step t uses draw 2t of rng(s) (decay) and rng(s+1) (impulse), s = rng seed.
    steps, seed = 8, 7
    prog = program(
        inputs=[InputProgram("pre", 1)],
        neurons=[lif("post", 1, vth=100000)],
        connections=[
            ConnectionProgram(
                "plastic",
                "pre",
                "post",
                np.array([[0]]),
                learning=learning({"dw": "x1*y0"}, {"x1": 5.25}, {"x1": 4}),
            )
        ],
    )
    spikes = {1, 2, 6}
    res = run_program_emulator(prog, {"pre": pulses(steps, 1, {s: [0] for s in spikes})}, steps, seed=seed)
    s = learning_rng_seed(seed, 0)
    decay = np.random.default_rng(s).random(2 * steps + 1)
    imp = np.random.default_rng(s + 1).integers(0, 128, size=2 * steps + 1, dtype=int)
    x, expected = 0, []
    for t in range(1, steps + 1):
        f = np.exp(-1 / 4) * x
        x = int(np.floor(f)) + int(decay[2 * t] < f % 1)
        if t in spikes:
            x = min(x + 5 + int(imp[2 * t] < 64), 127)
        expected.append(x)
    assert res.states["plastic.x1"][0, :, 0].tolist() == expected
    assert res.metadata["emulator"]["learning_rng_seeds"]["plastic"] == [s]


def test_multi_spike_in_epoch_adds_impulse_in_spiking_phase():
    # t_epoch 4, tau 0, impulse 3.5 (frac 128): spikes at steps 1 and 2 of the epoch.  Step 2 adds the
    # impulse right away, rounding up (random 0 < 128): x1 = 0 + 3 + 1 = 4.  The first spike's impulse
    # is added in the learning phase (step 4), where tau 0 resets the trace first: H[1] = 0 + 3 + b1,
    # H[2] = 0 (reset) + 3 + b2 ... the register after the epoch is H[4] = 0 (no spike at sub-step 4).
    prog = program(
        inputs=[InputProgram("pre", 1)],
        neurons=[lif("post", 1, vth=100000)],
        connections=[
            ConnectionProgram(
                "plastic",
                "pre",
                "post",
                np.array([[0]]),
                learning=learning({"dw": "x1*y0"}, {"x1": 3.5}, {}, t_epoch=4),
            )
        ],
    )
    res = run_program_emulator(prog, {"pre": pulses(4, 1, {1: [0], 2: [0]})}, 4)
    assert res.states["plastic.x1"][0, :, 0].tolist() == [0, 4, 4, 0]


# ---------------------------------------------------------------------------------------------------
# rule microcode parser (§4.2)
# ---------------------------------------------------------------------------------------------------
def test_microcode_parser_examples():
    p1, p2 = parse_microcode("2^-2*x1*y0 - 2^-2*y1*x0")
    assert (p1.dependency, p1.mantissa, p1.s_exp, [f.var for f in p1.factors]) == ("y0", 1, 5, ["x1"])
    assert (p2.dependency, p2.mantissa, p2.s_exp, [f.var for f in p2.factors]) == ("x0", -1, 5, ["y1"])
    (p,) = parse_microcode("16*y0*x1")  # 16 -> 8*2^1 -> 4*2^2
    assert (p.mantissa, p.s_exp - 7) == (4, 2)
    (p,) = parse_microcode("-3*2^-4*x1*y1*y0")
    assert (p.dependency, p.mantissa, p.s_exp, p.shift) == ("y0", -3, 3, 3)
    (p,) = parse_microcode("2^-2*x0*(y1+3)")
    assert (p.factors[0].var, p.factors[0].const) == ("y1", 3)
    (p,) = parse_microcode("2^-3*sgn(w-10)*y0*x2")
    assert (p.factors[0].var, p.factors[0].const, p.factors[0].sgn) == ("w", -10, True)
    (p,) = parse_microcode("u1*w*2^-5")
    assert p.dependency == "u" and decimation_exponent({"dw": "u1*w*2^-5"}) == 1
    (p,) = parse_microcode("x0*y0*x1")  # a later dependency becomes a 1-bit factor
    assert p.dependency == "x0" and [f.var for f in p.factors] == ["y0", "x1"] and p.width_sum == 12


@pytest.mark.parametrize("bad", ["x1*y1", "9*x0", "2^9*x0", "x0*q", "sgn(x1)*y0", ""])
def test_microcode_parser_rejects_what_lava_rejects(bad):
    with pytest.raises(RuleError):
        parse_microcode(bad)


def test_microcode_parser_agrees_with_lava():
    ps_mod = pytest.importorskip("lava.magma.core.learning.product_series")
    from lava.magma.core.learning.symbolic_equation import SymbolicEquation

    rules = [
        "2^-2*x1*y0 - 2^-2*y1*x0",
        "-3*2^-4*x1*y1*y0 + 2^-1*x1*y0 - u1*w*2^-5 - 2^-2*x0*(y1+3)",
        "2^-3*sgn(w-10)*y0*x2 + 4*2^-6*u0*t",
        "16*y0*x1 - (3)*x0*(-y2+5)",
        "x0*(2+y3)*2^-1 - 6*2^-3*y0*(x2-1)*d",
        "-(2)*2^-2*u2*x1*y1*y2",
    ]
    for text in rules:
        ours = parse_microcode(text)
        lava = ps_mod.ProductSeries(SymbolicEquation("dw", text)).products
        assert len(ours) == len(lava), text
        for o, lv in zip(ours, lava, strict=True):
            assert (o.dependency, o.mantissa, o.s_exp) == (lv.dependency, lv.s_mantissa, lv.s_exp), text
            assert [(f.var, f.const, f.sgn) for f in o.factors] == [
                (f.state_var, f.const, f.is_sgn) for f in lv.factors
            ], text


# ---------------------------------------------------------------------------------------------------
# API: inputs, records, errors, first_mismatch
# ---------------------------------------------------------------------------------------------------
def _tiny():
    return program(
        inputs=[InputProgram("in", 2)],
        neurons=[lif("p", 3, du=100, dv=100, vth=5)],
        connections=[ConnectionProgram("c", "in", "p", np.full((3, 2), 60))],
    )


@pytest.mark.parametrize(
    ("inputs", "steps", "seed", "match"),
    [
        ({}, 5, 0, "missing input"),
        ({"in": np.zeros((5, 2)), "other": np.zeros((5, 1))}, 5, 0, "unexpected input"),
        ({"in": np.zeros((5, 3))}, 5, 0, "channels"),
        ({"in": np.zeros((4, 2))}, 5, 0, "fewer than steps"),
        ({"in": np.full((5, 2), 2)}, 5, 0, "only 0 and 1"),
        ({"in": np.full((5, 2), 0.5)}, 5, 0, "integers"),
        ({"in": np.zeros((2, 5, 2))}, 5, [1, 2, 3], "3 seeds"),
        ({"in": np.zeros((5, 2))}, 0, 0, "steps"),
        ({"in": np.zeros((5, 2))}, 5, -1, ">= 0"),
        ({"in": np.zeros(5)}, 5, 0, "expected shape"),
    ],
)
def test_bad_inputs_raise_input_error(inputs, steps, seed, match):
    with pytest.raises(InputError, match=match):
        run_program_emulator(_tiny(), inputs, steps, seed=seed)


def test_bad_programs_raise_validation_error():
    prog = _tiny()
    prog.connections["c"].source = "nowhere"
    with pytest.raises(ValidationError, match="unknown source"):
        run_program_emulator(prog, {"in": np.zeros((5, 2))}, 5)
    prog = _tiny()
    prog.connections["c"].learning = learning({"dw": "x1*y1"})  # no dependency
    with pytest.raises(ValidationError, match="dependency"):
        run_program_emulator(prog, {"in": np.zeros((5, 2))}, 5)


def test_record_modes_and_shapes():
    prog = _tiny()
    prog.connections["c"].learning = learning({"dw": "2^-2*x1*y0"}, {"x1": 10}, {"x1": 4})
    x = (np.random.default_rng(0).random((2, 9, 2)) < 0.5).astype(int)
    full = run_program_emulator(prog, {"in": x}, 9, seed=[1, 2], weights_every=4)
    assert full.spikes["p"].shape == (2, 9, 3) and full.spikes["p"].dtype == bool
    assert full.states["p.v"].shape == (2, 9, 3) and full.states["p.v"].dtype == np.int32
    assert full.states["c.x1"].shape == (2, 9, 2) and full.states["c.y3"].shape == (2, 9, 3)
    assert full.weight_steps["c.w"].tolist() == [0, 4, 8, 9]
    assert full.weights["c.w"].shape == (2, 4, 3, 2) and full.weights["c.t"].shape == (2, 4, 3, 2)
    assert full.backend == "emulator" and full.batch == 2 and full.seed == 1
    lean = run_program_emulator(prog, {"in": x}, 9, seed=[1, 2], record="spikes")
    assert set(lean.states) == set() and lean.weight_steps["c.w"].tolist() == [0, 9]
    np.testing.assert_array_equal(lean.spikes["p"], full.spikes["p"])
    np.testing.assert_array_equal(lean.weights["c.w"][:, -1], full.weights["c.w"][:, -1])
    with pytest.raises(InputError, match="record"):
        run_program_emulator(prog, {"in": x}, 9, record="some")


def test_first_mismatch_reports_the_earliest_difference():
    x = (np.random.default_rng(0).random((6, 2)) < 0.5).astype(int)
    a_res = run_program_emulator(_tiny(), {"in": x}, 6)
    b_res = run_program_emulator(_tiny(), {"in": x}, 6)
    assert first_mismatch(a_res, b_res) is None
    b_res.states["p.u"][0, 4, 2] += 1
    b_res.states["p.v"][0, 2, 1] -= 7
    m = first_mismatch(a_res, b_res)
    assert (m.step, m.node, m.variable, m.trial, m.index) == (3, "p", "v", 0, (1,))
    assert m.b == m.a - 7 and "step 3" in str(m)
    del b_res.states["p.u"]
    assert "missing" in str(first_mismatch(a_res, b_res).a)


def test_step_kernels_are_generated_once_per_circuit_structure_into_the_cache_dir(tmp_path, monkeypatch):
    from neuro_hw.emulator import codegen
    from neuro_hw.emulator.engine import EmulatorRun

    monkeypatch.setenv("NEURO_HW_CACHE", str(tmp_path))
    monkeypatch.setattr(codegen, "_loaded", {})

    def prog(n_in, n_out, w0):
        lp = learning(
            {"dw": "2^-3*x1*y0 - 3*2^-4*y1*x0 + 2^-5*u0*(w-16)"}, {"x1": 12.0, "y1": 12.0}, {"x1": 5, "y1": 5}
        )
        conn = ConnectionProgram("c", "in", "p", np.full((n_out, n_in), w0), learning=lp)
        return program(inputs=[InputProgram("in", n_in)], neurons=[lif("p", n_out)], connections=[conn])

    a = EmulatorRun(prog(4, 3, 20), [0])
    b = EmulatorRun(prog(7, 2, -5), [1, 2])  # other sizes, weights and batch: the same structure
    assert a.kernel.function is b.kernel.function
    files = list((tmp_path / "kernels").glob("steps_*.py"))
    assert len(files) == 1 and files[0].read_text() == a.kernel.source
    # every product is written out (the u dependency, the (w + const) factor), its numbers are arguments
    assert "if u != 0:" in a.kernel.source and "(old_w + p2f0_c)" in a.kernel.source
    assert "-16" not in a.kernel.source and a.kernel.engines["c"].rule_consts.tolist() == [0.0, 0.0, -16.0]
    c = EmulatorRun(prog(4, 3, 20), [0], record="spikes")  # what is recorded is an argument, not code
    assert c.kernel.function is a.kernel.function
    d_lp = learning({"dw": "2^-3*x1*y0"}, {"x1": 12.0}, {"x1": 5})  # another rule form: another kernel
    d_conn = ConnectionProgram("c", "in", "p", np.full((3, 4), 20), learning=d_lp)
    d = EmulatorRun(program(inputs=[InputProgram("in", 4)], neurons=[lif("p", 3)], connections=[d_conn]), [0])
    assert d.kernel.function is not a.kernel.function
    assert len(list((tmp_path / "kernels").glob("steps_*.py"))) == 2


def test_backends_share_program_checks_with_their_own_error_class():
    from neuro_hw.compiler.checks import check_program
    from neuro_hw.targets.loihi2.lava_backend import UnsupportedProgramError

    prog = program(
        inputs=[InputProgram("in", 2), InputProgram("mod", 3)],
        neurons=[lif("p", 3)],
        connections=[
            ConnectionProgram(
                "c", "in", "p", np.ones((3, 2), dtype=int),
                learning=learning({"dw": "y1*x0"}, {"y1": 4.0}, {"y1": 3}, third_factor={"y1": "mod"}),
            )
        ],
    )  # fmt: skip
    with pytest.raises(ValidationError, match="y impulses"):
        run_program_emulator(prog, {"in": np.zeros((5, 2)), "mod": np.zeros((5, 3))}, 5)
    with pytest.raises(UnsupportedProgramError, match="y impulses") as info:
        check_program(prog, UnsupportedProgramError)
    assert info.value.node == "c" and info.value.field == "learning.impulses"


def test_learned_weights_are_stored_pre_major_in_c_order():
    # the spiking path and the column updates walk w[b, j, :] (one pre neuron): it must be contiguous
    from neuro_hw.emulator.learning import LearningEngine

    w = np.arange(12).reshape(3, 4) * 2  # (n_post, n_pre), even: unchanged by the LSB truncation
    lp = learning({"dw": "2^-3*x1*y0"}, {"x1": 8.0}, {"x1": 4})
    eng = LearningEngine("c", lp, w, "mixed", seeds=[0, 1, 2], index=0, steps=10)
    assert eng.wt.shape == (3, 4, 3) and eng.wt.flags.c_contiguous
    assert eng.wt[1, 2].tolist() == w[:, 2].tolist()  # trial 1, pre neuron 2: its weights onto the 3 posts
    assert np.array_equal(eng.variable("w")[2], w)


def test_generated_kernels_carry_a_hash_of_the_kernel_modules():
    # numba's disk cache is invalidated by a change of the cached function's own file only: the generated
    # step loop inlines lif/dense/learning kernels, so its source names their hash (a changed kernel gives
    # a new file, never machine code compiled for the old one)
    import hashlib
    from pathlib import Path

    from neuro_hw.emulator import step_kernel
    from neuro_hw.emulator.engine import EmulatorRun

    here = Path(step_kernel.__file__).parent
    digest = hashlib.sha256()
    assert {"lif.py", "dense.py", "graded.py", "learning.py", "rule_kernel.py"} <= set(step_kernel.KERNEL_MODULES)
    for name in step_kernel.KERNEL_MODULES:
        digest.update((here / name).read_bytes())
    lp = learning({"dw": "2^-3*x1*y0"}, {"x1": 8.0}, {"x1": 4})
    conn = ConnectionProgram("c", "in", "p", np.full((2, 3), 4), learning=lp)
    run = EmulatorRun(program(inputs=[InputProgram("in", 3)], neurons=[lif("p", 2)], connections=[conn]), [0])
    assert run.kernel.source.splitlines()[0].endswith(f"(kernel modules {digest.hexdigest()[:16]})")


@pytest.mark.parametrize("delayed", [False, True])
def test_sparse_send_equals_the_dense_send(monkeypatch, delayed):
    """A mostly-zero static (Delay)Dense sends through the rows' nonzero entries (CSR) -- the same int64 sums, so
    every recorded value equals the dense send's, also with per-trial weights and wrap-around (weights near the
    int32 limit after the exponent)."""
    from neuro_hw.emulator import dense

    rng = np.random.default_rng(5)
    n_pre, n_post, steps = 30, 12, 40
    w = np.where(rng.random((n_post, n_pre)) < 0.15, rng.integers(-255, 256, (n_post, n_pre)), 0)
    delays = rng.integers(0, 4, (n_post, n_pre)) if delayed else None
    conn = ConnectionProgram("c", "in", "p", w, weight_exp=7, delays=delays)
    prog = program(inputs=[InputProgram("in", n_pre)], neurons=[lif("p", n_post, du=100, vth=1 << 16)],
                   connections=[conn])  # fmt: skip
    x = (rng.random((3, steps, n_pre)) < 0.3).astype(np.int64)
    per_trial = {"c": np.stack([w, -w, w // 2])}  # (B, n_post, n_pre): one weight set per trial
    runs = {}
    for density in (0.0, 1.0):  # never sparse, always sparse
        monkeypatch.setattr(dense, "SPARSE_DENSITY", density)
        runs[density] = run_program_emulator(prog, {"in": x}, steps, seed=[0, 1, 2], weights=per_trial)
    assert first_mismatch(runs[0.0], runs[1.0]) is None
    assert np.abs(runs[1.0].states["p.u"]).max() > 1 << 20  # the sums are large enough to matter
