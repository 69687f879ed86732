"""Compiled learning-rule kernels: a connection's products turned into straight-line numba code.

The arithmetic is the learning phase of :mod:`.learning` (``docs/lava-semantics.md`` §4.4-4.5),
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
constant and bound is a literal, runs at ~0.5 ns per synapse (n = 100 STDP, 5 % rates; the pre columns
and post rows are updated by vectorised loops).  The function source of :func:`rule_function_source`
becomes part of the run's step kernel (:mod:`.step_kernel`), which is compiled once per circuit
structure and cached on disk (:mod:`.codegen`).

The function works on one trial: ``w``, ``tag1``, ``tag2`` ``(n_pre, n_post)`` (pre-major), spike
times ``tx`` ``(n_pre,)``, ``ty`` ``(n_post,)``, the epoch's trace history ``hist`` ``(t_epoch + 1,
n_traces)``, ``scratch`` ``(SCRATCH_ROWS, max(n_pre, n_post))`` int64, and the epoch's lists of pre and
post neurons with a spike time, ``epoch_pre[:n_epoch[0]]``, ``epoch_post[:n_epoch[1]]`` (kept by
:func:`~.learning.spike_times`).  It visits (see :mod:`.learning`, "Where the rules are evaluated")
every synapse when ``whole``, else the synapses of the pre columns (pre neurons with ``x0``) and of the
post rows (post neurons with ``y0``), then resets the spike times ``tx``, ``ty`` and the lists, and
returns whether a tag_1 below -256 was written.  Every visited synapse gets
exactly the update above; only the loop structure is chosen for speed:

* a pre column ``j`` is updated by one branch-free loop over all post neurons with ``y0 = 0`` (so the
  compiler vectorises it over the contiguous ``w[j, :]``); the synapses on the post rows, which need
  ``y0 = 1``, are computed first from their old values into scratch and stored over the column's
  values afterwards;
* a post row ``i`` (strided in ``w``) is copied into scratch, updated there by one branch-free
  vectorised loop with ``x0 = 0``, and stored back except on the pre columns, which keep the values
  the column loops gave them;
* the tag_1 flag only counts the values that are stored.
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
def {NAME}(w, tag1, tag2, tx, ty, u, whole, hist, round_add, scratch, epoch_pre, epoch_post, n_epoch):
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
        n_cols = n_epoch[0] if {COLS_BY_X0} else 0  # the pre columns (x0): epoch_pre[:n_cols]
        n_rows = n_epoch[1] if {ROWS_BY_Y0} else 0  # the post rows (y0): epoch_post[:n_rows]
        for c in range(n_cols):
            j = epoch_pre[c]
            t_pre = tx[j]
            for k in range(n_rows):  # the column's synapses on the post rows (x0 = y0 = 1), kept aside ...
                i = epoch_post[k]
                t_post = ty[i]
                {CROSS}
            for i in range(n_post):  # ... the column with y0 = 0 (vectorised), wrong on the post rows ...
                t_post = ty[i]
                {COLUMN}
            for k in range(n_rows):  # ... which get their values from the first loop
                i = epoch_post[k]
                {CROSS_STORE}
        for k in range(n_rows):  # the post rows, minus the pre columns (x0 = 0 there if they exist)
            i = epoch_post[k]
            t_post = ty[i]
            for j in range(n_pre):  # the row's variables into scratch (a strided walk) ...
                {ROW_LOAD}
            for j in range(n_pre):  # ... updated there with x0 = 0 (vectorised), wrong on the pre columns ...
                t_pre = tx[j]
                {ROW}
            for j in range(n_pre):  # ... and stored back, the pre columns unchanged (no branch)
                off_column = not {COLS_BY_X0} or tx[j] <= 0
                {ROW_STORE}
    for c in range(n_epoch[0]):  # the epoch's spike times are consumed
        tx[epoch_pre[c]] = 0
    for k in range(n_epoch[1]):
        ty[epoch_post[k]] = 0
    n_epoch[0] = 0
    n_epoch[1] = 0
    return low_tag1
"""

