"""The 64-100-10 error-driven network as a circuit: the delta rule and feedback alignment, computed on chip.

The same math as :mod:`neuro_hw.circuits.error_driven_numpy` (the ground truth), as graded neurons, an
error neuron and plastic weights with signed modulators, built from the public API only::

    x ──W1──> h = clip(a1, 0, c_h) ──W2──> o = a2 (identity) ──(+I)──> err = o - target <──(-I)── target
    │  (plastic: dw = -eta1*x0*g*x1,                │ (plastic: dw = -eta2*x0*e*x1, e = err)
    │   g = delta; "fa" only)                       │
    h ──Delay(2)──(I)──> delta = (B err) * [0 < h < c_h] <──B── err        ("fa" only)

* ``x1`` of both plastic connections is the pre activity (``traces={"x1": "activity"}``); the modulators
  ``e`` (= ``err``) and ``g`` (= ``delta``) are signed, so the compiler carries each in two rails.
* Every product is gated by ``x0`` (the pre neuron was active in the epoch): a silent pre neuron does not
  learn, as in the numpy algorithm where its ``x`` is 0.
* Timing (:mod:`neuro_hw.schedule`): ``h`` is 1 step behind ``x``, ``o`` 2, ``err`` 3, ``delta`` 4 (the
  ``Delay`` node aligns ``h`` with ``B err`` at the product).  The schedule shows each sample for 4 steps and
  one blank step (``period = t_epoch = 5``) and feeds the target 2 steps after the image, so that at the
  epoch's last step every plastic synapse sees the sample's activity and the error it caused.
* ``rule="delta"``: ``W1`` stays static and there is no feedback path (the delta rule at the output).

Ranges for the compiler (7-bit errors, 8-bit activities): the hidden activity's range is its clip
``c_h``; the output ``o``, the error and ``delta`` take the ranges given here (:func:`compile_options`).
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from neuro_hw.circuits.error_driven_numpy import ErrorDrivenParams
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron
from neuro_hw.schedule import SampleSchedule, plan_schedule

DT = 1e-3


@dataclass(frozen=True)
class SignalRanges:
    """Declared ranges of the graded signals (float units) and the input's levels.

    The ranges saturate well under 1 % of the values in float training (measured with
    :mod:`.error_driven_numpy`: 99.9th percentiles |o| 1.21, |e| 0.87, |delta| 0.33).  The digits' pixels
    take 17 values (0..16), so the input is sent as the pixel count (``input_levels=16``): nothing is lost,
    and the pre activity x1 = payload/2 leaves room for the small learning rates (:mod:`neuro_hw.compiler`)."""

    output: float = 1.5
    error: float = 1.0
    delta: float = 0.5
    input: float = 1.0
    input_levels: int | None = 16

    def compile_options(self, rule: str = "fa") -> dict:
        """``input_ranges``, ``activity_ranges`` and ``signal_levels`` for :func:`neuro_hw.compile` (the delta
        rule's circuit has no ``delta`` node)."""
        activity = {"o": self.output, "err": self.error}
        if rule == "fa":
            activity["delta"] = self.delta
        return {
            "input_ranges": {"x": self.input},
            "activity_ranges": activity,
            "signal_levels": {} if self.input_levels is None else {"x": self.input_levels},
        }


def error_driven_circuit(
    params: ErrorDrivenParams,
    w1: np.ndarray,
    w2: np.ndarray,
    b: np.ndarray | None = None,
    rule: str = "fa",
    dt: float = DT,
) -> tuple[Circuit, SampleSchedule]:
    """The circuit (module doc) with initial weights ``w1`` (H, D), ``w2`` (C, H) and feedback ``b`` (H, C),
    and its sample schedule (``t_epoch`` already set to the schedule's period)."""
    if rule not in ("fa", "delta"):
        raise ValueError(f"rule must be 'fa' or 'delta', got {rule!r}")
    n_in, n_hidden, n_out = params.n_in, params.n_hidden, params.n_out

    def shape(n: int) -> np.ndarray:
        return np.array([n])

    nodes: dict[str, nir.NIRNode] = {
        "x": nir.Input(shape(n_in)),
        "target": nir.Input(shape(n_out)),
        "w1": nir.Linear(np.asarray(w1, dtype=np.float64)),
        "h": GradedNeuron(shape(n_hidden), "clipped_relu", clip=params.c_h),
        "w2": nir.Linear(np.asarray(w2, dtype=np.float64)),
        "o": GradedNeuron(shape(n_out), "identity"),
        "o_to_err": nir.Linear(np.eye(n_out)),
        "target_to_err": nir.Linear(-np.eye(n_out)),
        "err": GradedNeuron(shape(n_out), "identity"),
    }
    edges = [
        ("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o"),
        ("o", "o_to_err"), ("o_to_err", "err"), ("target", "target_to_err"), ("target_to_err", "err"),
    ]  # fmt: skip
    if rule == "fa":
        if b is None:
            raise ValueError("feedback alignment needs the feedback matrix b")
        nodes.update(
            {
                "feedback": nir.Linear(np.asarray(b, dtype=np.float64)),
                "h_delay": nir.Delay(np.full(n_hidden, 2 * dt)),
                "h_gate": nir.Linear(np.eye(n_hidden)),
                "delta": ProductNeuron(
                    shape(n_hidden), gate_inputs=("h_gate",), gate="clipped_relu_derivative", gate_clip=params.c_h
                ),
            }
        )
        edges += [
            ("err", "feedback"), ("feedback", "delta"), ("h", "h_delay"), ("h_delay", "h_gate"), ("h_gate", "delta"),
        ]  # fmt: skip
    circuit = Circuit(nodes, edges, metadata={"name": f"digits-{rule}", "dt": dt})
    circuit.add_plasticity(
        "w2",
        f"dw = {-params.eta2!r}*x0*e*x1",
        traces={"x1": "activity"},
        third_factor={"e": "err"},
        w_bounds=(-params.w_max2, params.w_max2),
    )
    if rule == "fa":
        circuit.add_plasticity(
            "w1",
            f"dw = {-params.eta1!r}*x0*g*x1",
            traces={"x1": "activity"},
            third_factor={"g": "delta"},
            w_bounds=(-params.w_max1, params.w_max1),
        )
    schedule = plan_schedule(circuit, "x", dt)
    schedule.apply(circuit)
    return circuit, schedule


def stimuli(schedule: SampleSchedule, x: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """The stimuli that present samples ``x`` (N, D) with one-hot ``targets`` (N, C) on ``schedule``
    (batched ``(B, N, ...)`` arrays give ``(B, T, ...)``)."""
    return schedule.present({"x": x, "target": targets})


@dataclass
class TrainingRun:
    """One training run of the circuit on a backend.

    ``w1``/``w2``: the weights (float units) after each epoch, ``(E, H, D)`` and ``(E, C, H)``;
    ``test_accuracy``: the float forward pass of those weights on the test set, per epoch;
    ``online_accuracy``: per epoch, the fraction of training samples whose output on the backend
    (``argmax o`` at the sample's last full step, before its update) was the label.
    """

    backend: str
    rule: str
    seed: int
    w1: np.ndarray
    w2: np.ndarray
    test_accuracy: np.ndarray
    online_accuracy: np.ndarray
    program: object | None = None
    seconds: float = 0.0


def _read_output(values: np.ndarray, schedule: SampleSchedule, n_samples: int) -> np.ndarray:
    """``o`` for each sample (N, C), read within the sample's period at the latest step that the sample's
    input reaches (``latency`` steps after a held step), before the epoch's update."""
    latency = schedule.latencies["o"]
    within = min(schedule.hold + latency, schedule.period)  # 1-based step within the period
    if within < 1 + latency:
        raise ValueError("the output does not settle within a sample's period")
    return values[np.arange(n_samples) * schedule.period + within - 1]


def train_circuit(
    params: ErrorDrivenParams,
    split,  # noqa: ANN001 - neuro_hw.circuits.digits.DigitsSplit
    seed: int,
    rule: str = "fa",
    backend: str = "reference",
    epochs: int | None = None,
    ranges: SignalRanges | None = None,
    n_train: int | None = None,
    target: str = "loihi2",
) -> TrainingRun:
    """Train the circuit online on ``split`` (run seed ``seed``: initial weights, feedback and sample order as
    :mod:`.error_driven_numpy`) on ``backend`` (``"reference"``, ``"emulator"`` or ``"lava"``)."""
    import time

    import neuro_hw
    from neuro_hw.circuits.digits import epoch_order, one_hot
    from neuro_hw.circuits.error_driven_numpy import accuracy, init_weights
    from neuro_hw.runner import graded_values

    epochs = params.epochs if epochs is None else epochs
    ranges = ranges or SignalRanges()
    w1, w2, b = init_weights(params, seed)
    circuit, schedule = error_driven_circuit(params, w1, w2, b, rule)
    n = len(split.y_train) if n_train is None else min(n_train, len(split.y_train))
    order = epoch_order(n, epochs, seed)
    x, t = split.x_train[order], one_hot(split.y_train[order], params.n_out)
    stim = stimuli(schedule, x, t)
    steps = schedule.steps(len(order))
    every = schedule.period * n
    start = time.perf_counter()
    program = None
    if backend == "reference":
        result = neuro_hw.simulate(circuit, stim, steps, schedule_dt(circuit), weights_every=every)
        out = result.states["o.y"][0]
        weights = {k: result.weights[f"{k}.w"][0] for k in ("w1", "w2") if f"{k}.w" in result.weights}
    else:
        program = neuro_hw.compile(circuit, target=target, dt=schedule_dt(circuit), **ranges.compile_options(rule))
        result = neuro_hw.run(program, stim, steps, backend=backend, seed=seed, weights_every=every)
        out = graded_values(program, result, "o")[0]
        weights = {k: result.in_float_units(f"{k}.w")[0] for k in ("w1", "w2") if f"{k}.w" in result.weights}
    seconds = time.perf_counter() - start
    w2_epochs = weights["w2"][1:]
    w1_epochs = weights["w1"][1:] if rule == "fa" else np.broadcast_to(w1, (epochs,) + w1.shape).copy()
    test_acc = np.asarray(
        [float(accuracy(params, a, b_, split.x_test, split.y_test)) for a, b_ in zip(w1_epochs, w2_epochs, strict=True)]
    )
    predicted = np.argmax(_read_output(out, schedule, len(order)), axis=1)
    online = (predicted == split.y_train[order]).reshape(epochs, n).mean(axis=1)
    return TrainingRun(backend, rule, seed, w1_epochs, w2_epochs, test_acc, online, program, seconds)


def schedule_dt(circuit: Circuit) -> float:
    return float(circuit.metadata.get("dt", DT))
