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
    new = new * present[j, i]                        (a plasticity mask: absent synapses stay 0)

``f_val`` of a trace is read from the epoch's trace history at the dependency's time: the pre spike
time for ``x0``-products, the post spike time for ``y0``-products, the epoch end for ``u``-products.
``x0``/``y0`` factors are the 0/1 dependencies; ``w``/``d``/``t`` the old values.

Interpreting the products per synapse costs ~50 ns; the generated code, where the products and factors
are written out, runs at ~0.5 ns per synapse (n = 100 STDP, 5 % rates; the pre columns and post rows are
updated by vectorised loops).  Only the rules' *form* is in the source: the numbers -- scaling factors,
shifts, factor widths, constants, accumulator and variable bounds -- are runtime arguments
(:func:`rule_parameters`, loaded into locals once per call), so one compiled function serves every rule of
that form at every engine width (a precision sweep compiles once), and plastic connections with rules of
one form share it.  The function source of :func:`rule_function_source` becomes part of the run's step
kernel (:mod:`.step_kernel`), which is compiled once per circuit structure and cached on disk
(:mod:`.codegen`).

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

import hashlib
from collections.abc import Mapping

import numpy as np

from .intmath import wrap32
from .microcode import TARGET_ORDER, TARGET_VARIABLE, Product

