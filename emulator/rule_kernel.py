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
constant and bound is a literal, runs at ~3-6 ns per synapse (n = 100 STDP).  The function source of
:func:`rule_function_source` becomes part of the run's step kernel (:mod:`.step_kernel`), which is
compiled once per circuit structure and cached on disk (:mod:`.codegen`).

The function works on one trial: ``w``, ``tag1``, ``tag2`` ``(n_pre, n_post)`` (pre-major), spike
times ``tx`` ``(n_pre,)``, ``ty`` ``(n_post,)``, the epoch's trace history ``hist`` ``(t_epoch + 1,
n_traces)``, scratch ``rows`` ``(n_post,)`` int64.  It visits (see :mod:`.learning`, "Where the rules
are evaluated") every synapse when ``whole``, else the synapses of the post rows (post neurons with
``y0``) and of the pre columns (pre neurons with ``x0``), each once, in storage order, then resets the
spike times ``tx``, ``ty`` to 0, and returns whether a tag_1 below -256 was written.
"""

from __future__ import annotations

from collections.abc import Mapping

from .intmath import wrap32
from .microcode import TARGET_ORDER, TARGET_VARIABLE, Product

#: Accumulator bounds: W_ACCUMULATOR_U = 15 with Lava's asymmetric lower bound.
ACC_MIN = -(2**15) - 1
ACC_MAX = 2**15 - 1
#: Smallest tag_1 that is a fixed point of the pipeline for an untouched synapse (-257 << 7 < ACC_MIN).
TAG1_FIXED_MIN = -256

_DRIVER = """

@njit(cache=True, nogil=True)
def {NAME}(w, tag1, tag2, tx, ty, u, whole, hist, round_add, rows):
    n_pre, n_post = w.shape
    te = hist.shape[0] - 1
    low_tag1 = False
    if whole:
        for j in range(n_pre):
            t_pre = tx[j]
            for i in range(n_post):
                t_post = ty[i]
                {WHOLE}
    else:  # u == 0 here (u == 1 visits every synapse)
        n_rows = 0
        if {ROWS_BY_Y0}:
            for i in range(n_post):
                if ty[i] > 0:
                    rows[n_rows] = i
                    n_rows += 1
        for j in range(n_pre):
            t_pre = tx[j]
            if {COLS_BY_X0} and t_pre > 0:
                for i in range(n_post):  # a pre column (it includes the post rows' synapses)
                    t_post = ty[i]
                    {COLUMN}
        for k in range(n_rows):  # the post rows, minus the pre columns (x0 = 0 there if they exist)
            i = rows[k]
            t_post = ty[i]
            for j in range(n_pre):
                t_pre = tx[j]
                if {COLS_BY_X0} and t_pre > 0:
                    continue
                {ROW}
    tx[:] = 0  # the epoch's spike times are consumed
    ty[:] = 0
    return low_tag1
