"""The float64 reference simulator: runs a :class:`~neuro_hw.ir.Circuit` step by step.

Discretisation (``dt`` in the graph's time unit, steps numbered ``t = 1 .. T``):

* Signals between nodes are piecewise constant over a step (zero-order hold); a spike is the value 1
  held for one step.  Neuron nodes integrate their summed input exactly (default) or with forward
  Euler (:mod:`neuro_hw.reference.neurons`).
* **Synaptic delay policy.** With ``synaptic_delay=1`` (default, as on Loihi and in Lava) every weight
  node (``Linear``/``Affine``) delivers at step ``t`` the product of its weights with its input of step
  ``t-1``: a spike at step ``t`` moves the postsynaptic state at ``t+1``, and an input sample given for
  step ``t`` reaches the first neuron layer at ``t+1``.  This also makes every recurrent loop through a
  weight node well defined.  With ``synaptic_delay=0`` weight nodes act within the step (feed-forward
  paths are instantaneous); recurrent loops then need a ``Delay`` node.
* Convolution and pooling nodes (``Conv1d``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``) are weight nodes whose
  matrix is their unrolled geometry (:mod:`neuro_hw.ir.conv`; channels-first, stride, padding, dilation, groups,
  a Conv bias per output channel), with the same synaptic delay as ``Linear``.
* ``Delay`` nodes delay by ``round(delay/dt)`` steps (the delay must be a multiple of ``dt``).
* ``Scale``: ``y = s * x``; ``Threshold``: ``y = [x > theta]``; ``Flatten``: reshape; ``Output``:
  identity; an ``Input`` node without incoming edges emits the stimulus given for it.
* Graded neurons (:mod:`neuro_hw.ir.graded`) are memoryless: ``GradedNeuron`` emits ``f(x)`` of this step's
  summed input, ``ProductNeuron`` ``x * g(b)`` with ``b`` the sum of its gate inputs; with
  ``activations="hardware"`` the activations and gates that a chip cannot compute exactly (softplus and
  its derivative) run in their stated hardware form instead, so the cost of the approximation is measured.
  Their outputs are always recorded (``states["node.y"]``).
* Several edges into one node are summed.
* Plastic weight nodes (:mod:`neuro_hw.reference.plasticity`): the weight node's output for step
  ``t+1`` is computed from the weights *before* the learning step at ``t`` (as in Lava), then traces
  are updated and the rules applied at the end of every epoch.

Everything carries a leading batch axis ``B``: independent trials with their own inputs, states and
(plastic) weights, computed in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from neuro_hw import limits
from neuro_hw.errors import InputError, ValidationError
from neuro_hw.ir.circuit import (
    MATRIX_TYPES,
    NEURON_TYPES,
    SPIKING_TYPES,
    WEIGHT_TYPES,
    Circuit,
    input_shape,
    output_shape,
)
from neuro_hw.ir.conv import SPATIAL_TYPES, bias_of, geometry_of
from neuro_hw.ir.graded import FORMS, GRADED_TYPES, GradedNeuron, ProductNeuron
from neuro_hw.ir.plasticity import first_absent_nonzero
from neuro_hw.reference.neurons import build_neuron
from neuro_hw.reference.plasticity import PlasticSynapse
from neuro_hw.result import Result

#: Above this many recorded weight values, weights are sampled less often than every epoch by default.
DEFAULT_WEIGHT_BUDGET = 20_000_000
METHODS = ("exact", "euler")


def prepare_inputs(
    circuit: Circuit, inputs: Mapping[str, np.ndarray] | None, steps: int, batch: int | None
) -> tuple[dict[str, np.ndarray], int]:
    """Check stimuli and return them as ``(B, T, n)`` float64 arrays plus the batch size.

    Each array may be ``(T, *shape)`` (one trial) or ``(B, T, *shape)``; ``*shape`` may also be given
    flattened.  One trial's stimuli are shared by all ``batch`` trials.  ``T`` must be at least ``steps``.
    """
    inputs = dict(inputs or {})
    names = circuit.input_names
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(
            f"stimulus given for {unknown}, which are not input nodes (inputs: {names})",
            node=unknown[0],
            field="inputs",
        )
    prepared: dict[str, np.ndarray] = {}
    batches = set()
    for name in names:
        if name not in inputs:
            raise InputError("no stimulus given for this input node", node=name, field="inputs")
        arr = np.asarray(inputs[name])
        if arr.dtype.kind not in "biuf":
            raise InputError(f"stimulus must be numeric, got dtype {arr.dtype}", node=name, field="inputs")
        arr = arr.astype(np.float64)
        shape = output_shape(circuit.nodes[name])
        n = int(np.prod(shape))
        if arr.shape[1:] in (shape, (n,)) and arr.ndim >= 2 and arr.shape[1:] != ():
            arr = arr[None]
        elif arr.ndim >= 3 and arr.shape[2:] in (shape, (n,)):
            pass
        else:
            raise InputError(
                f"stimulus has shape {arr.shape}; expected (T, {', '.join(map(str, shape))}) or (B, T, ...) "
                "with the node's shape",
                node=name,
                field="inputs",
            )
        if arr.shape[1] < steps:
            raise InputError(f"stimulus covers {arr.shape[1]} steps, the run needs {steps}", node=name, field="inputs")
        if not np.all(np.isfinite(arr)):
            raise InputError("stimulus contains NaN or inf", node=name, field="inputs")
        prepared[name] = arr.reshape(arr.shape[0], arr.shape[1], n)
        batches.add(arr.shape[0])
    if len(batches) > 1:
        raise InputError(f"inputs disagree on the batch size: {sorted(batches)}", field="inputs")
    b = batches.pop() if batches else (batch or 1)
    if batch is not None and b == 1 and batch > 1:  # one trial's stimuli, shared by every trial
        prepared = {name: np.broadcast_to(arr, (batch,) + arr.shape[1:]) for name, arr in prepared.items()}
        b = batch
    if batch is not None and b != batch:
        raise InputError(f"inputs have batch size {b} but batch={batch} was requested", field="inputs")
    return prepared, b


def _weight_overrides(circuit: Circuit, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Checked float64 weight matrices ``(n_post, n_pre)`` or ``(B, n_post, n_pre)`` per weight node."""
    out = {}
    for name, value in weights.items():
        if name in circuit.nodes and circuit.type_of(name) in SPATIAL_TYPES:
            raise InputError(
                f"weights= replaces weight matrices (Linear, Affine); {circuit.type_of(name)} kernels cannot be "
                "replaced per run",
                node=name,
                field="weights",
            )
        if name not in circuit.nodes or circuit.type_of(name) not in MATRIX_TYPES:
            raise InputError(
                f"{name!r} is not a weight node of the circuit (weight nodes: {circuit.names_of_type(*MATRIX_TYPES)})",
                node=name,
                field="weights",
            )
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"weights must be numeric, got dtype {arr.dtype}", node=name, field="weights")
        arr = arr.astype(np.float64)
        shape = np.shape(circuit.nodes[name].weight)
        if arr.shape[-2:] != shape or arr.ndim not in (2, 3):
            raise InputError(
                f"weights have shape {arr.shape}; expected {shape} or (B, {shape[0]}, {shape[1]})",
                node=name,
                field="weights",
            )
        if not np.all(np.isfinite(arr)):
            raise InputError("weights contain NaN or inf", node=name, field="weights")
        if arr.size and np.max(np.abs(arr)) > limits.MAX_ABS_VALUE:
            raise InputError(f"weights reach {np.max(np.abs(arr)):g}, more in magnitude than "
                             f"{limits.limit_name('MAX_ABS_VALUE')}", node=name, field="weights")  # fmt: skip
        spec = circuit.plasticity.get(name)
        stray = first_absent_nonzero(spec.mask if spec else None, arr)
        if stray is not None:
            raise InputError(f"weight {arr[stray]:g} at {stray} is on a synapse outside the plasticity mask (absent "
                             "synapses are 0)", node=name, field="weights")  # fmt: skip
        out[name] = arr
    return out


