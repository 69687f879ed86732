"""Backend-neutral: the digits feedback-alignment circuit learns on every backend (``pytest --target=...``).

One epoch (1347 samples, online) of the 64-100-10 circuit of :mod:`neuro_hw.circuits.feedback_alignment`;
the reference computes the numpy algorithm exactly (tests/circuits), the fixed-point backends the compiled
circuit.  Measured test accuracy 9.1 % -> 89.3 % (reference) and -> 89.6 % (emulator); the output read on the
backend was right for 86 % / 88 % of the last 100 training samples.
"""

import numpy as np

from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams, accuracy, init_weights
from neuro_hw.circuits.feedback_alignment import SignalRanges, error_driven_circuit, stimuli
from neuro_hw.runner import Runner, graded_values

PARAMS = ErrorDrivenParams()
N = 1347


def test_feedback_alignment_learns_digits(target):
    split = load_digits_split()
    w1, w2, b = init_weights(PARAMS, 0)
    circuit, schedule = error_driven_circuit(PARAMS, w1, w2, b, "fa")
    order = epoch_order(len(split.y_train), 1, 0)[:N]
    stim = stimuli(schedule, split.x_train[order], one_hot(split.y_train[order]))
    runner = Runner(target.backend, compile_options=SignalRanges().compile_options())
    steps = schedule.steps(N)
    options = {"weights_every": steps}
    result = runner.run(circuit, stim, steps, 1e-3, seed=0, **options)
    if target.fixed_point:
        program = runner.compile(circuit, 1e-3)
        w1_end, w2_end = (result.in_float_units(f"{k}.w")[0, -1] for k in ("w1", "w2"))
        o = graded_values(program, result, "o")[0]
    else:
        w1_end, w2_end = (result.weights[f"{k}.w"][0, -1] for k in ("w1", "w2"))
        o = result.states["o.y"][0]
    before = accuracy(PARAMS, w1, w2, split.x_test, split.y_test)
    after = accuracy(PARAMS, w1_end, w2_end, split.x_test, split.y_test)
    assert before < 0.2 and after > 0.8, (before, after)
    # the output read on the backend in the last 100 samples' periods (before their updates) is mostly right
    rows = np.arange(N - 100, N) * schedule.period + schedule.period - 1
    online = np.mean(np.argmax(o[rows], axis=1) == split.y_train[order][N - 100 :])
    assert online > 0.75, online
