"""Heterosynaptic circuits as gradient machines (seed P2, the documented reconstruction): numpy float64 ground truth.

This is *our reconstruction* of Ziyin, Chuang & Poggio (arXiv 2505.02248) (the paper's equations were not
readable; see ``docs/heterosynaptic.md``).  One model covers the three circuits:

* a **forward** stream of levels ``0`` (input, ``n_0``) .. ``L`` (output, ``n_L``); forward synapses ``W[l, j]``
  (``n_l x n_j``, ``j < l``, on a 0/1 mask: sparse and layer-skipping in amorphous networks)::

      a_l = sum_j W[l, j] h_j,   h_l = clip(a_l, 0, c_h) (1 <= l < L),   o = h_L = a_L,   e = o - t,   L = |e|^2 / 2

* a **feedback** stream: one feedback node per hidden forward neuron, and the output error ``delta_L = e``.  The
  *heterosynaptic projections* ``V[l, m]`` (``n_l x n_m``, ``l < m``, their own random 0/1 mask) carry the feedback
  nodes' activity onto forward neuron ``i`` of level ``l`` as its **learning potential** at the later time ``t'``::

      p_l(t') = sum_{m > l} V[l, m] delta_m,     delta_l = f'(a_l) * p_l,     f'(a) = [0 < a < c_h]

  (the feedback node of neuron ``i`` reads ``p_i`` and its forward twin's gate).

* **plasticity**, one sample at a time (online, batch 1), all increments from the pre-update weights::

      dW[l, j] = -eta   * s_l * (delta_l h_j^T) o A[l, j] - eta   * lam   * W[l, j]     (HSP: W's change is driven
                                                                                        by the other pathway's p)
      dV[l, m] = -eta_v * r_l * (h_l delta_m^T) o B[l, m] - eta_v * lam_v * V[l, m]   (Kolen-Pollack-like: pre =
                                                                                        feedback activity delta_m,
                                                                                        factor = forward h_l)
      W = clip(W + dW, -w_max, w_max),  V = clip(V + dV, -w_max, w_max)

  ``s_l`` / ``r_l`` (:class:`Gains`, default 1) are the signs and gains of the heterosynaptic updates per level (the
  evolution experiment draws them at random); the output level has ``s_L = 1`` (the delta rule).  With
  ``B[l, m] = A[m, l]^T`` the V-update of ``V[l, m]_ik`` equals the W-update of ``W[m, l]_ki``: the two pathways
  receive the same increments and (with decay) ``V -> W^T``, i.e. **HS**: ``p_l`` becomes ``phi * dL/dh_l``.

Topologies (:class:`Topology`): :func:`motif` (input -> hidden -> output, V from the error to the hidden neurons),
:func:`structured` (layered, dense, ``B = A^T``: the Kolen-Pollack-like net) and :func:`amorphous` (sparse random
forward masks with layer skips, an independent random feedback mask).

Initialisation (:func:`init_state`): ``rng = default_rng([seed, 1])`` draws, level by level and source by source in
sorted key order, ``W[l, j] ~ U(-g/sqrt(k_l), g/sqrt(k_l)) o A[l, j]`` (``k_l`` = mean fan-in of level ``l``), then
``V[l, m] ~ U(-gv/sqrt(q_l), ...) o B[l, m]`` (``q_l`` = mean feedback fan-in of level ``l``).

The **true gradient** (backprop through the actual ``W``) is computed for the monitors only (:func:`probe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.circuits import monitors

Key = tuple[int, int]


@dataclass(frozen=True)
class Topology:
    """Sizes of levels ``0..L`` and the 0/1 masks of the forward synapses ``forward[(l, j)]`` (``n_l x n_j``,
    ``j < l``) and of the heterosynaptic projections ``feedback[(l, m)]`` (``n_l x n_m``, ``1 <= l < m <= L``)."""

    sizes: tuple[int, ...]
    forward: Mapping[Key, np.ndarray]
    feedback: Mapping[Key, np.ndarray]
    name: str = "network"

    def __post_init__(self) -> None:
        L = len(self.sizes) - 1
        if L < 2:
            raise ValueError(f"{self.name}: need >= 3 levels (input, hidden, output), got sizes {self.sizes}")
        for kind, masks, ok in (
            ("forward", self.forward, lambda l, j: 0 <= j < l <= L),
            ("feedback", self.feedback, lambda l, m: 1 <= l < m <= L),
        ):
            for (l, j), mask in masks.items():
                if not ok(l, j):
                    raise ValueError(f"{self.name}: {kind} mask {(l, j)} outside the allowed levels (L = {L})")
                if np.shape(mask) != (self.sizes[l], self.sizes[j]):
                    raise ValueError(
                        f"{self.name}: {kind} mask {(l, j)} has shape {np.shape(mask)}, "
                        f"expected {(self.sizes[l], self.sizes[j])}"
                    )
        for l in range(1, L + 1):
            if not any(k[0] == l for k in self.forward):
                raise ValueError(f"{self.name}: level {l} has no forward input")
        for l in range(1, L):
            if not any(k[0] == l for k in self.feedback):
                raise ValueError(f"{self.name}: hidden level {l} receives no heterosynaptic projection")

    @property
    def n_levels(self) -> int:
        """``L``: the index of the output level."""
        return len(self.sizes) - 1

    def forward_keys(self, level: int | None = None) -> list[Key]:
        return sorted(k for k in self.forward if level is None or k[0] == level)

    def feedback_keys(self, level: int | None = None) -> list[Key]:
        return sorted(k for k in self.feedback if level is None or k[0] == level)

    def n_forward_synapses(self) -> int:
        return int(sum(np.count_nonzero(m) for m in self.forward.values()))

    def n_feedback_synapses(self) -> int:
        return int(sum(np.count_nonzero(m) for m in self.feedback.values()))


def motif(n_in: int = 64, n_hidden: int = 1, n_out: int = 10) -> Topology:
    """The minimal heterosynaptic motif: ``n_hidden`` neurons receive the input ``h~`` through ``W`` at ``t`` and the
    error through ``V`` at ``t'``; W's plasticity is driven by the potential ``V e``, V's by the forward activity."""
    sizes = (n_in, n_hidden, n_out)
    ones = lambda r, c: np.ones((r, c), dtype=bool)  # noqa: E731
    return Topology(
        sizes, {(1, 0): ones(n_hidden, n_in), (2, 1): ones(n_out, n_hidden)}, {(1, 2): ones(n_hidden, n_out)}, "motif"
    )