def _delay_steps(name: str, delay: np.ndarray, dt: float) -> np.ndarray:
    steps = np.rint(np.asarray(delay, dtype=np.float64) / dt)
    if steps.size and np.max(steps) > limits.MAX_DELAY_STEPS:
        raise ValidationError(f"a delay of {np.max(delay):g} is {np.max(steps):.3g} steps of dt={dt:g}, more than "
                              f"{limits.limit_name('MAX_DELAY_STEPS')}", node=name, field="delay")  # fmt: skip
    if np.any(np.abs(steps * dt - delay) > 1e-9 * max(1.0, float(np.max(np.abs(delay))))):
        raise ValidationError(f"delays must be multiples of dt={dt:g}", node=name, field="delay")
    return steps.astype(np.int64).reshape(-1)


class _Schedule:
    """Static evaluation plan: node order within a step and which nodes are buffered across steps."""

    def __init__(self, circuit: Circuit, dt: float, synaptic_delay: int) -> None:
        self.delay_steps: dict[str, np.ndarray] = {}
        buffered = set()
        for name in circuit.names_of_type("Delay"):
            k = _delay_steps(name, circuit.nodes[name].delay, dt)
            self.delay_steps[name] = k
            if np.all(k >= 1):
                buffered.add(name)
        if synaptic_delay == 1:
            buffered.update(circuit.names_of_type(*WEIGHT_TYPES))
        self.buffered = buffered
        # Topological order of the graph without the edges that leave buffered nodes.
        indeg = {n: 0 for n in circuit.nodes}
        succ: dict[str, list[str]] = {n: [] for n in circuit.nodes}
        for a, b in circuit.edges:
            if a in buffered:
                continue
            succ[a].append(b)
            indeg[b] += 1
        order = [n for n in circuit.nodes if indeg[n] == 0]
        i = 0
        while i < len(order):
            for b in succ[order[i]]:
                indeg[b] -= 1
                if indeg[b] == 0:
                    order.append(b)
            i += 1
        if len(order) != len(circuit.nodes):
            stuck = sorted(n for n in circuit.nodes if indeg[n] > 0)
            hint = "" if synaptic_delay == 1 else " (use synaptic_delay=1 or add a Delay node)"
            raise ValidationError(
                f"the graph has a loop without a delaying node through {stuck}{hint}", node=stuck[0], field="edges"
            )
        self.order = order


