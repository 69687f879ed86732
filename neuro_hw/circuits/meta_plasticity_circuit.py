"""Seed circuit P3 as an IR circuit: the 5-layer network of :mod:`.meta_plasticity_numpy` with its errors
computed on chip and the plasticity terms the learning engine can express, programmable per trial.

Built from the public API only (graded neurons, product neurons, ``Delay``, ``Linear``, plasticity with
``traces={"x1": "activity"}`` and modulators)::

    x ─w1─> y1 ─w2─> y2 ─w3─> y3 ─w4─> y4 ─w5─> p = clip(z5, 0, 1) ─(+I)─> err = p - target <─(-I)─ target
    e4 = (B5ᵀ err) * f'(y4)   e3 = (B4ᵀ e4) * f'(y3)   e2 = ...   e1 = (B2ᵀ e2) * f'(y1)   (ProductNeurons;
                                                                  the gate reads y_l through a Delay)
    m_l = theta0 * e_l - thetaH * y_l        (signed modulator; e5 = err, y5 = p; y_l through a Delay)
    q_l = sqrt(thetaO) * y_l                 (unsigned modulator)

Hidden activities are ``softplus(beta = 10)`` clipped at ``config.y_clip`` (the chip runs the hard softplus
and its derivative; the float reference the exact forms unless ``activations="hardware"``); the output is
the stated on-chip form ``output="clipped"``, ``e_L = clip(z, 0, 1) - onehot`` (there is no softmax node).
Every layer ``l`` (``x1`` = the pre activity ``y_{l-1}``, ``x`` for ``l = 1``) learns with::

    dw = -x0*m*x1 - u0*q*q*w - theta3*u0*w
       = -theta0 e_i y_j + thetaH y_i y_j - thetaO y_i^2 w_ij - theta3 w_ij          (F0, H, O, F3)

i.e. the pool terms F0 and F3, and F9 in its local form (``H + O`` with ``thetaH = thetaO = theta9``).  The
coefficients theta0, thetaH, sqrt(thetaO) are the weights of the ``Linear`` nodes ``me{l}``, ``mh{l}``,
``qw{l}`` (static, so each trial of a batch can have its own through per-trial weights: one compiled Program
evaluates a whole population of rules); the ranges the compiler gives ``m`` and ``q`` come from a
:class:`GainBox`, the largest gains the Program must serve.  ``theta3`` is a rule coefficient (fixed per
Program).

Terms that need the presynaptic error ``e_{l-1}`` (F1, F2, F4, F6, F7, F8) are refused: the pre side of a
synapse is one population, here the forward activity ``y_{l-1}`` (forward input and pre trace x1), so
``e_{l-1}`` cannot reach it.  F5 would need ``1ᵀy_l`` times ``e_l`` in the modulator (not built); F9's
subspace form needs ``(W_lᵀ y_l)_j`` at the synapse (non-local); S2 needs ``B_l`` at the synapse (not built).

Timing (:mod:`neuro_hw.schedule`): ``y_l`` at step ``l`` after the image, ``p`` 5, ``err`` 6, ``e_l``
``11 - l``, ``m_l`` and ``q_l`` ``12 - l`` (``m5``, ``q5``: 7); so each image is held 8 steps, then 4 blank
steps: ``period = t_epoch = 12`` steps per image, 3012 steps per 250-image episode (with a lead-in period).

**Blank steps are silent.** The schedule lets a pre neuron forget the previous image during the blank steps,
which needs the pre to be *silent* (payload 0) then; a softplus is not (``softplus(0) = ln 2 / beta``), and
its blank-step output would overwrite the next layer's ``x1`` before the epoch ends.  An input ``blank`` (1
on blank steps) inhibits every hidden layer ``l`` by ``-100`` (through a ``Delay`` of ``l - 1`` steps, so it
meets the blank-driven wave), which makes the hard softplus and the float64 softplus exactly 0: a hidden
neuron silent for an image (hard softplus 0) has ``x0 = 0`` and does not learn, as in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import nir
import numpy as np

from neuro_hw.circuits.meta_plasticity_data import Episodes
from neuro_hw.circuits.meta_plasticity_numpy import (
    EHEBB_SURROGATE,
    HEBB,
    N_TERMS,
    OJA_LOCAL,
    PRE_ERROR_TERMS,
    NetworkConfig,
    init_weights,
    theta_vector,
    xavier_halfwidth,
)
from neuro_hw.errors import RuleError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GradedNeuron, ProductNeuron
from neuro_hw.schedule import SampleSchedule, plan_schedule

DT = 1e-3
#: Inhibition of the hidden layers during blank steps: ``z = -100`` gives exactly 0 from the hard softplus and
#: from the exact one (``log1p(exp(-1000)) = 0`` in float64).
BLANK_INHIBITION = 100.0
#: The on-chip form of the network (module doc): clipped output, hard softplus, local Oja, bounded weights and
#: activities.  The float reference runs it with the exact softplus unless ``activations="hardware"``.
CHIP_CONFIG = NetworkConfig(
    output="clipped", activation="hardware", oja="local", w_max=(0.5, 0.5, 0.5, 0.5, 1.0), y_clip=2.0
)
#: Chip terms: F0, F3, F9 (local form), H, O.
CHIP_TERMS = (0, 3, 9, HEBB, OJA_LOCAL)


def chip_gains(theta: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    """``(theta0, thetaH, thetaO, theta3)`` of the circuit's rule for a pool vector (F9 local = H + O)."""
    th = theta_vector(theta)
    return float(th[0]), float(th[9] + th[HEBB]), float(th[9] + th[OJA_LOCAL]), float(th[3])