def structured(sizes: Sequence[int]) -> Topology:
    """The Kolen-Pollack-like structured network: dense layers, projections ``B[l, l+1] = A[l+1, l]^T``."""
    sizes = tuple(int(s) for s in sizes)
    L = len(sizes) - 1
    fwd = {(l, l - 1): np.ones((sizes[l], sizes[l - 1]), dtype=bool) for l in range(1, L + 1)}
    fb = {(l, l + 1): np.ones((sizes[l], sizes[l + 1]), dtype=bool) for l in range(1, L)}
    return Topology(sizes, fwd, fb, "structured")


def amorphous(
    sizes: Sequence[int],
    p_forward: float = 0.5,
    p_skip: float = 0.15,
    p_feedback: float = 0.5,
    p_feedback_skip: float = 0.15,
    seed: int = 0,
) -> Topology:
    """A random "amorphous" network: forward synapses from level ``l-1`` with probability ``p_forward`` and from
    every lower level with ``p_skip`` (layer-skipping, the input included); heterosynaptic projections from the
    feedback nodes of level ``l+1`` with ``p_feedback`` and of every higher level with ``p_feedback_skip``, drawn
    independently of the forward masks (``rng = default_rng([seed, 7])``).  Every hidden neuron gets at least one
    forward input, one forward output and one projection (a random one is added where the draw gave none)."""
    sizes = tuple(int(s) for s in sizes)
    L = len(sizes) - 1
    rng = np.random.default_rng([seed, 7])
    fwd: dict[Key, np.ndarray] = {}
    fb: dict[Key, np.ndarray] = {}
    for l in range(1, L + 1):
        for j in range(l):
            fwd[(l, j)] = rng.random((sizes[l], sizes[j])) < (p_forward if j == l - 1 else p_skip)
    for l in range(1, L):
        for m in range(l + 1, L + 1):
            fb[(l, m)] = rng.random((sizes[l], sizes[m])) < (p_feedback if m == l + 1 else p_feedback_skip)
    for l in range(1, L + 1):  # every neuron of level l has an input from level l-1 at least
        has_input = np.any([fwd[(l, j)].any(axis=1) for j in range(l)], axis=0)
        for i in np.flatnonzero(~has_input):
            fwd[(l, l - 1)][i, rng.integers(sizes[l - 1])] = True
    for l in range(1, L):  # every hidden neuron feeds level l+1 at least, and receives a projection
        m = fwd[(l + 1, l)]
        outs = np.any([fwd[(k, l)].any(axis=0) for k in range(l + 1, L + 1)], axis=0)
        for i in np.flatnonzero(~outs):
            m[rng.integers(sizes[l + 1]), i] = True
        ins = np.any([fb[(l, k)].any(axis=1) for k in range(l + 1, L + 1)], axis=0)
        for i in np.flatnonzero(~ins):
            fb[(l, l + 1)][i, rng.integers(sizes[l + 1])] = True
    fwd = {k: v for k, v in fwd.items() if v.any()}
    fb = {k: v for k, v in fb.items() if v.any()}
    return Topology(sizes, fwd, fb, "amorphous")