def _parse_record(circuit: Circuit, record: Iterable[str] | str | None) -> set[tuple[str, str]]:
    """Record specs -> set of (node, variable).  ``"all"``, ``"node"`` or ``"node.var"``."""
    if record is None:
        return set()
    if isinstance(record, str):
        record = [record]
    record = list(record) if isinstance(record, Iterable) else record
    if not isinstance(record, list) or not all(isinstance(spec, str) for spec in record):
        raise InputError(f"record must be a string or a list of strings, got {record!r}", field="record")
    wanted: set[tuple[str, str]] = set()
    for spec in record:
        if spec == "all":
            for name in circuit.nodes:
                wanted.update((name, v) for v in _variables(circuit, name))
            continue
        node, _, var = spec.rpartition(".") if spec not in circuit.nodes else (spec, "", "")
        if node not in circuit.nodes:
            raise InputError(f"cannot record {spec!r}: no such node", node=node or spec, field="record")
        available = _variables(circuit, node)
        if not var:
            wanted.update((node, v) for v in available)
        elif var not in available:
            raise InputError(
                f"cannot record {spec!r}: {node!r} has variables {list(available)}", node=node, field="record"
            )
        else:
            wanted.add((node, var))
    return wanted


def _variables(circuit: Circuit, name: str) -> tuple[str, ...]:
    kind = circuit.type_of(name)
    if kind in GRADED_TYPES:
        return ("y",)
    if kind in ("CubaLI", "CubaLIF"):
        return ("i", "v")
    if kind in NEURON_TYPES:
        return ("v",)
    if name in circuit.plasticity:
        spec = circuit.plasticity[name]
        return tuple(spec.traces) + ("output", "w") + tuple(v for v in ("t", "d") if v in spec.variables)
    if kind in MATRIX_TYPES:
        return ("output", "w")
    return ("output",)