_DRIVER = """

@njit(cache=True, nogil=True)
def {NAME}(w, tag1, tag2, tx, ty, u, whole, hist, round_add, scratch, epoch_pre, epoch_post, n_epoch, prm, cst,
           present):
    {PARAMS}
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


def _factor_source(f, dep: str, trace_offset: Mapping[str, str], name: str) -> str:
    """Expression of one clipped factor (a float or int) for a product with dependency ``dep``; ``name``: the
    prefix of its runtime parameters (``{name}_lo``, ``{name}_hi``: the width's bounds; ``{name}_c``: the constant)."""
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
        val = f"({val} + {name}_c)"
    if f.sgn:
        val = f"np.sign({val})"
    return f"np.int64(clip({val}, {name}_lo, {name}_hi))"


def _products(parsed: Mapping[str, tuple[Product, ...]]) -> list[tuple[str, int, Product]]:
    """``(target, k, product)`` in evaluation order; ``k`` numbers the products across targets (parameter names)."""
    ordered = [(tgt, p) for tgt in TARGET_ORDER for p in parsed.get(tgt, ())]
    return [(tgt, k, p) for k, (tgt, p) in enumerate(ordered)]


def rule_parameters(
    parsed: Mapping[str, tuple[Product, ...]],
    ranges: Mapping[str, tuple[int, int]],
    accumulator_bits: int = 15,
) -> tuple[np.ndarray, np.ndarray]:
    """The runtime arguments ``prm`` (int64) and ``cst`` (float64) of the function of :func:`rule_function_source`
    for these products: everything that depends on the engine's bit widths or on a rule's numbers (not its form).

    ``prm``: the accumulator's lower and upper bound ``-2**a - 1``, ``2**a - 1`` (Lava: ``a = 15``; an engine variant
    with ``b``-bit weights has ``b + 7``), the smallest fixed-point tag_1 (``t``'s lower bound + 1), ``lo, hi`` of
    ``w``, ``d``, ``t``; per product its start value, right shift and left shift (``m << s_exp``, 0, 0 without a
    width shift, else ``m``, ``shift``, ``s_exp``; both ``int32``-wrapped as Lava's), per factor ``-2**width``,
    ``2**width - 1``.  ``cst``: each factor's constant (0.0 when it has none)."""
    ints = [-(2**accumulator_bits) - 1, 2**accumulator_bits - 1, ranges["t"][0] + 1]
    for var in ("w", "d", "t"):
        ints += list(ranges[var])
    consts: list[float] = []
    for _, _, p in _products(parsed):
        if p.shift == 0:
            ints += [int(wrap32(p.mantissa << p.s_exp)), 0, 0]
        else:
            ints += [int(wrap32(p.mantissa)), p.shift, p.s_exp]
        for f in p.factors:
            ints += [-(2**f.width), 2**f.width - 1]
            consts.append(0.0 if f.const is None else float(f.const))
    return np.asarray(ints, dtype=np.int64), np.asarray(consts, dtype=np.float64)


def _parameter_loads(parsed: Mapping[str, tuple[Product, ...]]) -> list[str]:
    """The function's first lines: every runtime parameter into a local (order of :func:`rule_parameters`)."""
    names = ["acc_lo", "acc_hi", "t1_fixed_lo", "lo_w", "hi_w", "lo_d", "hi_d", "lo_t", "hi_t"]
    const_names = []
    for _, k, p in _products(parsed):
        names += [f"p{k}_start", f"p{k}_rshift", f"p{k}_lshift"]
        for q in range(len(p.factors)):
            names += [f"p{k}f{q}_lo", f"p{k}f{q}_hi"]
            const_names.append(f"p{k}f{q}_c")
    lines = [f"{name} = prm[{i}]" for i, name in enumerate(names)]
    return lines + [f"{name} = cst[{i}]" for i, name in enumerate(const_names)]


def rule_function_source(
    parsed: Mapping[str, tuple[Product, ...]],
    trace_offset: Mapping[str, str],
    saturation: Mapping[str, int],
    stored: Mapping[str, bool],
    masked: bool = False,
) -> tuple[str, str]:
    """``(name, source)``: the numba function that applies the given products (see module doc), and its name.

    Only the rules' form is in the source (which products, on which dependency, with which factors, constants
    and signs; whether a product needs a width shift; which variables change and are stored); every
    number is a runtime argument
    (:func:`rule_parameters`), so the rules of one form share one compiled function whatever their
    coefficients and the engine's widths (a precision sweep compiles once).  The name is a hash of the source.

    ``trace_offset``: bank offset of each live trace as an expression of ``n_pre``, ``n_post`` (missing =
    always 0); ``saturation``: per variable ``w``/``d``/``t`` the sign saturation (0 none, 1 max(0, .), 2
    min(0, .)); ``stored``: whether tag_1 (``t``) and tag_2 (``d``) are stored (else they read as 0); ``masked``:
    the connection has a plasticity mask, ``present`` ``(n_pre, n_post)`` uint8 (else a dummy the code never reads):
    every new ``w``, ``t``, ``d`` is multiplied by ``present[j, i]``, so absent synapses (0 throughout) stay 0.
    """
    has_x0 = any(p.dependency == "x0" for ps in parsed.values() for p in ps)
    has_y0 = any(p.dependency == "y0" for ps in parsed.values() for p in ps)
    args = (parsed, trace_offset, saturation, stored, masked)
    changed = {TARGET_VARIABLE[t] for t in parsed}
    stored_vars = [v for v in ("w", "d", "t") if v in changed and (v == "w" or stored[v])]
    variants = {
        "PARAMS": _parameter_loads(parsed),
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
    driver = _DRIVER.replace("{ROWS_BY_Y0}", str(has_y0)).replace("{COLS_BY_X0}", str(has_x0))
    for key, lines in variants.items():
        at = driver.index("{" + key + "}")
        indent = at - driver.rindex("\n", 0, at) - 1
        driver = driver.replace("{" + key + "}", ("\n" + " " * indent).join(lines))
    name = "apply_rules_" + hashlib.sha256(driver.encode()).hexdigest()[:16]
    return name, driver.replace("{NAME}", name)


def _update_lines(
    known: Mapping[str, int],
    parsed: Mapping[str, tuple[Product, ...]],
    trace_offset: Mapping[str, str],
    saturation: Mapping[str, int],
    stored: Mapping[str, bool],
    masked: bool,
    source: Mapping[str, str] = _STORE,
    dest: Mapping[str, str] = _STORE,
    flag_mask: str | None = None,
) -> list[str]:
    """The update of synapse ``(j, i)`` (``t_pre``, ``t_post`` loaded); ``known``: dependencies with a
    literal value in this loop (a product with a known 0 dependency reduces to its accumulator clip).

    ``source``/``dest``: where the old ``w``, ``t``, ``d`` are read and the new ones written;
    ``flag_mask``: a condition the "tag_1 below -256" flag is also subject to.  The numbers are the locals of
    :func:`_parameter_loads` (``acc_lo``, ``acc_hi``: the accumulator's bounds, Lava's -32769, 32767;
    ``t1_fixed_lo``: the smallest tag_1 that is a fixed point, Lava's -256)."""
    out = [
        f"x0 = {known['x0']}" if "x0" in known else "x0 = 1 if t_pre > 0 else 0",
        f"y0 = {known['y0']}" if "y0" in known else "y0 = 1 if t_post > 0 else 0",
        f"old_w = np.int64({source['w']})",
        "old_d = " + (f"np.int64({source['d']})" if stored["d"] else "0"),
        "old_t = " + (f"np.int64({source['t']})" if stored["t"] else "0"),
    ]
    products = _products(parsed)
    for tgt in TARGET_ORDER:
        if tgt not in parsed:
            continue
        var = TARGET_VARIABLE[tgt]
        wrap = var == "w"  # Lava's weight accumulator is int32
        out.append(f"acc = {'wrap32(old_w << 7)' if wrap else f'old_{var} << 7'}")
        for _, k, p in (item for item in products if item[0] == tgt):
            dep = {"x0": "x0", "y0": "y0"}.get(p.dependency, "u")
            value = known.get(dep)
            if value != 0:  # a zero product adds nothing, but the accumulator is still clipped
                pad = "" if value == 1 else "    "
                if value is None:
                    out.append(f"if {dep} != 0:")
                out.append(f"{pad}c = p{k}_start")
                for q, f in enumerate(p.factors):
                    # float -> int32 truncates toward zero, as numpy's unsafe cast
                    out.append(f"{pad}c = wrap32(c * {_factor_source(f, p.dependency, trace_offset, f'p{k}f{q}')})")
                if p.shift:  # the width shift (part of the form: a runtime shift of 0 would not vectorise as well)
                    out.append(f"{pad}c = wrap32((c >> p{k}_rshift) << p{k}_lshift)")
                out.append(f"{pad}c = clip(c, acc_lo, acc_hi)")
                out.append(f"{pad}acc = {'wrap32(acc + c)' if wrap else 'acc + c'}")
            out.append("acc = clip(acc, acc_lo, acc_hi)")
        if saturation[var] == 1:
            out.append("acc = max(acc, 0)")
        elif saturation[var] == 2:
            out.append("acc = min(acc, 0)")
        out.append(f"new_{var} = clip((acc + round_add) >> 7, lo_{var}, hi_{var})")
        if masked:  # an absent synapse stays 0 (branch-free, so the loops still vectorise)
            out.append(f"new_{var} = new_{var} * np.int64(present[np.uint64(j), np.uint64(i)])")
    changed = {TARGET_VARIABLE[t] for t in parsed}
    if "w" in changed:
        out.append(f"{dest['w']} = new_w")
    if "d" in changed and stored["d"]:
        out.append(f"{dest['d']} = new_d")
    if "t" in changed and stored["t"]:
        out.append(f"{dest['t']} = new_t")
        low = "new_t < t1_fixed_lo"
        out.append(f"low_tag1 |= {low} and {flag_mask}" if flag_mask else f"low_tag1 |= {low}")
    return out