#: Rows of the rule functions' ``scratch`` argument ``(SCRATCH_ROWS, max(n_pre, n_post))`` int64: the
#: new w, t, d of a column's synapses on the post rows; the old and the new w, t, d of one post row.
SCRATCH_ROWS = 9
_CROSS_SLOT = {"w": "scratch[0, k]", "t": "scratch[1, k]", "d": "scratch[2, k]"}
_ROW_OLD = {"w": "scratch[3, j]", "t": "scratch[4, j]", "d": "scratch[5, j]"}
_ROW_NEW = {"w": "scratch[6, j]", "t": "scratch[7, j]", "d": "scratch[8, j]"}
_STORE = {"w": "w[j, i]", "t": "tag1[j, i]", "d": "tag2[j, i]"}


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
            val = f"hist[np.uint64({at}), np.uint64({idx})]"  # unsigned: no wrap-around test, so a contiguous load
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
    accumulator_bits: int = 15,
) -> str:
    """Python source of the numba function ``name`` that applies the given products (see module doc).

    ``trace_offset``: bank offset of each live trace as an expression of ``n_pre``, ``n_post`` (missing =
    always 0); ``ranges``/``saturation``: per
    variable ``w``/``d``/``t`` the final clip and the sign saturation (0 none, 1 max(0, .), 2 min(0, .));
    ``stored``: whether tag_1 (``t``) and tag_2 (``d``) are stored (else they read as 0);
    ``accumulator_bits``: the accumulator's bounds ``[-2**a - 1, 2**a - 1]`` (Lava: 15; an engine variant with
    ``b``-bit weights has ``b + 7``).
    """
    has_x0 = any(p.dependency == "x0" for ps in parsed.values() for p in ps)
    has_y0 = any(p.dependency == "y0" for ps in parsed.values() for p in ps)
    bounds = (-(2**accumulator_bits) - 1, 2**accumulator_bits - 1, ranges["t"][0] + 1)
    args = (parsed, trace_offset, ranges, saturation, stored, bounds)
    changed = {TARGET_VARIABLE[t] for t in parsed}
    stored_vars = [v for v in ("w", "d", "t") if v in changed and (v == "w" or stored[v])]
    variants = {
        "WHOLE": _update_lines({}, *args),
        # the synapses of a pre column on the post rows, with their new values kept in scratch
        "CROSS": _update_lines({"x0": 1, "y0": 1, "u": 0}, *args, dest=_CROSS_SLOT),
        # a pre column as if no post neuron had spiked (no branch, so it vectorises); the tag_1 flag
        # only counts the synapses off the post rows (the others are overwritten from CROSS)
        "COLUMN": _update_lines({"x0": 1, "y0": 0, "u": 0}, *args, flag_mask="t_post == 0" if has_y0 else None),
        "CROSS_STORE": [f"{_STORE[v]} = {_CROSS_SLOT[v]}" for v in stored_vars] or ["pass"],
        # a post row, in place in scratch; the tag_1 flag only counts the synapses off the pre columns
        "ROW_LOAD": [f"{_ROW_OLD[v]} = {_STORE[v]}" for v in ("w", "t", "d") if v == "w" or stored[v]],
        "ROW": _update_lines(
            {"y0": 1, "u": 0, **({"x0": 0} if has_x0 else {})},
            *args,
            source=_ROW_OLD,
            dest=_ROW_NEW,
            flag_mask="t_pre == 0" if has_x0 else None,
        ),
        "ROW_STORE": [f"{_STORE[v]} = {_ROW_NEW[v]} if off_column else {_ROW_OLD[v]}" for v in stored_vars] or ["pass"],
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
    bounds: tuple[int, int, int] = (ACC_MIN, ACC_MAX, TAG1_FIXED_MIN),
    source: Mapping[str, str] = _STORE,
    dest: Mapping[str, str] = _STORE,
    flag_mask: str | None = None,
) -> list[str]:
    """The update of synapse ``(j, i)`` (``t_pre``, ``t_post`` loaded); ``known``: dependencies with a
    literal value in this loop (a product with a known 0 dependency reduces to its accumulator clip).

    ``source``/``dest``: where the old ``w``, ``t``, ``d`` are read and the new ones written;
    ``flag_mask``: a condition the "tag_1 below -256" flag is also subject to; ``bounds``: the accumulator's
    lower and upper bound and the smallest tag_1 that is a fixed point (Lava: -32769, 32767, -256)."""
    acc_min, acc_max, tag1_fixed_min = bounds
    out = [
        f"x0 = {known['x0']}" if "x0" in known else "x0 = 1 if t_pre > 0 else 0",
        f"y0 = {known['y0']}" if "y0" in known else "y0 = 1 if t_post > 0 else 0",
        f"old_w = np.int64({source['w']})",
        "old_d = " + (f"np.int64({source['d']})" if stored["d"] else "0"),
        "old_t = " + (f"np.int64({source['t']})" if stored["t"] else "0"),
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
                out.append(f"{pad}c = clip(c, {acc_min}, {acc_max})")
                out.append(f"{pad}acc = {'wrap32(acc + c)' if wrap else 'acc + c'}")
            out.append(f"acc = clip(acc, {acc_min}, {acc_max})")
        if saturation[var] == 1:
            out.append("acc = max(acc, 0)")
        elif saturation[var] == 2:
            out.append("acc = min(acc, 0)")
        lo, hi = ranges[var]
        out.append(f"new_{var} = clip((acc + round_add) >> 7, {lo}, {hi})")
    changed = {TARGET_VARIABLE[t] for t in parsed}
    if "w" in changed:
        out.append(f"{dest['w']} = new_w")
    if "d" in changed and stored["d"]:
        out.append(f"{dest['d']} = new_d")
    if "t" in changed and stored["t"]:
        out.append(f"{dest['t']} = new_t")
        low = f"new_t < {tag1_fixed_min}"
        out.append(f"low_tag1 |= {low} and {flag_mask}" if flag_mask else f"low_tag1 |= {low}")
    return out