def simulate(
    circuit: Circuit,
    inputs: Mapping[str, np.ndarray] | None,
    steps: int,
    dt: float,
    *,
    seed: int = 0,
    record: Iterable[str] | str | None = None,
    method: str = "exact",
    synaptic_delay: int = 1,
    batch: int | None = None,
    weights_every: int | None = None,
    activations: str = "exact",
    weights: Mapping[str, np.ndarray] | None = None,
) -> Result:
    """Simulate ``circuit`` in float64 for ``steps`` steps of length ``dt``.

    Parameters
    ----------
    inputs:
        Input node name -> stimulus ``(T, *shape)`` or ``(B, T, *shape)``.
    record:
        Extra state to record: ``"lif.v"``, ``"syn.x1"``, ``"lif"`` (all its variables) or ``"all"``.
        Spikes of spiking nodes, values of Output nodes and the weights of plastic nodes are always
        recorded.
    method:
        ``"exact"`` (exponential integration) or ``"euler"``.
    synaptic_delay:
        1 (default): weight nodes deliver one step later; 0: within the step (see module docstring).
    batch:
        Number of trials when the circuit has no inputs (otherwise taken from the inputs).
    weights_every:
        Sample plastic weights every this many steps (plus the initial and final values).  Default: every
        epoch, or sparser when that would exceed about 2e7 recorded values.
    seed:
        Recorded for provenance; the reference itself is deterministic.
    activations:
        ``"exact"`` (default) or ``"hardware"``: the stated hardware forms of graded activations and gates
        that a chip cannot compute (:mod:`neuro_hw.ir.graded`).
    weights:
        Weight matrices in place of the circuit's, ``{node: (n_post, n_pre)}`` or per trial ``{node: (B,
        n_post, n_pre)}`` (initial weights of plastic nodes, the weights of static ones); per-trial weights
        define ``B`` when no input has a batch axis.

    The run uses one BLAS thread: its per-step products are small, and on a busy 2-core machine OpenBLAS
    threads made a 3000-step run of the digits circuit 8x slower (13 s in matrix-vector products instead of
    about 0.1 s).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _simulate(
            circuit,
            inputs,
            steps,
            dt,
            seed=seed,
            record=record,
            method=method,
            synaptic_delay=synaptic_delay,
            batch=batch,
            weights_every=weights_every,
            activations=activations,
            weights=weights,
        )


def _simulate(
    circuit: Circuit,
    inputs: Mapping[str, np.ndarray] | None,
    steps: int,
    dt: float,
    *,
    seed: int = 0,
    record: Iterable[str] | str | None = None,
    method: str = "exact",
    synaptic_delay: int = 1,
    batch: int | None = None,
    weights_every: int | None = None,
    activations: str = "exact",
    weights: Mapping[str, np.ndarray] | None = None,
) -> Result:
    if not isinstance(circuit, Circuit):
        raise TypeError(f"simulate() expects a Circuit, got {type(circuit).__name__}")
    steps, dt = limits.check_steps(steps), limits.check_dt(dt)
    seed = limits.check_seed(seed)
    if weights_every is not None:
        weights_every = limits.check_every(weights_every, "weights_every")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1
                              or batch > limits.MAX_BATCH):  # fmt: skip
        raise InputError(f"batch must be an integer in 1..{limits.MAX_BATCH}, got {batch!r}", field="batch")
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}", field="method")
    if synaptic_delay not in (0, 1):
        raise InputError(f"synaptic_delay must be 0 or 1, got {synaptic_delay!r}", field="synaptic_delay")
    if activations not in FORMS:
        raise InputError(f"activations must be one of {FORMS}, got {activations!r}", field="activations")
    steps, dt = int(steps), float(dt)
    circuit.validate()
    override = _weight_overrides(circuit, weights or {})
    n_trials = {w.shape[0] for w in override.values() if w.ndim == 3}
    if batch is None and n_trials and not any(np.ndim(v) >= 3 for v in (inputs or {}).values()):
        batch = n_trials.pop()
    stimuli, B = prepare_inputs(circuit, inputs, steps, batch)
    for name, w in override.items():
        if w.ndim == 3 and w.shape[0] != B:
            raise InputError(f"weights are given for {w.shape[0]} trials, the run has {B}", node=name, field="weights")
    schedule = _Schedule(circuit, dt, synaptic_delay)
    wanted = _parse_record(circuit, record)

    # -- build node state -------------------------------------------------------------------------
    steppers, neuron_state = {}, {}
    for name in circuit.names_of_type(*NEURON_TYPES):
        try:
            steppers[name] = build_neuron(circuit.nodes[name], dt, method)
        except ValidationError as err:
            raise err.located(node=name) from None
        neuron_state[name] = steppers[name].init_state(B)

    def initial_weight(name: str) -> np.ndarray:
        return override[name] if name in override else np.asarray(circuit.nodes[name].weight, dtype=np.float64)

    plastic = {
        name: PlasticSynapse(name, spec, initial_weight(name), B, dt) for name, spec in circuit.plasticity.items()
    }
    static_w = {name: initial_weight(name) for name in circuit.names_of_type(*MATRIX_TYPES) if name not in plastic}
    bias = {
        name: np.asarray(circuit.nodes[name].bias, dtype=np.float64).reshape(-1)
        for name in circuit.names_of_type("Affine")
    }
    spatial = {}  # convolution / pooling: the unrolled sparse matrix (n_out, n_in)
    for name in circuit.names_of_type(*SPATIAL_TYPES):
        geometry = geometry_of(circuit.nodes[name], name)
        spatial[name] = geometry.unroll(np.float64)
        b = bias_of(circuit.nodes[name], geometry)
        if b is not None:
            bias[name] = b
    preds = {name: circuit.predecessors(name) for name in circuit.nodes}
    sizes = {name: circuit.size(name) for name in circuit.nodes}
    in_sizes = {name: int(np.prod(input_shape(node))) for name, node in circuit.nodes.items()}
    zeros_out = {name: np.zeros((B, sizes[name])) for name in circuit.nodes}
    # Delay lines as ring buffers: the input of step t goes to slot t % L; a delay of k steps reads slot (t-k) % L.
    delay_buf = {name: np.zeros((B, int(k.max()) + 1, sizes[name])) for name, k in schedule.delay_steps.items()}
    delay_cols = {name: np.arange(sizes[name]) for name in delay_buf}
    kinds = {name: circuit.type_of(name) for name in circuit.nodes}
    # Outputs of buffered nodes for the *current* step (computed at the end of the previous one).
    carried = {name: zeros_out[name].copy() for name in schedule.buffered}
    for name in bias:
        if name in carried:
            carried[name] = np.broadcast_to(bias[name], (B, sizes[name])).copy()

    def weight_of(name: str) -> np.ndarray:
        return plastic[name].weight if name in plastic else static_w[name]

    def apply_weights(name: str, x: np.ndarray) -> np.ndarray:
        if name in spatial:
            y = np.asarray(spatial[name] @ x.T).T
        else:
            w = weight_of(name)
            y = np.einsum("bij,bj->bi", w, x) if w.ndim == 3 else x @ w.T
        if name in bias:
            y = y + bias[name]
        return y

    def node_input(name: str, out: dict[str, np.ndarray], exclude: tuple[str, ...] = ()) -> np.ndarray:
        total = np.zeros((B, in_sizes[name]))
        for p in preds[name]:
            if p not in exclude:
                total += out[p]
        return total

    def gate_input(name: str, node: ProductNeuron, out: dict[str, np.ndarray]) -> np.ndarray:
        total = np.zeros((B, in_sizes[name]))
        for p in node.gate_inputs:
            total += out[p]
        return total

    # -- recording buffers ------------------------------------------------------------------------
    spiking = [n for n in circuit.nodes if circuit.type_of(n) in SPIKING_TYPES + ("Threshold",)]
    spikes_rec = {n: np.zeros((B, steps, sizes[n]), dtype=bool) for n in spiking}
    graded = circuit.graded_nodes
    state_keys = sorted(wanted | {(n, "output") for n in circuit.output_names} | {(n, "y") for n in graded})
    # Synaptic variables (w, t, d) are recorded as sampled weights, not per-step states.
    state_keys = [(n, v) for n, v in state_keys if not (circuit.type_of(n) in WEIGHT_TYPES and v in ("w", "t", "d"))]
    widths = sum(sizes[n] for n in spiking) + sum(
        plastic[n].traces[v].shape[1] if (n in plastic and v in plastic[n].traces) else sizes[n] for n, v in state_keys
    )
    limits.check_recording(B * steps * widths, f"a {steps:,}-step run of {B} trial(s)")
    state_rec = {}
    for n, v in state_keys:
        width = plastic[n].traces[v].shape[1] if (n in plastic and v in plastic[n].traces) else sizes[n]
        state_rec[(n, v)] = np.zeros((B, steps, width))
    epochs = {name: syn.spec.t_epoch for name, syn in plastic.items()}
    weight_rec: dict[str, list[np.ndarray]] = {}
    weight_steps: dict[str, list[int]] = {}
    sample_every = {}
    for name, syn in plastic.items():
        per_sample = B * syn.n_pre * syn.n_post * len(syn.vars)
        every = weights_every or epochs[name]
        if weights_every is None:
            while (steps // every + 2) * per_sample > DEFAULT_WEIGHT_BUDGET and every < steps:
                every *= 2
        sample_every[name] = max(1, int(every))
        for var in syn.vars:
            weight_rec[f"{name}.{var}"] = [syn.vars[var].copy()]
            weight_steps[f"{name}.{var}"] = [0]
    limits.check_recording(
        B * steps * widths
        + sum((steps // sample_every[n] + 2) * B * s.n_pre * s.n_post * len(s.vars) for n, s in plastic.items()),
        f"a {steps:,}-step run of {B} trial(s) with its sampled weights",
        field="weights_every",
    )
    for name in circuit.names_of_type(*MATRIX_TYPES):
        if name not in plastic and (name, "w") in wanted:
            weight_rec[f"{name}.w"] = [np.broadcast_to(static_w[name], (B,) + static_w[name].shape[-2:]).copy()]
            weight_steps[f"{name}.w"] = [0]

    # -- time loop --------------------------------------------------------------------------------
    out: dict[str, np.ndarray] = {}
    for t in range(1, steps + 1):
        out = dict(carried)
        for name in schedule.order:
            if name in schedule.buffered:
                continue
            kind = kinds[name]
            if kind == "Input" and not preds[name]:
                out[name] = stimuli[name][:, t - 1]
                continue
            node = circuit.nodes[name]
            if isinstance(node, ProductNeuron):
                x = node_input(name, out, exclude=node.gate_inputs)
                out[name] = node(x, gate_input(name, node, out), activations)
                continue
            x = node_input(name, out)
            if isinstance(node, GradedNeuron):
                out[name] = node(x, activations)
            elif kind in NEURON_TYPES:
                y = steppers[name].step(neuron_state[name], x.reshape((B,) + steppers[name].shape))
                out[name] = y.reshape(B, -1)
            elif kind in WEIGHT_TYPES:
                out[name] = apply_weights(name, x)
            elif kind == "Scale":
                out[name] = x * np.asarray(circuit.nodes[name].scale, dtype=np.float64).reshape(-1)
            elif kind == "Threshold":
                out[name] = (x > np.asarray(circuit.nodes[name].threshold, dtype=np.float64).reshape(-1)) * 1.0
            elif kind == "Delay":  # zero-step delays (buffered delays are handled below)
                buf = delay_buf[name]
                buf[:, t % buf.shape[1]] = x
                out[name] = buf[:, (t - schedule.delay_steps[name]) % buf.shape[1], delay_cols[name]]
            else:  # Input with predecessors, Output, Flatten: identity
                out[name] = x
        # Buffered nodes: compute what they deliver at the next step from this step's outputs.
        for name in schedule.buffered:
            x = node_input(name, out)
            if kinds[name] in WEIGHT_TYPES:
                carried[name] = apply_weights(name, x)
            else:  # Delay with all delays >= 1 step
                buf = delay_buf[name]
                buf[:, t % buf.shape[1]] = x
                carried[name] = buf[:, (t - schedule.delay_steps[name] + 1) % buf.shape[1], delay_cols[name]]
        # Plasticity: traces, then rules at the end of each epoch.
        for name, syn in plastic.items():
            third = {tr: out[src] for tr, src in syn.spec.third_factor.items()}
            syn.observe(t, out[syn.spec.pre], out[syn.spec.post], third)
            syn.learn(t)
            if t % sample_every[name] == 0 or t == steps:
                for var, value in syn.vars.items():
                    weight_rec[f"{name}.{var}"].append(value.copy())
                    weight_steps[f"{name}.{var}"].append(t)
        # Recording.
        for n in spiking:
            spikes_rec[n][:, t - 1] = out[n] != 0
        for (n, v), buf in state_rec.items():
            if n in plastic and v in plastic[n].traces:
                buf[:, t - 1] = plastic[n].traces[v]
            elif n in neuron_state:
                buf[:, t - 1] = neuron_state[n][v].reshape(B, -1)
            elif v == "y":
                buf[:, t - 1] = out[n]
            else:
                buf[:, t - 1] = out[n]

    # Divergence: float64 overflowed (parameters or learning that grow without bound); refuse NaN/inf results.
    finals = [((n, v), buf, True) for (n, v), buf in state_rec.items()]
    finals += [((n, v), np.asarray(value), False) for n, st in neuron_state.items() for v, value in st.items()]
    finals += [((n, v), value, False) for n, syn in plastic.items() for v, value in {**syn.vars, **syn.traces}.items()]
    for (n, v), value, per_step in finals:
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            when = ""
            if per_step:
                bad_steps = np.flatnonzero(~np.isfinite(value.reshape(B, steps, -1)).all(axis=(0, 2)))
                when = f" at step {int(bad_steps[0]) + 1}"
            raise ValidationError(
                f"the simulation diverged: {v} became NaN or inf{when} (float64 overflow; parameters or learning "
                f"rules that grow without bound)",
                node=n,
                field=v,
            )

    def shaped(name: str, arr: np.ndarray) -> np.ndarray:
        return arr.reshape((B, steps) + output_shape(circuit.nodes[name]))

    states = {}
    for (n, v), buf in state_rec.items():
        states[f"{n}.{v}"] = buf if (n in plastic and v != "output") else shaped(n, buf)
    return Result(
        spikes={n: shaped(n, s) for n, s in spikes_rec.items()},
        states=states,
        weights={k: np.stack(v, axis=1) for k, v in weight_rec.items()},
        weight_steps={k: np.asarray(v, dtype=np.int64) for k, v in weight_steps.items()},
        dt=dt,
        steps=steps,
        batch=B,
        backend="reference",
        circuit_hash=circuit.hash(),
        seed=int(seed),
        target="float64",
        metadata={"method": method, "synaptic_delay": synaptic_delay, "activations": activations},
    )
