"""Training the self-assembling circuit on a backend: the float reference or the fixed-point emulator.

:func:`train_circuit` presents a task's samples on the circuit's pulse schedule (one sample per learning epoch,
:class:`~neuro_hw.circuits.self_assembly.PulseSchedule`) for several seeds at once -- one trial per seed, with
the seed's initial weights (``weights=`` per trial) and sample order -- and reads back what the ground truth
reports: test accuracy / MSE of the learned weights after every epoch (their float forward pass), the online
accuracy measured on the backend (``argmax o`` at the output's pulse, before the sample's update) and the
self-assembly metrics of :func:`~neuro_hw.circuits.self_assembly_numpy.alignment`.

Runs go in chunks of whole samples, so that the per-step recordings stay small:

* **emulator**: one resumable :class:`neuro_hw.emulator.engine.EmulatorRun` advanced chunk by chunk (exactly one
  long run); weights read at the recorded samples' learning steps, in float units (``int / w_scale``);
* **reference**: one :func:`neuro_hw.simulate` per chunk, started from the weights the previous chunk ended
  with.  This is exact because nothing is in flight at a sample boundary (every pulse of a sample has arrived
  when its epoch ends; the held ``x1`` of a silent pre is never read: rules are gated by ``x0``) and chunks hold
  a multiple of ``2**decimation`` samples (the decay's ``u_k`` keeps its phase).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.circuits.digits import epoch_order
from neuro_hw.circuits.self_assembly import CircuitSpec, compile_options, self_assembly_circuit, weight_overrides
from neuro_hw.circuits.self_assembly_numpy import Task, alignment, evaluate, init_weights

BACKENDS = ("reference", "emulator")


@dataclass
class CircuitRun:
    """What :func:`train_circuit` measured (leading axis: seeds ``S``).

    ``record_samples`` ``(K,)``: sample counts after which the weights were read (0 = initial); ``w[l]`` ``(S, K,
    n_l+1, n_l)`` and ``b[j]`` ``(S, K, n_j, n_j+1)`` (``b[0]`` None) in float units; ``angle``/``rel_diff``
    ``(S, K, L-1)``; ``test_accuracy``/``test_mse`` ``(S, E)`` after each epoch; ``online_accuracy`` ``(S, E)``.
    """

    backend: str
    seeds: list[int]
    record_samples: np.ndarray
    w: list[np.ndarray]
    b: list[np.ndarray | None]
    angle: np.ndarray
    rel_diff: np.ndarray
    test_accuracy: np.ndarray
    test_mse: np.ndarray
    online_accuracy: np.ndarray
    seconds: float = 0.0
    program: object | None = None
    notes: list[str] = field(default_factory=list)


def _record_points(n_samples: int, every: int, n_train: int) -> list[int]:
    """Sample counts at which the weights are read: 0, every ``every`` samples, every epoch's end, the last."""
    points = set(range(0, n_samples + 1, every)) | set(range(0, n_samples + 1, n_train)) | {n_samples}
    return sorted(points)