def check_chip_theta(config: NetworkConfig, theta: np.ndarray) -> None:
    """Refuse terms and forms the circuit cannot express (module doc), each with its reason."""
    reasons = {
        **{r: "needs the presynaptic error e_{l-1} at the synapse, whose pre side carries y_{l-1}"
           for r in PRE_ERROR_TERMS},
        5: "needs the population sum 1^T y_l times e_l as a modulator (not built)",
        EHEBB_SURROGATE: "needs B_l stored at the synapse (not built)",
    }  # fmt: skip
    for r, why in reasons.items():
        if theta[r] != 0:
            raise RuleError(f"theta[{r}] = {theta[r]:g}: this term {why}", field="theta")
    if theta[9] != 0 and config.oja != "local":
        raise RuleError("theta[9] (Oja): the subspace form needs (W^T y)_j at the synapse; use oja='local'",
                        field="theta")  # fmt: skip
    if chip_gains(theta)[2] < 0:
        raise RuleError("the Oja decay thetaO = theta9 + theta11 must be >= 0 (it is sqrt(thetaO)^2 on chip)",
                        field="theta")  # fmt: skip
    if config.output != "clipped":
        raise RuleError(f"the circuit computes the output form 'clipped', not {config.output!r}", field="output")
    if config.feedback != "fa":
        raise RuleError("the circuit has fixed feedback (weight transport for BP is not on chip)", field="feedback")
    if not all(math.isfinite(w) for w in config.layer_w_max) or not math.isfinite(config.y_clip):
        raise RuleError("the chip needs finite weight bounds (config.w_max) and a finite y_clip", field="w_max")


@dataclass(frozen=True)
class GainBox:
    """The rules a compiled Program serves: ``|theta0| <= theta0``, ``|thetaH| <= hebb``, ``thetaO <= oja``
    (they set the ranges of ``m`` and ``q``), and the fixed weight decay ``theta3`` (a rule coefficient).
    ``hebb = oja = 0`` builds the circuit without Hebb/Oja nodes (plain feedback alignment)."""

    theta0: float = 0.1
    hebb: float = 0.01
    oja: float = 0.01
    theta3: float = 0.0

    @classmethod
    def of(cls, theta: Sequence[float] | np.ndarray, margin: float = 1.0) -> GainBox:
        t0, th, to, t3 = chip_gains(theta)
        return cls(abs(t0) * margin, abs(th) * margin, to * margin, t3)

    @property
    def with_hebb(self) -> bool:
        return self.hebb > 0 or self.oja > 0

    def contains(self, theta: Sequence[float] | np.ndarray) -> bool:
        t0, th, to, t3 = chip_gains(theta)
        tol = 1 + 1e-12
        return (
            abs(t0) <= self.theta0 * tol and abs(th) <= self.hebb * tol and to <= self.oja * tol and t3 == self.theta3
        )


