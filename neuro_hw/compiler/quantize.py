"""Pure quantisation functions: float parameters -> a target's integers, with the error made.

Conventions: a float quantity ``q`` in some unit is represented by an integer ``round(q * scale)``;
the *relative error* of a value is ``|q' - q| / |q|`` where ``q'`` is what the integer means in float
(0 when ``q == 0`` and ``q' == 0``).  Nothing here clips silently: every function returns (or raises
for) saturation explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quantized:
    """Integers with the float values they stand for (after dividing by the scale)."""

    ints: np.ndarray
    represented: np.ndarray
    original: np.ndarray
    saturated: int

    @property
    def rel_error_max(self) -> float:
        return float(np.max(relative_error(self.original, self.represented), initial=0.0))

    @property
    def rel_error_mean(self) -> float:
        err = relative_error(self.original, self.represented)
        return float(err.mean()) if err.size else 0.0


def relative_error(original: np.ndarray, represented: np.ndarray) -> np.ndarray:
    """``|represented - original| / |original|``; entries with ``original == 0`` use the absolute error."""
    original = np.asarray(original, dtype=np.float64)
    represented = np.asarray(represented, dtype=np.float64)
    diff = np.abs(represented - original)
    denom = np.abs(original)
    return np.where(denom > 0, diff / np.where(denom > 0, denom, 1.0), diff)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (deterministic and symmetric in sign)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_to_range(values: np.ndarray, scale: float, lo: int, hi: int) -> Quantized:
    """``round(values * scale)`` clipped to ``[lo, hi]``; clipped entries are counted as saturated."""
    values = np.asarray(values, dtype=np.float64)
    raw = round_half_away(values * scale)
    ints = np.clip(raw, lo, hi)
    saturated = int(np.count_nonzero(raw != ints))
    return Quantized(ints.astype(np.int64), ints / scale, values, saturated)


def decay_to_int(factor: float, unity: int, offset: int, maximum: int) -> tuple[int, float]:
    """Integer decay ``d`` with ``(unity - d - offset)/unity`` closest to the per-step ``factor``.

    Returns ``(d, represented_factor)``.  ``factor`` is ``exp(-dt/tau)`` (0 = no memory, 1 = no decay).
    """
    if not 0.0 <= factor <= 1.0:
        raise ValueError(f"decay factor {factor} outside [0, 1]")
    d = int(round_half_away(unity * (1.0 - factor))) - offset
    d = min(max(d, 0), maximum)
    return d, (unity - d - offset) / unity


def mantissa_exponent(value: float, m_min: int, m_max: int, e_min: int, e_max: int) -> tuple[int, int]:
    """Best ``m * 2**e`` approximation of ``value`` with ``m_min <= m <= m_max`` and ``e_min <= e <= e_max``.

    Ties prefer the smaller exponent (finer grid).  Returns ``(0, e_min)`` when ``value`` rounds to zero
    at the finest exponent.  Raises ``OverflowError`` when ``|value|`` exceeds the largest representable
    magnitude by more than half a step.
    """
    if not math.isfinite(value):
        raise OverflowError(f"coefficient {value} is not finite")
    best: tuple[float, int, int] | None = None
    for e in range(e_min, e_max + 1):
        m = int(round_half_away(value / 2.0**e))
        if m < m_min or m > m_max:
            continue
        err = abs(m * 2.0**e - value)
        if best is None or err < best[0] - 1e-300:
            best = (err, m, e)
    if best is None:
        largest = max(abs(m_min), m_max) * 2.0**e_max
        raise OverflowError(f"|{value:g}| exceeds the largest representable magnitude {largest:g}")
    return best[1], best[2]


def bias_mant_exp(value: float, mant_max: int, exp_min: int, exp_max: int) -> tuple[int, int]:
    """Integer bias ``value`` (already scaled) as ``mant << exp`` with ``|mant| <= mant_max``.

    Uses the smallest exponent that fits (finest resolution).  Raises ``OverflowError`` if even the
    largest exponent cannot hold it.
    """
    for e in range(exp_min, exp_max + 1):
        m = int(round_half_away(value / 2.0**e))
        if abs(m) <= mant_max:
            return m, e
    raise OverflowError(f"bias {value:g} exceeds {mant_max} << {exp_max}")


def weight_exponent(max_abs: float, scale_per_exp0: float, magnitude_max: int, exp_min: int, exp_max: int) -> int:
    """Smallest weight exponent ``e`` such that ``max_abs * scale_per_exp0 / 2**e`` fits ``magnitude_max``.

    The smallest exponent gives the finest weight resolution.  Returns ``exp_max`` when nothing fits
    (the caller reports the saturation).
    """
    if max_abs == 0:
        return exp_min
    for e in range(exp_min, exp_max + 1):
        if round_half_away(max_abs * scale_per_exp0 / 2.0**e) <= magnitude_max:
            return e
    return exp_max