def matched(topo: Topology) -> Topology:
    """The same forward wiring with projections that mirror it: ``feedback[(l, m)] = forward[(m, l)]^T`` for every
    hidden level ``l`` (a Kolen-Pollack-like layout of an amorphous network; the initial V stays random)."""
    fb = {(l, m): np.asarray(mask, dtype=bool).T.copy() for (m, l), mask in topo.forward.items() if l >= 1}
    return Topology(topo.sizes, dict(topo.forward), fb, f"{topo.name}-matched")


def amorphous_blocks(
    sizes: Sequence[int], p_skip: float = 0.5, p_feedback: float = 0.75, p_feedback_skip: float = 0.5, seed: int = 0
) -> Topology:
    """An amorphous network at the granularity of levels (whole blocks: the circuit needs no plasticity masks for
    it, unlike the neuron-level :func:`amorphous`).  Forward: every
    level from the one below (dense), plus each skip ``(l, j)``, ``j < l - 1``, with probability ``p_skip``;
    projections onto hidden level ``l`` from level ``l + 1`` with ``p_feedback`` and from each higher level with
    ``p_feedback_skip`` (at least one per hidden level), drawn independently of the forward skips
    (``rng = default_rng([seed, 8])``): some feedback has no forward counterpart, some skips no feedback."""
    sizes = tuple(int(s) for s in sizes)
    L = len(sizes) - 1
    rng = np.random.default_rng([seed, 8])
    fwd: dict[Key, np.ndarray] = {}
    fb: dict[Key, np.ndarray] = {}
    for l in range(1, L + 1):
        for j in range(l):
            if j == l - 1 or rng.random() < p_skip:
                fwd[(l, j)] = np.ones((sizes[l], sizes[j]), dtype=bool)
    for l in range(1, L):
        for m in range(l + 1, L + 1):
            if rng.random() < (p_feedback if m == l + 1 else p_feedback_skip):
                fb[(l, m)] = np.ones((sizes[l], sizes[m]), dtype=bool)
        if not any(k[0] == l for k in fb):
            m = int(rng.integers(l + 1, L + 1))
            fb[(l, m)] = np.ones((sizes[l], sizes[m]), dtype=bool)
    return Topology(sizes, fwd, fb, "amorphous-blocks")


@dataclass(frozen=True)
class HeteroParams:
    """Learning rates, decays (per update, relative: ``W -= eta * lam * W``), clip, bounds and init gains."""

    eta: float = 0.02
    eta_v: float = 0.02
    lam: float = 0.0
    lam_v: float = 0.0
    c_h: float = 1.0
    w_max: float = 1.0
    init_gain: float = 1.0
    v_init_gain: float = 1.0

    def __post_init__(self) -> None:
        for name in ("eta", "eta_v", "lam", "lam_v", "init_gain", "v_init_gain"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"HeteroParams.{name} must be a finite number >= 0, got {v!r}")
        for name in ("c_h", "w_max"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"HeteroParams.{name} must be a positive finite number, got {v!r}")


