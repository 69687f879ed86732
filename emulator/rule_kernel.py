"""Compiled learning-rule kernels: a connection's products turned into straight-line numba code.

The arithmetic is the learning phase of :mod:`.learning` (``../shared/docs/lava-semantics.md`` §4.4),
literally, per synapse: for every target (dw, dd, dt in Lava's order, all reading the pre-update
``w``, ``d``, ``t``)::

    acc = var << 7                         (int32 for w)
    for each product (dep, m, s_exp, factors):
        if dep == 0:  acc = clip(acc, -32769, 32767)                      (a zero product)
        else:
            c = int32(m << s_exp)    (no width shift; the int32 product is modular)   |   c = m
            for f: c = int32(c * int32(clip(f_val [+ const] [sgn], -2**width, 2**width - 1)))
            width shift: c = int32((c >> shift) << s_exp)
            c = clip(c, -32769, 32767);  acc = clip(acc + c, -32769, 32767)
    w: EXC max(0, acc) | INH min(0, acc);  d: max(0, acc)
    new = clip((acc + round_add) >> 7, lo, hi)       (stochastic rounding, round_add = 127 - floor(128 r))

``f_val`` of a trace is read from the epoch's trace history at the dependency's time: the pre spike
time for ``x0``-products, the post spike time for ``y0``-products, the epoch end for ``u``-products.
``x0``/``y0`` factors are the 0/1 dependencies; ``w``/``d``/``t`` the old values.

Interpreting the products per synapse costs ~50 ns; the generated code, where every product, factor,
constant and bound is a literal, runs at ~6 ns per synapse (n = 100 STDP).  :func:`rule_kernel`
writes the generated module once per distinct rule set into a cache directory (``$NEURO_HW_CACHE`` or
``~/.cache/neuro_hw``, else a temporary directory) so numba's on-disk cache compiles it only once.

The kernel visits (see :mod:`.learning`, "Where the rules are evaluated") every synapse when
``whole``, else the synapses of the post rows (post neurons with ``y0``) and of the pre columns (pre
neurons with ``x0``), each once, in storage order (pre-major), then resets the spike times ``tx``, ``ty`` to 0,
and returns whether a tag_1 below -256 was written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

from .intmath import wrap32
from .microcode import TARGET_ORDER, TARGET_VARIABLE, Product

#: Accumulator bounds: W_ACCUMULATOR_U = 15 with Lava's asymmetric lower bound.
ACC_MIN = -(2**15) - 1
ACC_MAX = 2**15 - 1
#: Smallest tag_1 that is a fixed point of the pipeline for an untouched synapse (-257 << 7 < ACC_MIN).
TAG1_FIXED_MIN = -256

_HEADER = """import numpy as np
from numba import njit, prange
from neuro_hw.emulator.intmath import clip, wrap32
"""

_DRIVER = """

@njit(cache=True, nogil=True, parallel={PARALLEL})
def {NAME}(w, tag1, tag2, tx, ty, u, whole, rows_by_y0, cols_by_x0, hist, round_add):
    batch, n_pre, n_post = w.shape
    te = hist.shape[0] - 1
    low = np.zeros(batch, dtype=np.bool_)
    post_rows = np.empty((batch, n_post), dtype=np.int64)  # one allocation, not one per trial
    for b in prange(batch):
        low_tag1 = False
        if whole:
            for j in range(n_pre):
                for i in range(n_post):
                    {UPDATE}
        else:
            rows = post_rows[b]
            n_rows = 0
            if rows_by_y0:
                for i in range(n_post):
                    if ty[b, i] > 0:
                        rows[n_rows] = i
                        n_rows += 1
            for j in range(n_pre):  # storage is pre-major: walk it row by row
                if cols_by_x0 and tx[b, j] > 0:
                    for i in range(n_post):  # a pre column (it includes the post rows' synapses)
                        {UPDATE}
                else:
                    for k in range(n_rows):  # the post rows
                        i = rows[k]
                        {UPDATE}
        low[b] = low_tag1
        tx[b] = 0  # the epoch's spike times are consumed
        ty[b] = 0
    return low.any()