@dataclass(frozen=True)
class ChipRanges:
    """Declared ranges (float units) of the errors ``e_1..e_4`` (index 0 is ``e_1``; forward signals of 12
    bits) and of ``err`` (``[-1, 1]`` exactly); activities take their clips, the input its 17 grey levels.
    ``m_l`` and ``q_l`` get ``theta0 * range(e_l) + hebb * range(y_l)`` and ``sqrt(oja) * range(y_l)`` from
    the :class:`GainBox` (``modulator_fill`` of that: the modulators rarely reach it)."""

    errors: tuple[float, ...] = (0.25, 0.4, 0.5, 0.6)
    err: float = 1.0
    input_levels: int | None = 16
    modulator_fill: float = 1.0

    def compile_options(self, config: NetworkConfig, box: GainBox) -> dict:
        n = config.n_layers
        activity: dict[str, float] = {f"e{k + 1}": float(r) for k, r in enumerate(self.errors[: n - 1])}
        activity["err"] = self.err
        for layer in range(1, n + 1):
            e_range = activity[f"e{layer}" if layer < n else "err"]
            y_range = config.y_clip if layer < n else 1.0
            activity[f"m{layer}"] = self.modulator_fill * (box.theta0 * e_range + box.hebb * y_range)
        levels = {"blank": 1} if self.input_levels is None else {"x": self.input_levels, "blank": 1}
        return {
            "input_ranges": {"x": 1.0, "target": 1.0, "blank": 1.0},
            "activity_ranges": activity,
            "signal_levels": levels,
        }


def build_circuit(
    config: NetworkConfig,
    theta: Sequence[float] | np.ndarray,
    ws: Sequence[np.ndarray],
    bs: Sequence[np.ndarray],
    box: GainBox | None = None,
    dt: float = DT,
) -> tuple[Circuit, SampleSchedule]:
    """The circuit (module doc) for rule ``theta`` with initial weights ``ws[l]`` (n_l, n_{l-1}) and feedback
    ``bs[l]`` (same shapes; the feedback node ``b{l}`` holds ``B_lᵀ``), for the rules of ``box`` (default: the
    box of ``theta``), and its sample schedule (``t_epoch`` set to the period)."""
    theta = theta_vector(theta)
    check_chip_theta(config, theta)
    box = box or GainBox.of(theta)
    if not box.contains(theta):
        raise RuleError(f"theta {chip_gains(theta)} lies outside the gain box {box}", field="theta")
    theta0, hebb, oja, theta3 = chip_gains(theta)
    n, sizes = config.n_layers, config.sizes
    if len(ws) != n or len(bs) != n:
        raise ValueError(f"need {n} weight and {n} feedback matrices, got {len(ws)} and {len(bs)}")

    def shape(k: int) -> np.ndarray:
        return np.array([k])

    nodes: dict[str, nir.NIRNode] = {
        "x": nir.Input(shape(sizes[0])),
        "target": nir.Input(shape(sizes[-1])),
        "blank": nir.Input(shape(1)),
    }
    edges: list[tuple[str, str]] = []

    def add(name: str, node: nir.NIRNode, *sources: str) -> None:
        nodes[name] = node
        edges.extend((s, name) for s in sources)

    for layer in range(1, n):  # silence every hidden layer while its input is blank
        source = "blank"
        if layer > 1:
            source = f"blank_d{layer}"
            add(source, nir.Delay(np.full(1, (layer - 1) * dt)), "blank")
        add(f"inh{layer}", nir.Linear(np.full((sizes[layer], 1), -BLANK_INHIBITION)), source)
    pre = "x"
    for layer in range(1, n + 1):
        w = np.asarray(ws[layer - 1], dtype=np.float64)
        if w.shape != (sizes[layer], sizes[layer - 1]):
            raise ValueError(f"W_{layer} has shape {w.shape}, expected {(sizes[layer], sizes[layer - 1])}")
        add(f"w{layer}", nir.Linear(w), pre)
        post = f"y{layer}" if layer < n else "p"
        if layer < n:
            add(post, GradedNeuron(shape(sizes[layer]), "softplus", clip=config.y_clip, beta=config.beta), f"w{layer}",
                f"inh{layer}")  # fmt: skip
        else:
            add(post, GradedNeuron(shape(sizes[layer]), "clipped_relu", clip=1.0), f"w{layer}")
        pre = post
    out = sizes[-1]
    add("p_err", nir.Linear(np.eye(out)), "p")
    add("t_err", nir.Linear(-np.eye(out)), "target")
    add("err", GradedNeuron(shape(out), "identity"), "p_err", "t_err")
    upper = "err"
    for layer in range(n - 1, 0, -1):  # e_layer from e_{layer+1} through B_{layer+1}^T
        b = np.asarray(bs[layer], dtype=np.float64)
        if b.shape != (sizes[layer + 1], sizes[layer]):
            raise ValueError(f"B_{layer + 1} has shape {b.shape}, expected {(sizes[layer + 1], sizes[layer])}")
        add(f"b{layer + 1}", nir.Linear(b.T.copy()), upper)
        add(f"d{layer}", nir.Delay(np.full(sizes[layer], (10 - 2 * layer) * dt)), f"y{layer}")
        add(f"g{layer}", nir.Linear(np.eye(sizes[layer])), f"d{layer}")
        add(f"e{layer}", ProductNeuron(shape(sizes[layer]), gate_inputs=(f"g{layer}",), gate="softplus_derivative",
                                       gate_beta=config.beta), f"b{layer + 1}", f"g{layer}")  # fmt: skip
        upper = f"e{layer}"
    for layer in range(1, n + 1):  # the modulators m_l (and q_l), one step after e_l
        k = sizes[layer]
        error, act = (f"e{layer}", f"y{layer}") if layer < n else ("err", "p")
        late = f"dm{layer}"
        if layer < n:
            add(late, nir.Delay(np.full(k, dt)), f"d{layer}")  # y_l at 11 - l
        else:
            add(late, nir.Delay(np.full(k, dt)), act)  # p at 6
        add(f"me{layer}", nir.Linear(theta0 * np.eye(k)), error)
        sources = [f"me{layer}"]
        if box.with_hebb:
            add(f"mh{layer}", nir.Linear(-hebb * np.eye(k)), late)
            add(f"qw{layer}", nir.Linear(math.sqrt(oja) * np.eye(k)), late)
            q_range = math.sqrt(box.oja) * (config.y_clip if layer < n else 1.0) or 1.0
            add(f"q{layer}", GradedNeuron(shape(k), "clipped_relu", clip=q_range), f"qw{layer}")
            sources.append(f"mh{layer}")
        add(f"m{layer}", GradedNeuron(shape(k), "identity"), *sources)
    circuit = Circuit(nodes, edges, metadata={"name": "p3-meta-plasticity", "dt": dt})
    for layer in range(1, n + 1):
        modulators = {"m": f"m{layer}"}
        rule = "dw = -1.0*x0*m*x1"
        if box.with_hebb:
            modulators["q"] = f"q{layer}"
            rule += " - 1.0*u0*q*q*w"
        if theta3:
            rule += f" {'-' if theta3 > 0 else '+'} {abs(theta3)!r}*u0*w"
        circuit.add_plasticity(
            f"w{layer}",
            rule,
            traces={"x1": "activity"},
            third_factor=modulators,
            w_bounds=(-config.layer_w_max[layer - 1], config.layer_w_max[layer - 1]),
        )
    schedule = plan_schedule(circuit, "x", dt)
    schedule.apply(circuit)
    return circuit, schedule


