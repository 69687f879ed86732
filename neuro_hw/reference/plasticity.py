"""Float64 interpreter of plasticity rules (the literal math of :mod:`neuro_hw.ir.plasticity`).

Per plastic weight node, with ``B`` trials, ``n_pre`` inputs and ``n_post`` outputs:

* state: ``w`` (and ``t``, ``d`` when a rule targets them), shape ``(B, n_post, n_pre)``; traces
  ``x1, x2`` ``(B, n_pre)`` and ``y1, y2, y3`` ``(B, n_post)``;
* every step ``t`` (1-based): ``x_k <- x_k * exp(-dt/tau_k) + impulse_k * [pre output != 0]`` (and the
  same for ``y_k`` with the post spikes); an activity trace (``x1 = "activity"``) is instead
  ``x1 <- pre output where it is nonzero`` (held otherwise), a trace bound to a third factor is *set*
  to the factor's output, and each modulator (``third_factor={"e": "err"}``) takes its node's output;
  the spike traces of the step are kept in an epoch history, and the last step in the epoch at which
  each pre (post) neuron's output was nonzero is remembered (``tx``, ``ty``, 1-based within the epoch,
  0 = none);
* at steps with ``t % t_epoch == 0``: every target ``dz = sum_k c_k prod_j f_kj`` is evaluated from the
  pre-update values of ``w, t, d``; ``x0 = [tx > 0]``, ``y0 = [ty > 0]``, ``u_m = [(t // t_epoch) % 2**m
  == 0]``; spike-trace factors are read at the post spike step (dependency ``y0``), at the pre spike
  step (``x0``) or at the end of the epoch (``u_m``); activity traces, third-factor traces and modulators
  are read at the end of the epoch (as the learning engine reads its overwritten registers); then
  ``w <- clip(w + dw, w_min, w_max)``, ``t <- t + dt``, ``d <- d + dd`` and ``tx = ty = 0``; with a plasticity
  mask only the present synapses change (absent ones stay 0: ``dz * mask``, and ``w`` 0 off the mask after the
  clip).

No trace saturation, no rounding: this is the ground truth that fixed-point backends approximate.
"""

from __future__ import annotations

import math

import numpy as np

from neuro_hw.ir.plasticity import Plasticity
from neuro_hw.ir.rules import DECIMATIONS, PRE_TRACES, TARGET_VARIABLE, Expression, Factor, Term


def trace_decay(tau: float, dt: float) -> float:
    """Per-step decay factor ``exp(-dt/tau)``: 0 for ``tau == 0`` (reset), 1 for ``tau == inf``."""
    if tau == 0:
        return 0.0
    if math.isinf(tau):
        return 1.0
    return math.exp(-dt / tau)