@dataclass(frozen=True)
class Gains:
    """Signs and gains of the heterosynaptic updates per hidden level ``1..L-1``: ``w[l-1]`` multiplies dW of level
    ``l`` (``s_l``), ``v[l-1]`` the dV of the projections onto level ``l`` (``r_l``).  ``None``: all 1."""

    w: tuple[float, ...] | None = None
    v: tuple[float, ...] | None = None
    out: float = 1.0  # the output level's delta rule (0: a fixed readout)

    def s(self, level: int, n_levels: int) -> float:
        if level == n_levels:
            return float(self.out)
        if self.w is None:
            return 1.0
        return float(self.w[level - 1])

    def r(self, level: int) -> float:
        return 1.0 if self.v is None else float(self.v[level - 1])


@dataclass
class State:
    """The plastic weights: ``W[(l, j)]`` and ``V[(l, m)]`` (float64, zero off their masks)."""

    W: dict[Key, np.ndarray]
    V: dict[Key, np.ndarray]

    def copy(self) -> State:
        return State({k: v.copy() for k, v in self.W.items()}, {k: v.copy() for k, v in self.V.items()})


def init_state(topo: Topology, params: HeteroParams, seed: int) -> State:
    """Initial weights (module docstring)."""
    rng = np.random.default_rng([int(seed), 1])
    W: dict[Key, np.ndarray] = {}
    V: dict[Key, np.ndarray] = {}
    for l in range(1, topo.n_levels + 1):
        keys = topo.forward_keys(l)
        fan = sum(topo.forward[k].sum() for k in keys) / topo.sizes[l]
        a = params.init_gain / math.sqrt(max(fan, 1.0))
        for k in keys:
            W[k] = rng.uniform(-a, a, topo.forward[k].shape) * topo.forward[k]
    for l in range(1, topo.n_levels):
        keys = topo.feedback_keys(l)
        fan = sum(topo.feedback[k].sum() for k in keys) / topo.sizes[l]
        a = params.v_init_gain / math.sqrt(max(fan, 1.0))
        for k in keys:
            V[k] = rng.uniform(-a, a, topo.feedback[k].shape) * topo.feedback[k]
    if max(np.abs(w).max() for w in [*W.values(), *V.values()]) > params.w_max:
        raise ValueError("HeteroParams: the initial weights exceed w_max; lower the init gains")
    return State(W, V)


@dataclass
class Signals:
    """One forward/feedback pass over a batch (N, ...): activities ``h[l]`` (``h[0]`` the input, ``h[L]`` the
    output), potentials ``a[l]``, gates ``gate[l]`` (hidden), learning potentials ``p[l]`` and feedback
    activities ``delta[l]`` (``delta[L] = e``)."""

    h: list[np.ndarray]
    a: list[np.ndarray | None]
    gate: list[np.ndarray | None]
    p: list[np.ndarray | None]
    delta: list[np.ndarray | None]


def run_signals(topo: Topology, params: HeteroParams, state: State, x: np.ndarray, t: np.ndarray) -> Signals:
    """The forward pass and the feedback pass of samples ``x`` (N, n_0) with targets ``t`` (N, n_L)."""
    L = topo.n_levels
    h: list[np.ndarray] = [np.asarray(x, dtype=np.float64)]
    a: list[np.ndarray | None] = [None]
    gate: list[np.ndarray | None] = [None]
    for l in range(1, L + 1):
        al = sum(h[j] @ state.W[(l, j)].T for (_, j) in topo.forward_keys(l))
        a.append(al)
        if l < L:
            h.append(np.clip(al, 0.0, params.c_h))
            gate.append(((al > 0) & (al < params.c_h)).astype(np.float64))
        else:
            h.append(al)
            gate.append(None)
    p: list[np.ndarray | None] = [None] * (L + 1)
    delta: list[np.ndarray | None] = [None] * (L + 1)
    delta[L] = h[L] - np.asarray(t, dtype=np.float64)
    for l in range(L - 1, 0, -1):
        p[l] = sum(delta[m] @ state.V[(l, m)].T for (_, m) in topo.feedback_keys(l))
        delta[l] = gate[l] * p[l]
    return Signals(h, a, gate, p, delta)


