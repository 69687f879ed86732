"""Exact comparison of two fixed-point Results: where do they first differ?

Used by the differential tests (emulator vs Lava); also handy interactively::

    m = first_mismatch(emulated, lava_result)
    assert m is None, str(m)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuro_hw.result import Result


@dataclass(frozen=True)
class Mismatch:
    """The earliest difference between two Results.

    ``step`` is 1-based like Lava's ``time_step`` (0 = the initial weights); ``index`` is the position
    inside the variable (neuron, or ``(post, pre)`` synapse); ``trial`` the batch index.
    """

    step: int
    node: str
    variable: str
    trial: int
    index: tuple[int, ...]
    a: object
    b: object
    count: int = 1

    def __str__(self) -> str:
        return (
            f"first mismatch at step {self.step}, node {self.node!r}, variable {self.variable!r}, "
            f"trial {self.trial}, index {self.index}: {self.a!r} != {self.b!r} "
            f"({self.count} differing values in that variable)"
        )


def _split(key: str, group: str) -> tuple[str, str]:
    if group == "spikes":
        return key, "s"
    node, _, var = key.rpartition(".")
    return (node, var) if node else (key, group)


def first_mismatch(a: Result, b: Result) -> Mismatch | None:
    """The earliest ``(step, node, variable, index, a value, b value)`` where ``a`` and ``b`` differ.

    Compares every key of ``spikes``, ``states`` and ``weights`` (a key present in only one Result,
    or a shape difference, is reported as a mismatch at step 0 with ``index=()``).  Time-indexed arrays
    are ``(B, T, ...)`` (row k = end of step k+1); weights are mapped to steps through
    ``weight_steps``.  Returns None when everything is equal.
    """
    best: Mismatch | None = None
    for group in ("spikes", "states", "weights"):
        da, db = getattr(a, group), getattr(b, group)
        for key in sorted(set(da) | set(db)):
            node, var = _split(key, group)
            if key not in da or key not in db:
                where = "first" if key not in da else "second"
                cand = Mismatch(0, node, var, 0, (), f"{group}[{key!r}] missing in {where} result", None)
                if best is None or cand.step < best.step:
                    best = cand
                continue
            xa, xb = np.asarray(da[key]), np.asarray(db[key])
            if xa.shape != xb.shape:
                cand = Mismatch(0, node, var, 0, (), f"shape {xa.shape}", f"shape {xb.shape}")
                if best is None or cand.step < best.step:
                    best = cand
                continue
            if xa.dtype == bool or xb.dtype == bool:
                diff = xa.astype(bool) != xb.astype(bool)
            else:
                diff = xa != xb
            if not diff.any():
                continue
            count = int(diff.sum())
            # earliest time index first, then trial, then position
            per_time = diff.reshape(diff.shape[0], diff.shape[1], -1).any(axis=(0, 2))
            k = int(np.argmax(per_time))
            trial = int(np.argmax(diff[:, k].reshape(diff.shape[0], -1).any(axis=1)))
            flat = int(np.argmax(diff[trial, k].reshape(-1)))
            index = tuple(int(i) for i in np.unravel_index(flat, diff.shape[2:])) if diff.ndim > 2 else ()
            if group == "weights":
                steps = a.weight_steps.get(key)
                step = int(steps[k]) if steps is not None and k < len(steps) else k
            else:
                step = k + 1
            va, vb = xa[(trial, k) + index], xb[(trial, k) + index]
            cand = Mismatch(step, node, var, trial, index, va.item(), vb.item(), count)
            if best is None or cand.step < best.step:
                best = cand
    return best