def train_circuit(
    spec: CircuitSpec,
    task: Task,
    seeds: Sequence[int],
    backend: str = "emulator",
    *,
    epochs: int | None = None,
    n_samples: int | None = None,
    target: object = "loihi2",
    record_every: int | None = None,
    chunk: int = 128,
    program: object | None = None,
) -> CircuitRun:
    """Train the circuit of ``spec`` on ``task`` for ``seeds`` (one trial each) on ``backend`` (module doc).

    ``epochs`` (default ``spec.params.epochs``) passes over the training set, or only the first ``n_samples``
    samples of that order; ``target``: a target name or :class:`~neuro_hw.compiler.target.Target` (variant) for
    the emulator; ``record_every``: read the weights every this many samples (default: every epoch);
    ``program``: a program compiled earlier for this spec and target (skips compiling).
    """
    import neuro_hw
    from neuro_hw.compiler.target import Target, load_target

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    seeds = [int(s) for s in seeds]
    p = spec.params
    L = p.n_layers
    epochs = p.epochs if epochs is None else int(epochs)
    orders = np.stack([epoch_order(task.n_train, epochs, s) for s in seeds])
    total = orders.shape[1] if n_samples is None else min(int(n_samples), orders.shape[1])
    unit = 2**spec.decimation
    chunk = max(unit, (int(chunk) // unit) * unit)
    every = task.n_train if record_every is None else int(record_every)
    points = _record_points(total, every, task.n_train)
    w0, b0 = init_weights(p, seeds)
    circuit, sched = self_assembly_circuit(spec, [m[0] for m in w0], [None] + [m[0] for m in b0[1:]])
    T = sched.period
    S = len(seeds)
    rec_w = [np.zeros((S, len(points)) + m.shape[1:]) for m in w0]
    rec_b = [None] + [np.zeros((S, len(points)) + m.shape[1:]) for m in b0[1:]]
    for layer in range(L):
        rec_w[layer][:, 0] = w0[layer]
        if layer:
            rec_b[layer][:, 0] = b0[layer]  # type: ignore[index]
    correct = np.zeros((S, epochs))
    seen = np.zeros(epochs)
    start_time = time.perf_counter()
    run = None
    if backend == "emulator":
        from neuro_hw.compiler.trial_weights import trial_weights
        from neuro_hw.emulator.engine import EmulatorRun, normalize_inputs
        from neuro_hw.runner import stimulus_to_payloads

        tgt = target if isinstance(target, Target) else load_target(str(target))
        if program is None:
            program = neuro_hw.compile(
                circuit, target=tgt, dt=sched_dt(circuit), **compile_options(spec, tgt.learning.trace_max)
            )
        run = EmulatorRun(program, seeds, record="spikes", weights=trial_weights(program, weight_overrides(w0, b0), S))
        o_scale = np.asarray(program.neurons["o"].y_scale)
        w_scales = {name: np.asarray(program.connections[name].w_scale).reshape(-1, 1) for name in _plastic(L)}
    current = weight_overrides(w0, b0)
    done = 0
    while done < total:
        n = min(chunk, total - done)
        idx = orders[:, done : done + n]
        stim = sched.present(task.x_train[idx], task.t_train[idx], phase=spec.form == "hardware")
        steps = sched.steps(n)
        inside = [k for k in points if done < k <= done + n]
        if backend == "emulator":
            data, _, _ = normalize_inputs(program, stimulus_to_payloads(program, stim), steps, seeds)
            sampled = [run.steps_done + sched.learning_step(k - done - 1) for k in inside]
            chunk_rec = run.advance(data, steps, sampled)
            o = chunk_rec.states["o.y"].astype(np.float64) / o_scale
            weights = {name: chunk_rec.weights[f"{name}.w"] / w_scales[name] for name in _plastic(L)}
        else:
            result = neuro_hw.simulate(
                circuit, stim, steps, sched_dt(circuit), weights=current, weights_every=T, seed=seeds[0]
            )
            o = result.states["o.y"]
            rows = [sched.learning_step(k - done - 1) // T for k in inside]  # weight_steps are 0, T, 2T, ...
            weights = {name: result.weights[f"{name}.w"][:, rows] for name in _plastic(L)}
            current = {name: result.weights[f"{name}.w"][:, -1] for name in _plastic(L)}
        # online accuracy: o at the output pulse of each sample, before its update
        out = o[:, np.arange(n) * T + sched.h_time(L) - 1]  # (S, n, n_out)
        if task.labels_train is not None:
            labels = task.labels_train[idx]
            epoch_of = (done + np.arange(n)) // task.n_train
            hit = np.argmax(out, axis=-1) == labels
            for e in np.unique(epoch_of):
                correct[:, e] += hit[:, epoch_of == e].sum(axis=1)
                seen[e] += np.count_nonzero(epoch_of == e)
        for i, k in enumerate(inside):
            row = points.index(k)
            for layer in range(L):
                rec_w[layer][:, row] = weights[f"w{layer}"][:, i]
                if layer:
                    rec_b[layer][:, row] = weights[f"b{layer}"][:, i]  # type: ignore[index]
        done += n
    seconds = time.perf_counter() - start_time
    record = np.asarray(points)
    ends = [points.index(k) for k in points if k > 0 and (k % task.n_train == 0 or k == total)]
    acc = np.zeros((S, len(ends)))
    mse = np.zeros((S, len(ends)))
    for e, row in enumerate(ends):
        acc[:, e], mse[:, e] = evaluate(p, [m[:, row] for m in rec_w], task)
    angle = np.zeros((S, len(points), L - 1))
    rel = np.zeros((S, len(points), L - 1))
    for j in range(1, L):
        angle[:, :, j - 1], rel[:, :, j - 1] = alignment(rec_w[j], rec_b[j])  # type: ignore[arg-type]
    online = correct / np.maximum(seen, 1) if task.labels_train is not None else np.full((S, epochs), np.nan)
    return CircuitRun(backend, seeds, record, rec_w, rec_b, angle, rel, acc, mse, online, seconds, program)


def _plastic(n_layers: int) -> list[str]:
    return [f"w{layer}" for layer in range(n_layers)] + [f"b{j}" for j in range(1, n_layers)]


def sched_dt(circuit) -> float:  # noqa: ANN001
    return float(circuit.metadata.get("dt", 1e-3))