def true_gradient_signals(topo: Topology, sig: Signals, state: State) -> tuple[list, list]:
    """Backprop through the actual ``W`` (for the monitors only): ``(dL/dh_l, dL/da_l)`` per level (None at 0)."""
    L = topo.n_levels
    g_h: list[np.ndarray | None] = [None] * (L + 1)
    g_a: list[np.ndarray | None] = [None] * (L + 1)
    g_h[L] = g_a[L] = sig.delta[L]
    for l in range(L - 1, 0, -1):
        g_h[l] = sum(g_a[m] @ state.W[(m, l)] for m in range(l + 1, L + 1) if (m, l) in topo.forward)
        g_a[l] = sig.gate[l] * g_h[l]
    return g_h, g_a


def step(topo: Topology, params: HeteroParams, state: State, x: np.ndarray, t: np.ndarray, gains: Gains = Gains()):
    """One online update with sample ``x`` (n_0,), target ``t`` (n_L,); returns ``(signals, dV)`` (``dV`` the
    applied increments of V, before clipping) and updates ``state`` in place."""
    sig = run_signals(topo, params, state, x[None], t[None])
    L = topo.n_levels
    dW = {}
    for l, j in topo.forward_keys():
        d = -params.eta * gains.s(l, L) * np.outer(sig.delta[l][0], sig.h[j][0]) * topo.forward[(l, j)]
        dW[(l, j)] = d - params.eta * params.lam * state.W[(l, j)] if params.lam else d
    dV = {}
    for l, m in topo.feedback_keys():
        d = -params.eta_v * gains.r(l) * np.outer(sig.h[l][0], sig.delta[m][0]) * topo.feedback[(l, m)]
        dV[(l, m)] = d - params.eta_v * params.lam_v * state.V[(l, m)] if params.lam_v else d
    for k, d in dW.items():
        state.W[k] = np.clip(state.W[k] + d, -params.w_max, params.w_max)
    for k, d in dV.items():
        state.V[k] = np.clip(state.V[k] + d, -params.w_max, params.w_max)
    return sig, dV


@dataclass
class Probe:
    """The monitors on a probe batch, for the weights at one moment (module :mod:`.monitors` for definitions).

    Per hidden level ``l`` (lists indexed ``l - 1``): ``alignment`` = cos(batch update direction, true gradient)
    over all forward synapses into level ``l``; ``phi`` the consistency score per neuron (NaN: never active);
    ``hebbian`` the Hebbian overlap of the heterosynaptic update (``hebbian_bp``: of backprop's update, the
    baseline).  ``alignment_all``: over every hidden synapse; ``phi_patch``: per level; ``dc``/``dc_positive``:
    fraction of neurons sharing the majority sign / positive; ``hs_residual`` of ``p = phi g``; ``loss`` (mean
    ``|e|^2 / 2``), ``accuracy`` (argmax).  ``alignment_p``: cos(p, dL/dh) over active entries (all levels)."""

    alignment: list[float]
    alignment_all: float
    phi: list[np.ndarray]
    phi_patch: list[float]
    dc: float
    dc_positive: float
    hs_residual: float
    hebbian: list[float]
    hebbian_bp: list[float]
    alignment_p: float
    loss: float
    accuracy: float