"""


def _factor_source(f, dep: str, trace_offset: Mapping[str, str]) -> str:
    """Expression of one clipped factor (a float or int) for a product with dependency ``dep``."""
    if f.var in ("x0", "y0"):
        val = f.var
    elif f.var in ("w", "d", "t"):
        val = f"old_{f.var}"
    else:
        off = trace_offset.get(f.var)
        if off is None:
            val = "0.0"
        else:
            at = {"x0": "t_pre", "y0": "t_post"}.get(dep, "te")
            idx = f"{off} + j" if f.var.startswith("x") else f"{off} + i"
            val = f"hist[{at}, {idx}]"
    if f.const is not None:
        val = f"({val} + {float(f.const)!r})"
    if f.sgn:
        val = f"np.sign({val})"
    bound = 2**f.width
    return f"np.int64(clip({val}, {-bound}, {bound - 1}))"


def rule_function_source(
    name: str,
    parsed: Mapping[str, tuple[Product, ...]],
    trace_offset: Mapping[str, str],
    ranges: Mapping[str, tuple[int, int]],
    saturation: Mapping[str, int],
    stored: Mapping[str, bool],
) -> str:
    """Python source of the numba function ``name`` that applies the given products (see module doc).

    ``trace_offset``: bank offset of each live trace as an expression of ``n_pre``, ``n_post`` (missing =
    always 0); ``ranges``/``saturation``: per
    variable ``w``/``d``/``t`` the final clip and the sign saturation (0 none, 1 max(0, .), 2 min(0, .));
    ``stored``: whether tag_1 (``t``) and tag_2 (``d``) are stored (else they read as 0).
    """
    has_x0 = any(p.dependency == "x0" for ps in parsed.values() for p in ps)
    has_y0 = any(p.dependency == "y0" for ps in parsed.values() for p in ps)
    args = (parsed, trace_offset, ranges, saturation, stored)
    variants = {
        "WHOLE": _update_lines({}, *args),
        "COLUMN": _update_lines({"x0": 1, "u": 0}, *args),
        "ROW": _update_lines({"y0": 1, "u": 0, **({"x0": 0} if has_x0 else {})}, *args),
    }
    # the update is pasted into each loop of the driver (a numba call per synapse costs ~30 ns)
    driver = _DRIVER.replace("{NAME}", name).replace("{ROWS_BY_Y0}", str(has_y0)).replace("{COLS_BY_X0}", str(has_x0))
    for key, lines in variants.items():
        at = driver.index("{" + key + "}")
        indent = at - driver.rindex("\n", 0, at) - 1
        driver = driver.replace("{" + key + "}", ("\n" + " " * indent).join(lines))
    return driver


def _update_lines(
    known: Mapping[str, int],
    parsed: Mapping[str, tuple[Product, ...]],
    trace_offset: Mapping[str, str],
    ranges: Mapping[str, tuple[int, int]],
    saturation: Mapping[str, int],
    stored: Mapping[str, bool],
) -> list[str]:
    """The update of synapse ``(j, i)`` (``t_pre``, ``t_post`` loaded); ``known``: dependencies with a
    literal value in this loop (a product with a known 0 dependency reduces to its accumulator clip)."""
    out = [
        f"x0 = {known['x0']}" if "x0" in known else "x0 = 1 if t_pre > 0 else 0",
        f"y0 = {known['y0']}" if "y0" in known else "y0 = 1 if t_post > 0 else 0",
        "old_w = np.int64(w[j, i])",
        f"old_d = {'np.int64(tag2[j, i])' if stored['d'] else '0'}",
        f"old_t = {'np.int64(tag1[j, i])' if stored['t'] else '0'}",
    ]
    for tgt in TARGET_ORDER:
        if tgt not in parsed:
            continue
        var = TARGET_VARIABLE[tgt]
        wrap = var == "w"  # Lava's weight accumulator is int32
        out.append(f"acc = {'wrap32(old_w << 7)' if wrap else f'old_{var} << 7'}")
        for p in parsed[tgt]:
            dep = {"x0": "x0", "y0": "y0"}.get(p.dependency, "u")
            value = known.get(dep)
            if value != 0:  # a zero product adds nothing, but the accumulator is still clipped
                pad = "" if value == 1 else "    "
                if value is None:
                    out.append(f"if {dep} != 0:")
                scale = int(wrap32(p.mantissa << p.s_exp)) if p.shift == 0 else int(wrap32(p.mantissa))
                out.append(f"{pad}c = {scale}")
                for f in p.factors:
                    # float -> int32 truncates toward zero, as numpy's unsafe cast
                    out.append(f"{pad}c = wrap32(c * {_factor_source(f, p.dependency, trace_offset)})")
                if p.shift:
                    out.append(f"{pad}c = wrap32((c >> {p.shift}) << {p.s_exp})")
                out.append(f"{pad}c = clip(c, {ACC_MIN}, {ACC_MAX})")
                out.append(f"{pad}acc = {'wrap32(acc + c)' if wrap else 'acc + c'}")
            out.append(f"acc = clip(acc, {ACC_MIN}, {ACC_MAX})")
        if saturation[var] == 1:
            out.append("acc = max(acc, 0)")
        elif saturation[var] == 2:
            out.append("acc = min(acc, 0)")
        lo, hi = ranges[var]
        out.append(f"new_{var} = clip((acc + round_add) >> 7, {lo}, {hi})")
    changed = {TARGET_VARIABLE[t] for t in parsed}
    if "w" in changed:
        out.append("w[j, i] = new_w")
    if "d" in changed and stored["d"]:
        out.append("tag2[j, i] = new_d")
    if "t" in changed and stored["t"]:
        out.append("tag1[j, i] = new_t")
        out.append(f"low_tag1 |= new_t < {TAG1_FIXED_MIN}")
    return out