class PlasticSynapse:
    """Float state and update of one plastic weight node (see module docstring)."""

    def __init__(self, name: str, spec: Plasticity, weight: np.ndarray, batch: int, dt: float) -> None:
        self.name = name
        self.spec = spec
        n_post, n_pre = weight.shape[-2:]  # one matrix for all trials, or (batch, n_post, n_pre)
        self.n_pre, self.n_post, self.batch = n_pre, n_post, batch
        self.vars = {"w": np.broadcast_to(weight.astype(np.float64), (batch, n_post, n_pre)).copy()}
        for target in spec.rules:
            var = TARGET_VARIABLE[target]
            if var not in self.vars:
                self.vars[var] = np.zeros((batch, n_post, n_pre))
        symbols = spec.symbols
        for var in ("t", "d"):
            if var in symbols and var not in self.vars:
                self.vars[var] = np.zeros((batch, n_post, n_pre))
        self.decay = {k: trace_decay(tr.tau, dt) for k, tr in spec.traces.items()}
        self.traces = {k: np.zeros((batch, n_pre if k in PRE_TRACES else n_post)) for k in spec.traces}
        #: Traces read at the end of the epoch: the activity trace and those bound to third factors.
        self.held = {k for k, tr in spec.traces.items() if tr.activity} | set(spec.bound_traces)
        self.modulators = {k: np.zeros((batch, n_post)) for k in spec.modulators}
        e = spec.t_epoch
        #: Per-step history within the epoch of the spike traces that a term reads at a pre or post spike step.
        read_at_spike = {
            f.symbol for expr in spec.rules.values() for term in expr.terms if term.dependency in ("x0", "y0")
            for f in term.factors
        }  # fmt: skip
        self.hist = {
            k: np.zeros((batch, e, v.shape[1]))
            for k, v in self.traces.items()
            if k not in self.held and k in read_at_spike
        }
        self.tx = np.zeros((batch, n_pre), dtype=np.int64)
        self.ty = np.zeros((batch, n_post), dtype=np.int64)

    @property
    def weight(self) -> np.ndarray:
        return self.vars["w"]

    def observe(self, step: int, pre_out: np.ndarray, post_out: np.ndarray, third: dict[str, np.ndarray]) -> None:
        """Advance traces with this step's activity (``step`` is 1-based); ``third`` holds the outputs of the
        third-factor nodes by binding name (trace or modulator)."""
        spec = self.spec
        pre = pre_out.reshape(self.batch, -1)
        pre_active = pre != 0
        post_active = post_out.reshape(self.batch, -1) != 0
        k = (step - 1) % spec.t_epoch
        for name, trace in self.traces.items():
            if name in third:
                trace[...] = third[name].reshape(self.batch, -1)
            elif name in self.held:  # the activity trace
                np.copyto(trace, pre, where=pre_active)
            else:
                trace *= self.decay[name]
                trace += np.where(pre_active if name in PRE_TRACES else post_active, spec.traces[name].impulse, 0.0)
            if name in self.hist:
                self.hist[name][:, k] = trace
        for name, value in self.modulators.items():
            value[...] = third[name].reshape(self.batch, -1)
        self.tx[pre_active] = k + 1
        self.ty[post_active] = k + 1

    def _at(self, name: str, when: np.ndarray | None, rows: bool) -> np.ndarray:
        """Trace ``name`` read at per-neuron epoch steps ``when`` (1-based; None = end of epoch).

        Returns an array broadcastable to ``(B, n_post, n_pre)``.
        """
        is_pre = name in PRE_TRACES
        if when is None:
            value = self.traces[name]
            return value[:, None, :] if is_pre else value[:, :, None]
        hist = self.hist[name]  # (B, e, n)
        idx = np.maximum(when - 1, 0)  # (B, m): the step at which the dependency neuron spiked
        b = np.arange(self.batch)[:, None]
        if rows:  # dependency y0: `when` indexes post neurons (rows)
            if is_pre:
                return hist[b, idx]  # (B, n_post, n_pre)
            return hist[b, idx, np.arange(self.n_post)[None, :]][:, :, None]
        if is_pre:  # dependency x0: `when` indexes pre neurons (columns)
            return hist[b, idx, np.arange(self.n_pre)[None, :]][:, None, :]
        return np.transpose(hist[b, idx], (0, 2, 1))  # (B, n_post, n_pre)

    def _factor(self, f: Factor, dependency: str, step: int) -> np.ndarray | float:
        sym = f.symbol
        if sym == "x0":
            value = (self.tx > 0).astype(np.float64)[:, None, :]
        elif sym == "y0":
            value = (self.ty > 0).astype(np.float64)[:, :, None]
        elif sym in DECIMATIONS:
            m = int(sym[1:])
            return 1.0 if (step // self.spec.t_epoch) % (2**m) == 0 else 0.0
        elif sym in TARGET_VARIABLE.values():
            value = self.vars[sym]
        elif sym in self.modulators:
            value = self.modulators[sym][:, :, None]
        elif sym in self.held:
            value = self._at(sym, None, rows=False)
        else:
            if dependency == "y0":
                value = self._at(sym, self.ty, rows=True)
            elif dependency == "x0":
                value = self._at(sym, self.tx, rows=False)
            else:
                value = self._at(sym, None, rows=False)
        if f.offset:
            value = value + f.offset
        if f.sgn:
            value = np.sign(value)
        return value

    def _evaluate(self, expr: Expression, step: int) -> np.ndarray:
        total = np.zeros((self.batch, self.n_post, self.n_pre))
        for term in expr.terms:
            total += self._product(term, step)
        return total

    def _product(self, term: Term, step: int) -> np.ndarray:
        value: np.ndarray | float = term.coefficient
        dependency = term.dependency
        for f in term.factors:
            value = value * self._factor(f, dependency, step)
        return np.broadcast_to(value, (self.batch, self.n_post, self.n_pre))

    def learn(self, step: int) -> bool:
        """Apply the rules if ``step`` ends an epoch; returns True when they were applied."""
        if step % self.spec.t_epoch:
            return False
        deltas = {TARGET_VARIABLE[t]: self._evaluate(expr, step) for t, expr in self.spec.rules.items()}
        mask = self.spec.mask
        for var, delta in deltas.items():
            self.vars[var] += delta if mask is None else np.where(mask, delta, 0.0)
        lo, hi = self.spec.w_bounds
        np.clip(self.vars["w"], lo, hi, out=self.vars["w"])
        if mask is not None:  # absent synapses stay 0 (the clip may not lift them into w_bounds)
            np.copyto(self.vars["w"], 0.0, where=~mask)
        self.tx[...] = 0
        self.ty[...] = 0
        return True