def probe(topo: Topology, params: HeteroParams, state: State, x: np.ndarray, t: np.ndarray,
          gains: Gains = Gains(), labels: np.ndarray | None = None) -> Probe:  # fmt: skip
    """The monitors (:class:`Probe`) of ``state`` on the batch ``x`` (N, n_0), ``t`` (N, n_L)."""
    sig = run_signals(topo, params, state, x, t)
    g_h, g_a = true_gradient_signals(topo, sig, state)
    L = topo.n_levels
    align, phis, patch, heb, heb_bp = [], [], [], [], []
    all_u, all_g, ps, gs, acts = [], [], [], [], []
    for l in range(1, L):
        us, gr = [], []
        for _, j in topo.forward_keys(l):
            mask = topo.forward[(l, j)]
            us.append((gains.s(l, L) * sig.delta[l].T @ sig.h[j]) * mask)
            gr.append((g_a[l].T @ sig.h[j]) * mask)
        align.append(monitors.cosine(us, gr))
        all_u += us
        all_g += gr
        active = sig.gate[l] > 0
        phis.append(monitors.consistency_scores(sig.p[l], g_h[l], active))
        patch.append(float(monitors.consistency_scores(sig.p[l], g_h[l], active, [range(topo.sizes[l])])[0]))
        ps.append(sig.p[l])
        gs.append(g_h[l])
        acts.append(active)
        pre = np.concatenate([sig.h[j] for _, j in topo.forward_keys(l)], axis=1)
        mask = np.concatenate([topo.forward[(l, j)] for _, j in topo.forward_keys(l)], axis=1)
        heb.append(monitors.hebbian_overlap(gains.s(l, L) * sig.delta[l], pre, sig.h[l], pre, mask))
        heb_bp.append(monitors.hebbian_overlap(g_a[l], pre, sig.h[l], pre, mask))
    phi_all = np.concatenate(phis)
    dc, dc_pos = monitors.dc_fraction(phi_all)
    P, G, A = np.concatenate(ps, 1), np.concatenate(gs, 1), np.concatenate(acts, 1)
    e = sig.delta[L]
    y = np.argmax(t, axis=1) if labels is None else labels
    return Probe(
        alignment=align,
        alignment_all=monitors.cosine(all_u, all_g),
        phi=phis,
        phi_patch=patch,
        dc=dc,
        dc_positive=dc_pos,
        hs_residual=monitors.hs_residual(P, G, A),
        hebbian=heb,
        hebbian_bp=heb_bp,
        alignment_p=monitors.cosine(np.where(A, P, 0.0), np.where(A, G, 0.0)),
        loss=float(0.5 * np.mean(np.sum(e * e, axis=1))),
        accuracy=float(np.mean(np.argmax(sig.h[L], axis=1) == y)),
    )


@dataclass
class Trace:
    """What :func:`train` recorded: ``samples`` (K,) the number of updates at each probe; ``probes`` (K,);
    ``v_drift`` (K-1,) ``|dV|`` per sample between probes (:func:`monitors.weight_drift`); ``w_first``/``v_first``:
    the states after each of the first ``record_first`` updates (for comparisons with the circuit)."""

    samples: np.ndarray
    probes: list[Probe]
    v_drift: np.ndarray
    v_drift_level: list[np.ndarray]
    first: list[State] = field(default_factory=list)

    def series(self, name: str, level: int | None = None) -> np.ndarray:
        values = [getattr(p, name) for p in self.probes]
        return np.asarray([v[level - 1] if level is not None else v for v in values], dtype=np.float64)


def train(topo: Topology, params: HeteroParams, state: State, x: np.ndarray, t: np.ndarray, order: np.ndarray,
          probe_x: np.ndarray | None = None, probe_t: np.ndarray | None = None, probe_every: int = 0,
          gains: Gains = Gains(), record_first: int = 0) -> Trace:  # fmt: skip
    """Train ``state`` in place on samples ``x[order]``, ``t[order]`` one at a time; every ``probe_every`` updates
    (and at 0) run :func:`probe` on ``probe_x``/``probe_t`` and snapshot V."""
    samples, probes, snaps, first = [], [], [], []

    def record(k: int) -> None:
        samples.append(k)
        probes.append(probe(topo, params, state, probe_x, probe_t, gains))
        snaps.append({key: v.copy() for key, v in state.V.items()})

    probing = probe_every > 0 and probe_x is not None
    if probing:
        record(0)
    for k, idx in enumerate(np.asarray(order), start=1):
        step(topo, params, state, x[idx], t[idx], gains)
        if k <= record_first:
            first.append(state.copy())
        if probing and k % probe_every == 0:
            record(k)
    if len(snaps) >= 2:
        keys = sorted(snaps[0])
        drift = monitors.weight_drift([np.stack([s[key] for s in snaps]) for key in keys], probe_every)
        per_level = [
            monitors.weight_drift([np.stack([s[key] for s in snaps]) for key in keys if key[0] == l], probe_every)
            for l in range(1, topo.n_levels)
        ]
    else:
        drift, per_level = np.zeros(0), []
    return Trace(np.asarray(samples), probes, drift, per_level, first)


def accuracy(topo: Topology, params: HeteroParams, state: State, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy (argmax of the output) of ``state`` on ``x`` (N, n_0), labels ``y`` (N,)."""
    sig = run_signals(topo, params, state, x, np.zeros((len(x), topo.sizes[-1])))
    return float(np.mean(np.argmax(sig.h[-1], axis=1) == y))
