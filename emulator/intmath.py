"""Integer helpers for the emulator's compiled kernels (numba), shared by every module.

numba evaluates integer expressions in int64 (``int32 + int32`` is promoted), so the kernels compute
in int64 and reproduce Lava's int32 storage explicitly with :func:`wrap32` (two's-complement wrap,
what numpy's int32 arithmetic and ``astype(np.int32)`` do).  Right shifts of signed integers are
arithmetic (floor), as numpy's.
"""

from __future__ import annotations

import numba

#: ``numba.njit`` with on-disk caching (the first run of a fresh checkout compiles, ~10 s in total).
njit = numba.njit(cache=True, nogil=True)


@njit
def wrap32(x: int) -> int:
    """``x`` reduced modulo 2**32 into ``[-2**31, 2**31)`` (int32 two's-complement wrap-around)."""
    return ((x + 2147483648) & 4294967295) - 2147483648


@njit
def clip(x, lo, hi):  # type: ignore[no-untyped-def]
    """``min(max(x, lo), hi)``."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit
def shift(x: int, exponent: int) -> int:
    """``x << exponent`` for ``exponent > 0``, else ``x >> -exponent`` (arithmetic, floor)."""
    if exponent > 0:
        return x << exponent
    if exponent < 0:
        return x >> -exponent
    return x
