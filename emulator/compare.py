"""Exact comparison of two fixed-point Results for the differential tests: where do they first differ?

A strict view of :func:`neuro_hw.compare` in ``"exact"`` mode (which finds the first divergence):
here a quantity recorded by only one side, or a shape difference, is a mismatch too (at step 0).  Also
handy interactively::

    m = first_mismatch(emulated, lava_result)
    assert m is None, str(m)
"""

from __future__ import annotations

from dataclasses import dataclass

from neuro_hw.compare import compare
from neuro_hw.result import Result


@dataclass(frozen=True)
class Mismatch:
    """The earliest difference between two Results.

    ``step`` is 1-based like Lava's ``time_step`` (0 = the initial weights); ``index`` is the position
    inside the variable (neuron, or ``(post, pre)`` synapse); ``trial`` the batch index; ``count`` the
    number of differing values over everything compared.
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
            f"({self.count} differing values in all)"
        )


def first_mismatch(a: Result, b: Result) -> Mismatch | None:
    """The earliest ``(step, node, variable, trial, index, a value, b value)`` where ``a`` and ``b`` differ.

    Spikes are reported as variable ``"spikes"``; weights are matched by ``weight_steps``.  Returns None
    when every quantity is recorded by both and equal.
    """
    c = compare(a, b, "exact")
    if c.only_in_one:
        key = c.only_in_one[0]
        node, _, var = key.rpartition(".")
        in_a = key in _keys(a)
        return Mismatch(0, node, var, 0, (), f"{key} missing in {'second' if in_a else 'first'} result", None)
    shape_failures = [f for f in c.failures if "shapes differ" in f]
    if shape_failures:
        node, _, rest = shape_failures[0].partition(":")
        n, _, var = node.rpartition(".")
        return Mismatch(0, n, var, 0, (), rest.strip(), None)
    d = c.first_divergence
    if d is None:
        return None
    return Mismatch(d.step, d.node, d.variable, d.index[0], tuple(d.index[1:]), d.a, d.b, c.mismatches)


def _keys(r: Result) -> set[str]:
    return {f"{k}.spikes" for k in r.spikes} | set(r.states) | set(r.weights)
