"""Evaluation functions for the sweep tests, imported by name (``sweep_objectives:...``) in this process and in
the Dask workers (which inherit this process's ``sys.path``)."""

from __future__ import annotations

import os
from typing import Any

from neuro_hw.sweep.examples import quadratic


def quadratic_or_fail(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """:func:`~neuro_hw.sweep.examples.quadratic`, but ``x0 == 13`` raises a ZeroDivisionError (a failing point),
    and with ``$SWEEP_TEST_CALLS`` set every call appends a line to that file (to count what ran)."""
    log = os.environ.get("SWEEP_TEST_CALLS")
    if log:
        with open(log, "a") as f:
            f.write(f"{params.get('x0')} {seeds}\n")
    if params.get("x0") == 13:
        return [1 / 0 for _ in seeds]
    return quadratic(params, target, backend, seeds)


def bits_probe(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """What the evaluation is given: the target's widths (or -1 without a target), the backend and the seed."""
    wb = -1 if target is None else target.weights.bits
    tb = -1 if target is None else target.learning.trace_bits
    return [{"weight_bits": wb, "trace_bits": tb, "backend": backend, "seed": s, "a": params.get("a")} for s in seeds]


def wrong_count(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Returns one metrics dict too few (a malformed evaluation)."""
    return [{"m": 1.0}] * (len(seeds) - 1)


def emulator_threads(params: dict[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The emulator's thread count where the task runs."""
    from neuro_hw.emulator.step_kernel import worker_count

    return [{"threads": worker_count()} for _ in seeds]
