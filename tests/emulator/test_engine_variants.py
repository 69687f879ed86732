"""Engine variants (precision studies): other weight and trace widths, nearest rounding.

Loihi 2 (Lava 0.10) has 8-bit weights, 7-bit traces and stochastic rounding; a target variant
(``load_target("loihi2").variant(**{"weights.bits": 6})``) compiles to a Program whose ``engine`` says so, the
emulator runs it with those widths (the Loihi-2 path is unchanged: the differential tests against Lava), and
the Lava backend refuses it.
"""

from __future__ import annotations

import numpy as np
import pytest
from emulator_cases import learning, program

import neuro_hw
from neuro_hw.circuits.stdp import correlated_inputs, stdp_circuit
from neuro_hw.compiler.program import ConnectionProgram, EngineFormat, InputProgram, NeuronProgram
from neuro_hw.emulator import run_program_emulator
from neuro_hw.errors import ValidationError
from neuro_hw.targets.loihi2.lowering import UnsupportedProgramError, check_lowerable


def test_engine_format_ranges():
    lava = EngineFormat()
    assert lava.is_lava and lava.trace_max == 127 and lava.accumulator_bits == 15
    assert lava.weight_range("mixed") == (-256, 255) and lava.tag_ranges == {"d": (0, 255), "t": (-257, 255)}
    v = EngineFormat(6, 5, "nearest")
    assert not v.is_lava and v.trace_max == 31 and v.accumulator_bits == 13
    assert v.weight_range("excitatory") == (0, 63) and v.weight_range("inhibitory") == (-63, 0)


def _program(engine: EngineFormat, rule: str, w0: int, impulse: float = 40.0, tau: int = 1000):
    inp = InputProgram("in", 2)
    pop = NeuronProgram("out", 1, du=4095, dv=0, vth=1000, bias_mant=0, bias_exp=0, u_init=0, v_init=0)
    lp = learning({"dw": rule}, {"x1": impulse}, {"x1": tau}, t_epoch=1)
    conn = ConnectionProgram("c", "in", "out", weights=[[w0, w0]], sign_mode="excitatory", learning=lp,
                             num_weight_bits=engine.weight_bits)  # fmt: skip
    prog = program([inp], [pop], [conn])
    prog.engine = engine
    return prog


def test_narrow_weights_and_traces_saturate_at_their_widths():
    x = np.ones((40, 2), dtype=np.int64)
    for engine, w_top, x_top in ((EngineFormat(), 255, 127), (EngineFormat(6, 5), 63, 31)):
        res = run_program_emulator(_program(engine, "2^0*u0*x1", 10), {"in": x}, 40, seed=0)
        assert res.weights["c.w"][0, -1].max() == w_top  # the weight ran into the top of its format
        assert res.states["c.x1"][0].max() == x_top  # the trace into the top of its width


def test_nearest_rounding_drops_what_stochastic_rounding_carries():
    """A change of 1/4 LSB per epoch: stochastic rounding moves the weight by about 1/4 LSB per step on average,
    nearest rounding never (the same for every seed)."""
    x = np.ones((200, 2), dtype=np.int64)
    rule = "2^-5*u0*x1"  # x1 = 8 every epoch (tau 0: the trace is the step's impulse): 8 * 2^-5 = 1/4 LSB
    stochastic = run_program_emulator(_program(EngineFormat(), rule, 100, 8.0, 0), {"in": x}, 200, seed=[0, 1, 2])
    nearest = run_program_emulator(_program(EngineFormat(8, 7, "nearest"), rule, 100, 8.0, 0), {"in": x}, 200,
                                   seed=[0, 1, 2])  # fmt: skip
    gained = stochastic.weights["c.w"][:, -1, 0, 0] - 100
    assert np.all(np.abs(gained - 50) < 20), gained  # 200 epochs x 1/4
    assert np.all(nearest.weights["c.w"][:, -1] == 100)


def test_compiled_stdp_variant_runs_on_the_emulator_and_lava_refuses_it():
    target = neuro_hw.load_target("loihi2").variant(**{"weights.bits": 5, "learning.trace_bits": 4})
    assert target.learning.factor_widths["x1"] == 4 and target.learning.factor_widths["w"] == 6
    circuit = stdp_circuit(n_in=20, n_out=2)
    program = neuro_hw.compile(circuit, target=target, dt=1e-3)
    assert program.engine == EngineFormat(5, 4, "stochastic")
    assert program.connections["synapses"].weights.max() <= 31
    x = correlated_inputs(3000, 20, seed=1)[0]
    res = neuro_hw.run(program, {"input": x}, 3000, backend="emulator", seed=0, weights_every=3000)
    w = res.weights["synapses.w"][0]
    assert w.max() <= 31 and not np.array_equal(w[-1], w[0])
    assert res.states["synapses.x1"].max() <= 15
    with pytest.raises(UnsupportedProgramError, match="Lava 0.10 implements Loihi 2.s only"):
        check_lowerable(program, "fixed_pt")


def test_variant_settings_are_checked():
    base = neuro_hw.load_target("loihi2")
    with pytest.raises(ValidationError, match="unknown target setting 'weights.mantissa'"):
        base.variant(**{"weights.mantissa": 4})
    with pytest.raises(ValidationError, match="learning.rounding.*unknown rounding 'up'"):
        base.variant(**{"learning.rounding": "up"})
    with pytest.raises(ValidationError, match="weights.bits.*must lie in 1..14"):
        base.variant(**{"weights.bits": 15})
