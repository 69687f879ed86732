"""Running the P3 circuit (:mod:`.meta_plasticity_circuit`) on a batch of episodes: the float reference, the
fixed-point emulator and Lava, each episode a trial with its own initial weights, feedback and rule gains.

* :func:`compiled_program` compiles the circuit once per (network form, :class:`GainBox`, ranges, target):
  built with a template episode (meta-training episode 0; the feedback bounds widened to the Xavier bound)
  and the box's corner rule, so every episode's weights and every rule of the box fit its formats;
* :func:`run_emulator` runs episodes in groups of ``group`` trials and ``chunk`` steps at a time (the
  emulator records every graded output at every step: 2,400 values per step and trial here), and reads the
  learned weights at the end in float units;
* :func:`run_reference` runs the same circuit in the float reference (``activations`` exact or hardware);
* the query (50 images) is classified on the host, in float, from the learned weights with the network form's
  activations (:func:`~.meta_plasticity_numpy.query_metrics`), as the digits FA acceptance does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.circuits.meta_plasticity_circuit import (
    CHIP_CONFIG as CHIP_CONFIG_DEFAULT,
)
from neuro_hw.circuits.meta_plasticity_circuit import (
    DT,
    ChipRanges,
    GainBox,
    build_circuit,
    episode_steps,
    feedback_template,
    initial_weights,
    stimuli,
    trial_weights,
)
from neuro_hw.circuits.meta_plasticity_data import Episodes
from neuro_hw.circuits.meta_plasticity_numpy import (
    HEBB,
    OJA_LOCAL,
    NetworkConfig,
    init_weights,
    query_metrics,
    theta_vector,
)

__all__ = ["CircuitRun", "GainBox", "compiled_program", "run_emulator", "run_reference"]


@dataclass
class CircuitRun:
    """Episodes run on a backend: the final weights (float units, per layer ``(E, n_l, n_{l-1})``), the query
    metrics (:func:`~.meta_plasticity_numpy.query_metrics`) and the wall time of the runs."""

    backend: str
    thetas: np.ndarray
    weights: list[np.ndarray]
    query_accuracy: np.ndarray
    query_loss: np.ndarray
    query_alpha: np.ndarray
    seconds: float
    steps: int
    notes: list[str] = field(default_factory=list)


def box_corner(box: GainBox) -> np.ndarray:
    """The rule at the box's largest gains (the template for the Program's formats)."""
    theta = np.zeros(13)
    theta[0], theta[3], theta[HEBB], theta[OJA_LOCAL] = box.theta0, box.theta3, box.hebb, box.oja
    return theta


def _template_circuit(config: NetworkConfig, box: GainBox, dt: float = DT):  # noqa: ANN202
    ws, bs = init_weights(config, [0])
    return build_circuit(config, box_corner(box), [w[0] for w in ws], feedback_template([b[0] for b in bs]), box, dt)


_PROGRAMS: dict[tuple, tuple] = {}


def compiled_program(config: NetworkConfig, box: GainBox, ranges: ChipRanges | None = None, target: object = None):
    """``(Program, SampleSchedule)`` of the circuit for ``box`` on ``target`` (a name or a Target; default
    ``"loihi2"``), cached per process by the target's name (module doc)."""
    import neuro_hw
    from neuro_hw.compiler.target import load_target

    ranges = ranges or ChipRanges()
    tgt = load_target("loihi2" if target is None else target) if not hasattr(target, "learning") else target
    key = (config, box, ranges, tgt.name)
    if key not in _PROGRAMS:
        circuit, schedule = _template_circuit(config, box)
        program = neuro_hw.compile(circuit, target=tgt, dt=DT, **ranges.compile_options(config, box))
        _PROGRAMS[key] = (program, schedule)
    return _PROGRAMS[key]


def _query(config: NetworkConfig, ws: list[np.ndarray], episodes: Episodes) -> tuple[np.ndarray, ...]:
    _, bs = init_weights(config, episodes.seeds)
    with np.errstate(all="ignore"):
        return query_metrics(config, ws, bs, episodes.x_query, episodes.y_query)


