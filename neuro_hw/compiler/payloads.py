"""Validation of integer stimuli (payloads) and seeds for a Program: one place for every fixed-point backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from neuro_hw.compiler.program import Program
from neuro_hw.errors import InputError


def as_int_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an integer (or bool) array, without a copy when it is one; floats must be integral
    (they become int64), anything else non-numeric is refused."""
    arr = np.asarray(value)
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError("values must be integers (spikes 0/1 or integer payloads)", node=name)
        return arr.astype(np.int64)
    raise InputError(f"expected a numeric array, got dtype {arr.dtype}", node=name)


def normalize_payloads(
    program: Program, inputs: Mapping[str, Any] | None, steps: Any, seed: int | Sequence[int]
) -> tuple[dict[str, np.ndarray], list[int], int]:
    """Validate ``inputs``, ``steps`` and ``seed`` for ``program``.

    Returns ``{name: (B, steps, n)}`` integer or bool arrays (broadcast over the batch where an input is
    shared), the ``B`` seeds (an int seed is used for every trial) and ``steps`` as int.  Spike inputs must
    be 0/1, graded payloads must lie in ``0..max_payload``; every refusal is an :class:`InputError` naming
    the input.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}", field="steps")
    steps = int(steps)
    inputs = {} if inputs is None else inputs
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a mapping name -> array, got {type(inputs).__name__}")
    extra = sorted(set(inputs) - set(program.inputs))
    if extra:
        raise InputError(f"unexpected input(s) {extra}; the program's inputs are {sorted(program.inputs)}")
    missing = sorted(set(program.inputs) - set(inputs))
    if missing:
        raise InputError(f"missing input(s) {missing}", node=missing[0])
    arrays: dict[str, np.ndarray] = {}
    batches: set[int] = set()
    for name, spec in program.inputs.items():
        arr = as_int_array(name, inputs[name])
        shape = tuple(getattr(spec, "shape", ()) or ())
        if len(shape) > 1 and arr.ndim in (len(shape) + 1, len(shape) + 2) and arr.shape[-len(shape) :] == shape:
            arr = arr.reshape(arr.shape[: -len(shape)] + (spec.n,))  # (B, T, *shape) -> (B, T, n)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3:
            batches.add(arr.shape[0])
        else:
            raise InputError(
                f"expected shape (B, T, {spec.n}) or (T, {spec.n}), got {tuple(np.shape(inputs[name]))}", node=name
            )
        if arr.shape[2] != spec.n:
            raise InputError(f"last axis has {arr.shape[2]} channels, the input has n={spec.n}", node=name)
        if arr.shape[1] < steps:
            raise InputError(f"has {arr.shape[1]} time steps, fewer than steps={steps}", node=name)
        if arr.shape[0] < 1:
            raise InputError("batch axis is empty", node=name)
        arr = arr[:, :steps]
        if not spec.graded and arr.dtype != bool and np.any((arr != 0) & (arr != 1)):
            raise InputError("binary spike input must contain only 0 and 1 (declare it graded for payloads)", node=name)
        if spec.graded and np.any((arr < 0) | (arr > int(spec.max_payload))):
            raise InputError(f"graded payloads must lie in 0..{int(spec.max_payload)} (max_payload)", node=name)
        arrays[name] = arr
    if len(batches) > 1:
        raise InputError(f"inputs have different batch sizes {sorted(batches)}")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        batch = batches.pop() if batches else 1
        seeds = [int(seed)] * batch
    elif isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        seeds = []
        for s in seed:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
                raise InputError(f"seeds must be integers, got {s!r}", field="seed")
            seeds.append(int(s))
        if not seeds:
            raise InputError("empty seed sequence", field="seed")
        batch = batches.pop() if batches else len(seeds)
        if len(seeds) != batch:
            raise InputError(f"{len(seeds)} seeds given for a batch of {batch}", field="seed")
    else:
        raise InputError(f"seed must be an int or a sequence of ints, got {seed!r}", field="seed")
    if any(s < 0 for s in seeds):
        raise InputError("seeds must be >= 0", field="seed")
    for name, arr in arrays.items():
        if arr.shape[0] != batch:
            arrays[name] = np.broadcast_to(arr, (batch,) + arr.shape[1:])
    return arrays, seeds, steps