"""

_loaded: dict[str, ModuleType] = {}


def _factor_source(f, dep: str, trace_offset: Mapping[str, int]) -> str:
    """Expression of one clipped factor (a float or int) for a product with dependency ``dep``."""
    if f.var in ("x0", "y0"):
        val = f.var
    elif f.var in ("w", "d", "t"):
        val = f"old_{f.var}"
    else:
        off = trace_offset.get(f.var, -1)
        if off < 0:
            val = "0.0"
        else:
            at = {"x0": "t_pre", "y0": "t_post"}.get(dep, "te")
            idx = f"{off} + j" if f.var.startswith("x") else f"{off} + i"
            val = f"hist[{at}, b, {idx}]"
    if f.const is not None:
        val = f"({val} + {float(f.const)!r})"
    if f.sgn:
        val = f"np.sign({val})"
    bound = 2**f.width
    return f"np.int64(clip({val}, {-bound}, {bound - 1}))"


def kernel_source(
    parsed: Mapping[str, tuple[Product, ...]],
    trace_offset: Mapping[str, int],
    ranges: Mapping[str, tuple[int, int]],
    saturation: Mapping[str, int],
    stored: Mapping[str, bool],
) -> str:
    """Python source of ``apply_rules`` for the given products (see module doc).

    ``trace_offset``: bank offset of each live trace (missing = always 0); ``ranges``/``saturation``: per
    variable ``w``/``d``/``t`` the final clip and the sign saturation (0 none, 1 max(0, .), 2 min(0, .));
    ``stored``: whether tag_1 (``t``) and tag_2 (``d``) are stored (else they read as 0).
    """
    out = [
        "t_pre = tx[b, j]",
        "t_post = ty[b, i]",
        "x0 = 1 if t_pre > 0 else 0",
        "y0 = 1 if t_post > 0 else 0",
        "old_w = np.int64(w[b, j, i])",
        f"old_d = {'np.int64(tag2[b, j, i])' if stored['d'] else '0'}",
        f"old_t = {'np.int64(tag1[b, j, i])' if stored['t'] else '0'}",
    ]
    for tgt in TARGET_ORDER:
        if tgt not in parsed:
            continue
        var = TARGET_VARIABLE[tgt]
        wrap = var == "w"  # Lava's weight accumulator is int32
        out.append(f"acc = {'wrap32(old_w << 7)' if wrap else f'old_{var} << 7'}")
        for p in parsed[tgt]:
            dep = {"x0": "x0", "y0": "y0"}.get(p.dependency, "u")
            scale = int(wrap32(p.mantissa << p.s_exp)) if p.shift == 0 else int(wrap32(p.mantissa))
            out.append(f"if {dep} != 0:")
            out.append(f"    c = {scale}")
            for f in p.factors:
                # float -> int32 truncates toward zero, as numpy's unsafe cast
                out.append(f"    c = wrap32(c * {_factor_source(f, p.dependency, trace_offset)})")
            if p.shift:
                out.append(f"    c = wrap32((c >> {p.shift}) << {p.s_exp})")
            out.append(f"    c = clip(c, {ACC_MIN}, {ACC_MAX})")
            out.append(f"    acc = {'wrap32(acc + c)' if wrap else 'acc + c'}")
            out.append(f"acc = clip(acc, {ACC_MIN}, {ACC_MAX})")
        if saturation[var] == 1:
            out.append("acc = max(acc, 0)")
        elif saturation[var] == 2:
            out.append("acc = min(acc, 0)")
        lo, hi = ranges[var]
        out.append(f"new_{var} = clip((acc + round_add) >> 7, {lo}, {hi})")
    changed = {TARGET_VARIABLE[t] for t in parsed}
    if "w" in changed:
        out.append("w[b, j, i] = new_w")
    if "d" in changed and stored["d"]:
        out.append("tag2[b, j, i] = new_d")
    if "t" in changed and stored["t"]:
        out.append("tag1[b, j, i] = new_t")
        out.append(f"low_tag1 |= new_t < {TAG1_FIXED_MIN}")
    # the update is pasted into each loop of the driver (a numba call per synapse costs ~30 ns); the
    # driver is emitted twice: serial, and split over threads by trial (separate names: separate caches)
    source = _HEADER
    for name, parallel in (("apply_rules", False), ("apply_rules_parallel", True)):
        driver = _DRIVER.replace("{NAME}", name).replace("{PARALLEL}", str(parallel))
        for indent in (24, 20):  # deepest first: "    " * 5 + "{UPDATE}" ends with "    " * 4 + "{UPDATE}"
            driver = driver.replace(" " * indent + "{UPDATE}", "\n".join(" " * indent + line for line in out))
        assert "{UPDATE}" not in driver
        source += driver
    return source


def _cache_dir() -> Path:
    candidates = [os.environ.get("NEURO_HW_CACHE"), str(Path.home() / ".cache" / "neuro_hw")]
    for c in candidates:
        if not c:
            continue
        path = Path(c) / "rule_kernels"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    path = Path(tempfile.gettempdir()) / f"neuro_hw_rule_kernels_{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rule_kernel(source: str, parallel: bool = False) -> Callable:
    """The compiled ``apply_rules`` (``parallel``: ``apply_rules_parallel``) of ``source`` (:func:`kernel_source`).

    The module is loaded once per process; numba compiles each function on its first call.
    """
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    attr = "apply_rules_parallel" if parallel else "apply_rules"
    if key in _loaded:
        return getattr(_loaded[key], attr)
    path = _cache_dir() / f"rules_{key}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent processes write the same text
    name = f"neuro_hw_rule_kernel_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[key] = module
    return getattr(module, attr)