def _thetas(thetas: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    arr = np.asarray(thetas, dtype=np.float64)
    if arr.ndim == 1:
        arr = np.tile(theta_vector(arr), (n, 1))
    if arr.shape[0] != n:
        raise ValueError(f"thetas has {arr.shape[0]} rows for {n} episodes")
    return np.stack([theta_vector(t) for t in arr])


def run_emulator(
    config: NetworkConfig,
    thetas: np.ndarray | Sequence[float],
    episodes: Episodes,
    box: GainBox,
    *,
    target: object = None,
    ranges: ChipRanges | None = None,
    seeds: Sequence[int] | None = None,
    n_samples: int | None = None,
    group: int = 16,
    chunk: int = 600,
) -> CircuitRun:
    """Episode ``i`` with rule ``thetas[i]`` (or one rule for all) on the fixed-point emulator, in groups of
    ``group`` trials and ``chunk`` steps (module doc); ``seeds`` seed the learning engines' stochastic rounding
    (default: the episode seeds)."""
    from neuro_hw.compiler.trial_weights import trial_weights as int_trial_weights
    from neuro_hw.emulator.engine import EmulatorRun, normalize_inputs
    from neuro_hw.runner import stimulus_to_payloads

    n_e = len(episodes)
    thetas = _thetas(thetas, n_e)
    program, schedule = compiled_program(config, box, ranges, target)
    seeds = list(episodes.seeds if seeds is None else seeds)
    n = episodes.x_train.shape[1] if n_samples is None else n_samples
    steps = episode_steps(schedule, n)
    ws0, bs0 = init_weights(config, episodes.seeds)
    finals = [np.zeros_like(w) for w in ws0]
    start = time.perf_counter()
    for g0 in range(0, n_e, group):
        sl = slice(g0, min(g0 + group, n_e))
        sub = episodes.subset(sl)
        float_w = trial_weights(config, [w[sl] for w in ws0], [b[sl] for b in bs0], thetas[sl], box)
        int_w = int_trial_weights(program, float_w, len(sub))
        payloads = stimulus_to_payloads(program, stimuli(schedule, sub, config.sizes[-1], n))
        data, trial_seeds, _ = normalize_inputs(program, payloads, steps, [int(s) for s in seeds[sl]])
        run = EmulatorRun(program, trial_seeds, record="spikes", weights=int_w)
        for t0 in range(0, steps, chunk):
            t1 = min(t0 + chunk, steps)
            part = {k: np.ascontiguousarray(v[:, t0:t1]) for k, v in data.items()}
            out = run.advance(part, t1 - t0, [steps] if t1 == steps else [])
        for layer in range(config.n_layers):
            name = f"w{layer + 1}"
            conn = program.connections[name]
            ints = out.weights[f"{name}.w"][:, -1].astype(np.float64)
            finals[layer][sl] = ints / np.asarray(conn.w_scale)
    seconds = time.perf_counter() - start
    acc, ce, alpha = _query(config, finals, episodes)
    return CircuitRun("emulator", thetas, finals, acc, ce, alpha, seconds, steps)


def run_reference(
    config: NetworkConfig,
    thetas: np.ndarray | Sequence[float],
    episodes: Episodes,
    box: GainBox | None = None,
    *,
    n_samples: int | None = None,
    group: int = 8,
) -> CircuitRun:
    """The same episodes in the float reference (``neuro_hw.simulate``), activations of ``config``'s form.
    Per-trial rule gains need one ``box`` (default: the box of the first rule)."""
    import neuro_hw

    n_e = len(episodes)
    thetas = _thetas(thetas, n_e)
    box = box or GainBox.of(thetas[0])
    ws0, bs0 = init_weights(config, episodes.seeds)
    circuit, schedule = build_circuit(config, thetas[0], [w[0] for w in ws0], [b[0] for b in bs0], box)
    n = episodes.x_train.shape[1] if n_samples is None else n_samples
    steps = episode_steps(schedule, n)
    finals = [np.zeros_like(w) for w in ws0]
    start = time.perf_counter()
    for g0 in range(0, n_e, group):
        sl = slice(g0, min(g0 + group, n_e))
        sub = episodes.subset(sl)
        weights = trial_weights(config, [w[sl] for w in ws0], [b[sl] for b in bs0], thetas[sl], box)
        result = neuro_hw.simulate(circuit, stimuli(schedule, sub, config.sizes[-1], n), steps, DT, weights=weights,
                                   weights_every=steps, activations=config.activation)  # fmt: skip
        for layer in range(config.n_layers):
            finals[layer][sl] = result.weights[f"w{layer + 1}.w"][:, -1]
    seconds = time.perf_counter() - start
    acc, ce, alpha = _query(config, finals, episodes)
    return CircuitRun("reference", thetas, finals, acc, ce, alpha, seconds, steps)


def numpy_start(config: NetworkConfig, theta: Sequence[float] | np.ndarray, episodes: Episodes) -> list[np.ndarray]:
    """The initial weights numpy needs to compute what the circuit computes (the lead-in's weight decay)."""
    ws, _ = init_weights(config, episodes.seeds)
    return initial_weights(theta, ws)


def lava_check(theta: Sequence[float] | np.ndarray, box: GainBox, steps: int = 200, seed: int = 0,
               config: NetworkConfig | None = None) -> dict:  # fmt: skip
    """The first ``steps`` steps of evaluation episode ``seed`` with rule ``theta`` on the emulator and on Lava
    0.10 fixed_pt (the box's Program, the episode's weights and gains as per-trial weights of one trial),
    compared value for value (every graded output, trace register and plastic weight):
    ``{"exact", "values", "first_divergence", "steps", "seconds_emulator", "seconds_lava", "weights_changed"}``."""
    import neuro_hw
    from neuro_hw.circuits.meta_plasticity_meta import meta_episodes
    from neuro_hw.compare import compare

    config = config or CHIP_CONFIG_DEFAULT
    program, schedule = compiled_program(config, box)
    ep = meta_episodes([seed], "eval")
    n = -(-steps // schedule.period)
    ws, bs = init_weights(config, ep.seeds)
    weights = trial_weights(config, ws, bs, _thetas(theta, 1), box)
    stim = stimuli(schedule, ep, config.sizes[-1], n)
    t0 = time.perf_counter()
    emu = neuro_hw.run(program, stim, steps, backend="emulator", seed=seed, weights=weights)
    t1 = time.perf_counter()
    lava = neuro_hw.run(program, stim, steps, backend="lava", seed=seed, weights=weights)
    t2 = time.perf_counter()
    c = compare(lava, emu, "exact")
    exact = bool(c.passed and not c.only_in_one)
    changed = any(
        not np.array_equal(lava.weights[f"w{k}.w"][0, -1], lava.weights[f"w{k}.w"][0, 0]) for k in range(1, 6)
    )
    return {"exact": exact, "values": int(c.compared_values), "steps": steps, "episode_seed": seed,
            "first_divergence": "" if exact else str(c.first_divergence or c.only_in_one),
            "seconds_emulator": t1 - t0, "seconds_lava": t2 - t1, "weights_changed": bool(changed),
            "theta": [float(v) for v in theta_vector(theta)]}  # fmt: skip