#: Relative margin of :func:`feedback_template` over the Xavier bound ``a``.  A mixed-sign weight drops its LSB
#: (even integers only, range ``-2**(bits-1) .. 2**(bits-1) - 1``), but the compiler sizes a format so that the
#: template's largest ``|w|`` rounds to at most ``hi = 2**(bits-1) - 1``: at 5 weight bits ``B_5``'s scale was
#: 110.1 per weight unit, ``a = 0.2828`` mapped to 31.1, and an episode's 0.2819 rounded to the even 32 > 31
#: (refused).  With the template at ``a * (1 + margin)`` the scale of ``b5`` at 5 bits drops one exponent step
#: (55.05; ``a`` maps to 15.6, coarser but every episode fits); measured on 200 episodes' feedback, the scales
#: of ``b2..b5`` at 6, 7 and 8 weight bits are unchanged (8 bits: 409.6, 320, 307.2, 214.2).
FEEDBACK_MARGIN = 1.0 / 32.0


def feedback_template(bs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``bs`` (one episode) with ``B[0, 0]`` set to the Xavier bound of its layer times ``1 +``
    :data:`FEEDBACK_MARGIN`: compiled with these, every feedback connection's weight format covers the feedback
    matrix of any episode (per-trial weights), also at narrow weight widths where mixed-sign weights round to
    even integers."""
    out = []
    for b in bs:
        t = np.array(b, dtype=np.float64, copy=True)
        t[0, 0] = xavier_halfwidth(*t.shape) * (1.0 + FEEDBACK_MARGIN)
        out.append(t)
    return out


def trial_weights(
    config: NetworkConfig,
    ws: Sequence[np.ndarray],
    bs: Sequence[np.ndarray],
    thetas: np.ndarray | None = None,
    box: GainBox | None = None,
) -> dict[str, np.ndarray]:
    """Per-trial weights ``{node: (E, n_post, n_pre)}`` for ``simulate``/``run`` from stacked ``ws``/``bs``
    (:func:`.meta_plasticity_numpy.init_weights`), and with ``thetas`` ``(E, 13)`` each trial's rule gains
    (``me``, ``mh``, ``qw`` nodes; every rule must lie in ``box`` and share its ``theta3``)."""
    n = config.n_layers
    out = {f"w{layer}": np.asarray(ws[layer - 1]) for layer in range(1, n + 1)}
    for layer in range(1, n):
        out[f"b{layer + 1}"] = np.swapaxes(np.asarray(bs[layer]), -1, -2)
    if thetas is None:
        return out
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    if thetas.shape != (len(out["w1"]), N_TERMS):
        raise ValueError(f"thetas must be ({len(out['w1'])}, {N_TERMS}), got {thetas.shape}")
    gains = np.array([chip_gains(t) for t in thetas])  # (E, 4)
    for t in thetas:
        check_chip_theta(config, t)
        if box is not None and not box.contains(t):
            raise RuleError(f"theta {chip_gains(t)} lies outside the Program's gain box {box}", field="theta")
    for layer in range(1, n + 1):
        eye = np.eye(config.sizes[layer])
        out[f"me{layer}"] = gains[:, 0, None, None] * eye
        if box is None or box.with_hebb:
            out[f"mh{layer}"] = -gains[:, 1, None, None] * eye
            out[f"qw{layer}"] = np.sqrt(gains[:, 2])[:, None, None] * eye
    return out


def stimuli(schedule: SampleSchedule, episodes: Episodes, n_classes: int, n_samples: int | None = None) -> dict:
    """``{"x": (E, T, d), "target": (E, T, C), "blank": (E, T, 1)}``: one blank period (the lead-in), then each
    episode's first ``n_samples`` training images in order, ``T = (n_samples + 1) * period``
    (:func:`episode_steps`); ``blank`` is 1 on every blank step.

    The lead-in lets the pipeline fill while the hidden layers are silenced: at the very first steps their
    inputs are 0 but the inhibition has not arrived yet (it has the same latency as the forward wave), and
    ``softplus(0)`` would be the first epoch's pre activity.  It costs one epoch without pre activity: only
    the weight decay (F3, ``u0*w``) acts in it, once (:func:`initial_weights` gives numpy the same start)."""
    k = episodes.x_train.shape[1] if n_samples is None else n_samples
    e, period = len(episodes), schedule.period
    onehot = np.eye(n_classes)[episodes.y_train[:, :k]]
    out = schedule.present({"x": episodes.x_train[:, :k], "target": onehot})
    blank = np.zeros((e, k, period, 1))
    blank[:, :, schedule.hold :] = 1.0
    out["blank"] = blank.reshape(e, k * period, 1)
    lead = {"x": np.zeros((e, period, out["x"].shape[-1])), "target": np.zeros((e, period, n_classes)),
            "blank": np.ones((e, period, 1))}  # fmt: skip
    return {name: np.concatenate([lead[name], out[name]], axis=1) for name in out}


def episode_steps(schedule: SampleSchedule, n_samples: int) -> int:
    """Steps of an episode of ``n_samples`` images: the lead-in period and one period per image."""
    return (n_samples + 1) * schedule.period


def sample_record_index(k: int) -> int:
    """Index, in weights recorded every period (``weights_every=period``), of the weights after image ``k``."""
    return k + 2


def initial_weights(theta: Sequence[float] | np.ndarray, ws: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The weights the circuit's first image sees, from initial weights ``ws``: the lead-in epoch applies the
    weight decay F3 once (``(1 - theta3) W``); numpy's :func:`~.meta_plasticity_numpy.adapt` started from these
    computes what the circuit computes."""
    theta = theta_vector(theta)
    return [np.asarray(w) * (1.0 - theta[3]) for w in ws]


def episode_circuit(
    config: NetworkConfig,
    theta: Sequence[float] | np.ndarray,
    episodes: Episodes,
    box: GainBox | None = None,
    thetas: np.ndarray | None = None,
    dt: float = DT,
) -> tuple[Circuit, SampleSchedule, dict[str, np.ndarray]]:
    """The circuit for all ``episodes`` at once: built with episode 0's weights (feedback bounds widened,
    :func:`feedback_template`) and rule ``theta``, plus every episode's initial weights (and, with ``thetas``
    ``(E, 13)``, its own rule gains) as per-trial weights."""
    ws, bs = init_weights(config, episodes.seeds)
    box = box or GainBox.of(theta)
    circuit, schedule = build_circuit(config, theta, [w[0] for w in ws], feedback_template([b[0] for b in bs]),
                                      box, dt)  # fmt: skip
    return circuit, schedule, trial_weights(config, ws, bs, thetas, box)
