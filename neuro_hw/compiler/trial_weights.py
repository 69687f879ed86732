"""Per-trial weights: the weights of a circuit's weight nodes, different in each trial of a batch, in a Program's
integer format.

A compiled :class:`~neuro_hw.compiler.program.Program` fixes every connection's weight exponent and sign mode
(from the circuit's weights and ``w_bounds``).  Runs that need other weights of the same structure -- a new
random initialisation per episode, a different fixed feedback matrix per trial -- keep those formats and only
swap the integers: for a weight node ``W`` (float, the circuit's units) and each connection ``c`` compiled from
it (:attr:`~neuro_hw.compiler.program.ConnectionProgram.origin`)::

    W_c   = origin_rows[:, None] * W * origin_cols[None, :]       path scales and rail signs
    q     = 2 ** (max(0, weight_bits - num_weight_bits) + [sign_mode == "mixed"])
    W_int = q * round_half_away(W_c * w_scale / q)                the compiler's rounding (even integers
                                                                   where the chip drops the weight LSB)

and ``W_int`` must lie in the connection's range (:meth:`~neuro_hw.compiler.program.EngineFormat.weight_range`:
``[-256, 255]`` mixed, ``[0, 255]`` excitatory, ``[-255, 0]`` inhibitory for 8-bit weights).  A weight that does
not fit is refused with its node, trial, row and column -- never clipped: compile with weights (or ``w_bounds``)
that cover the range the trials need.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from neuro_hw.compiler.program import ConnectionProgram, Program
from neuro_hw.compiler.quantize import round_half_away
from neuro_hw.errors import InputError
from neuro_hw.ir.plasticity import first_absent_nonzero


def _origin_connections(program: Program) -> dict[str, list[ConnectionProgram]]:
    out: dict[str, list[ConnectionProgram]] = {}
    for conn in program.connections.values():
        if conn.origin is not None and conn.w_scale is not None:
            out.setdefault(conn.origin, []).append(conn)
    return out


def weight_batch(weights: Mapping[str, np.ndarray]) -> int | None:
    """The number of trials given by per-trial weights (arrays ``(B, n_post, n_pre)``), or None when every
    array is one matrix for all trials; refused when they disagree."""
    sizes = {name: np.shape(w)[0] for name, w in weights.items() if np.ndim(w) == 3}
    if len(set(sizes.values())) > 1:
        raise InputError(f"per-trial weights disagree on the number of trials: {sizes}", field="weights")
    return next(iter(sizes.values())) if sizes else None


def trial_weights(program: Program, weights: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Integer weights ``(batch, n_target, n_source)`` (int32) of every Program connection compiled from a weight
    node named in ``weights`` (see module doc).

    ``weights[node]`` is that node's float matrix ``(n_post, n_pre)`` (the same in every trial) or
    ``(batch, n_post, n_pre)``.
    """
    origins = _origin_connections(program)
    out: dict[str, np.ndarray] = {}
    for node, value in weights.items():
        if node not in origins:
            raise InputError(
                f"{node!r} is not a weight node of the compiled circuit (weight nodes: {sorted(origins)})",
                node=node,
                field="weights",
            )
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"weights must be numeric, got dtype {arr.dtype}", node=node, field="weights")
        arr = arr.astype(np.float64)
        first = origins[node][0]
        shape = (len(first.origin_rows), len(first.origin_cols))
        if arr.shape == shape:
            arr = np.broadcast_to(arr, (batch,) + shape)
        elif arr.shape != (batch,) + shape:
            raise InputError(
                f"weights have shape {arr.shape}; expected {shape} or ({batch}, {shape[0]}, {shape[1]}) "
                f"for {batch} trials",
                node=node,
                field="weights",
            )
        if not np.all(np.isfinite(arr)):
            raise InputError("weights contain NaN or inf", node=node, field="weights")
        for conn in origins[node]:
            _check_absent(conn, arr, node)
            out[conn.name] = _quantize(program, conn, node, arr)
    return out


def _quantize(program: Program, conn: ConnectionProgram, node: str, arr: np.ndarray) -> np.ndarray:
    w_c = conn.origin_rows[None, :, None] * arr * conn.origin_cols[None, None, :]
    q = 2 ** (max(0, program.engine.weight_bits - conn.num_weight_bits) + int(conn.sign_mode == "mixed"))
    ints = q * round_half_away(w_c * np.asarray(conn.w_scale)[None] / q)
    lo, hi = program.engine.weight_range(conn.sign_mode)
    bad = (ints < lo) | (ints > hi)
    if np.any(bad):
        b, i, j = (int(k) for k in np.argwhere(bad)[0])
        limit = float(np.max(np.abs([lo, hi])) / np.asarray(conn.w_scale).reshape(-1)[i])
        raise InputError(
            f"weight {arr[b, i, j]:g} (trial {b}, row {i}, column {j}) does not fit connection {conn.name!r}: "
            f"it needs the integer {int(ints[b, i, j])}, outside its {conn.sign_mode} range {lo}..{hi} "
            f"(about +-{limit:.4g} in weight units for this row, set at compile time by the circuit's weights "
            "and w_bounds); compile with weights or w_bounds that cover the trials' weights",
            node=node,
            field="weights",
        )
    return ints.astype(np.int32)


def check_trial_weights(program: Program, weights: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Validate integer per-trial weights ``{connection: (batch, n_target, n_source)}`` (what :func:`trial_weights`
    returns, the form the fixed-point backends take) and return them as int32 arrays."""
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        conn = program.connections.get(name)
        if conn is None:
            raise InputError(
                f"{name!r} is not a connection of the program ({sorted(program.connections)})",
                node=name,
                field="weights",
            )
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise InputError(f"per-trial weights must be integers, got dtype {arr.dtype}", node=name, field="weights")
        if arr.shape != (batch,) + conn.shape:
            raise InputError(
                f"per-trial weights have shape {arr.shape}; expected {(batch,) + conn.shape} for {batch} trials",
                node=name,
                field="weights",
            )
        lo, hi = program.engine.weight_range(conn.sign_mode)
        bad = (arr < lo) | (arr > hi)
        if np.any(bad):
            idx = tuple(int(k) for k in np.argwhere(bad)[0])
            raise InputError(
                f"weight {int(arr[idx])} at {idx} is outside the {conn.sign_mode} range {lo}..{hi}",
                node=name,
                field="weights",
            )
        _check_absent(conn, arr, name)
        out[name] = arr.astype(np.int32)
    return out


def _check_absent(conn: ConnectionProgram, weights: np.ndarray, node: str) -> None:
    """Refuse per-trial weights that put a nonzero value on a synapse outside the connection's plasticity mask."""
    mask = conn.learning.mask if conn.learning is not None else None
    stray = first_absent_nonzero(mask, weights)
    if stray is not None:
        raise InputError(
            f"weight {weights[stray]:g} at {stray} is on a synapse outside the plasticity mask of connection "
            f"{conn.name!r} (absent synapses are 0)",
            node=node,
            field="weights",
        )
