"""Parts shared by the pulse-scheduled error circuits of seeds P1 (:mod:`.self_assembly`) and P2
(:mod:`.heterosynaptic`).

Both present one sample per period of ``T`` steps as one-step pulses (the input ``x`` at offset 1, the target at
the schedule's target time), compute the output error on chip with the same head::

    o ──(+I)──> err <──(-I)── target          err = o - t   (graded identity neurons, float units)

and, in their hardware form, take a host input ``phase`` (one channel per descending signal) that marks the steps
at which an offset-coded relay sends its offset ``c`` alone (see either module's doc).
"""

from __future__ import annotations

from collections.abc import Sequence

import nir
import numpy as np

from neuro_hw.errors import InputError
from neuro_hw.ir.graded import GradedNeuron


def shape(n: int) -> np.ndarray:
    """A NIR shape of ``n`` neurons."""
    return np.array([int(n)])


def delay_node(steps: int, n: int, dt: float) -> nir.Delay:
    """A NIR ``Delay`` of ``steps >= 1`` time steps of ``dt`` seconds on ``n`` channels."""
    if steps < 1:
        raise AssertionError(f"delay of {steps} steps")
    return nir.Delay(np.full(n, steps * dt))


def error_head(n_in: int, n_out: int, n_phase: int, hardware: bool) -> tuple[dict[str, nir.NIRNode], list]:
    """``(nodes, edges)``: the inputs ``x`` (``n_in``) and ``target`` (``n_out``), the output ``o``, the error
    ``err = o - target`` through ``o_err`` (+I) and ``target_err`` (-I), and (``hardware``) the host input
    ``phase`` with ``n_phase`` channels."""
    nodes: dict[str, nir.NIRNode] = {
        "x": nir.Input(shape(n_in)),
        "target": nir.Input(shape(n_out)),
        "o": GradedNeuron(shape(n_out), "identity"),
        "o_err": nir.Linear(np.eye(n_out)),
        "target_err": nir.Linear(-np.eye(n_out)),
        "err": GradedNeuron(shape(n_out), "identity"),
    }
    edges = [("o", "o_err"), ("o_err", "err"), ("target", "target_err"), ("target_err", "err")]
    if hardware:
        nodes["phase"] = nir.Input(shape(n_phase))
    return nodes, edges


def present_pulses(
    x: np.ndarray, t: np.ndarray, period: int, target_time: int, phase_offsets: Sequence[Sequence[int]] | None
) -> dict[str, np.ndarray]:
    """Stimuli for samples ``x`` (N, n_0) and targets ``t`` (N, n_L), or batched ``(B, N, ...)``: each sample's
    ``x`` pulses at offset 1 of its period, its ``target`` at ``target_time``, and (``phase_offsets`` given) the
    host input ``phase`` ``(N*T, len(phase_offsets))``: channel ``c`` is 1 at the (1-based) offsets
    ``phase_offsets[c]`` of every period."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if x.ndim not in (2, 3) or t.ndim != x.ndim or x.shape[:-1] != t.shape[:-1]:
        raise InputError(f"x and t must be (N, n) or (B, N, n) with the same N, got {x.shape} and {t.shape}")
    batched = x.ndim == 3
    xb, tb = (x, t) if batched else (x[None], t[None])
    b, n = xb.shape[:2]

    def pulses(values: np.ndarray, offset: int) -> np.ndarray:
        out = np.zeros((b, n, period, values.shape[-1]))
        out[:, :, offset - 1] = values
        return out.reshape(b, n * period, values.shape[-1])

    stim = {"x": pulses(xb, 1), "target": pulses(tb, target_time)}
    if phase_offsets is not None:
        ph = np.zeros((b, n, period, len(phase_offsets)))
        for channel, offsets in enumerate(phase_offsets):
            for offset in offsets:
                ph[:, :, offset - 1, channel] = 1.0
        stim["phase"] = ph.reshape(b, n * period, len(phase_offsets))
    return stim if batched else {k: v[0] for k, v in stim.items()}
