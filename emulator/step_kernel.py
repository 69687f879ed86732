"""The step loop of one emulated circuit, generated as one compiled numba function per circuit structure.

:class:`StepKernel` writes the step order of :mod:`.engine` for the Program's populations and
connections as a sequence of calls: one function ``run_chunk(b0, b1, steps, t0, ...)`` that
runs trials ``b0 .. b1-1`` for ``steps`` steps, each trial through all its steps before the next (the
trials are independent), calling the compiled kernels of :mod:`.lif` (:func:`~.lif.lif_step`),
:mod:`.dense` (:func:`~.dense.send_one`), :mod:`.learning` (:func:`~.learning.spike_times`,
:func:`~.learning.trace_history`), :mod:`.glue` (sums, delay lines, registers, recording) and the
generated rule function of each rules' form (:mod:`.rule_kernel`).  ``run_chunk`` has no loop of its own
besides trials and steps.  Every step of trial ``b``::

    act_i = active_indices(input i at t)                   the nonzero entries, once per step
    in_p  = sum of what the connections into p send (computed at t-1)          (int32 wrap-around;
                                                           one undelayed connection: its output as is)
    s_p   = lif_step(u_p, v_p, in_p); act_p = active_indices(s_p)      every population, Program order
    every connection c (source: this step's spikes of a population, or an input's payloads):
        static Dense:  out_c = send_one(W_c, s_src, act_src)
        DelayDense:    line[head] = 0; head += 1; line[head + k] += send_one(W_c^(k), s_src, act_src)
        LearningDense: out_c = send_one(w_c, s_src, act_src); spike_times(act_src, act_tgt, ...);
                       third factors -> y registers
    every plastic connection with t % t_epoch == 0: trace_history(...); apply_rules_<form>(...)
    record spikes, u, v, trace registers; plastic w/t/d at the sampled steps

Only the structure is in the source (which populations, how connected, graded or binary, delayed,
plastic with which rules' *form*); sizes, parameters, bit widths, rounding, impulses, rule coefficients and
what is recorded are arguments, so circuits of the same structure -- and every point of a precision sweep
over one circuit -- share one compiled function.  The source is written to the kernel cache
(:mod:`.codegen`), where numba caches its machine code.  Compilation time grows faster than the function's
size, which is why every loop is a call (a ~60-connection seed circuit: 294 s with the kernels inlined into
one function, 46 s as calls; docs/emulator.md); later runs load it from the disk cache.  The source carries a
hash of the kernel modules, so a changed kernel is never served from an old cache entry.  Trials are split
into contiguous ranges run by one thread per core (the function releases the GIL; :meth:`StepKernel.run`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.compiler.program import Program

from .codegen import compile_lock, load_generated, recursion_headroom
from .conv import ConvSynapse
from .dense import DenseSynapse
from .graded import GradedPopulation
from .learning import LearningEngine
from .lif import LifPopulation
from .rule_kernel import SCRATCH_ROWS

#: The modules whose kernels the generated step loop calls (their hash is part of its source).
KERNEL_MODULES = (
    "intmath.py",
    "lif.py",
    "dense.py",
    "conv.py",
    "graded.py",
    "glue.py",
    "learning.py",
    "rule_kernel.py",
    "step_kernel.py",
)


def _kernel_fingerprint() -> str:
    """Hash of the emulator's kernel modules: part of every generated source, so that a changed kernel
    (linked into the generated functions) never reuses machine code numba cached for the old one
    (numba invalidates a cached function when its own file changes, not when a function it calls does)."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in KERNEL_MODULES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _invalidate_stale_kernel_caches(dispatchers: list | None = None, fingerprint: str | None = None) -> None:
    """Drop numba's disk cache of the fixed kernels when the kernel modules changed.

    numba keys a cached function by its own file only: ``lif_step`` cached before an edit of ``intmath.py`` would
    keep the old ``wrap32`` compiled into it, and a step kernel compiled afterwards would call that stale code.  So a
    stamp with :func:`_kernel_fingerprint` sits beside their cache; when it differs, every fixed kernel's cache index
    is flushed (they recompile once, ~10-20 s) and the stamp rewritten.  Best effort: an unwritable cache is left
    alone."""
    from numba.core.registry import CPUDispatcher

    from . import conv, dense, glue, graded, intmath, learning, lif

    if dispatchers is None:  # (the arguments are for tests)
        dispatchers = list({
            id(obj): obj
            for module in (intmath, lif, dense, conv, graded, glue, learning)
            for obj in vars(module).values()
            if isinstance(obj, CPUDispatcher) and getattr(obj, "_cache", None) is not None
        }.values())  # fmt: skip
    fingerprint = fingerprint or _kernel_fingerprint()
    for path in {str(getattr(d._cache, "_cache_path", "")) for d in dispatchers} - {""}:
        stamp = Path(path) / "neuro_hw_kernel_modules.fingerprint"
        try:
            if stamp.exists() and stamp.read_text() == fingerprint:
                continue
            for d in dispatchers:
                if str(getattr(d._cache, "_cache_path", "")) == path:
                    d._cache.flush()
            stamp.write_text(fingerprint)
        except OSError:
            continue


_invalidate_stale_kernel_caches()


_HEADER = f"""# generated by neuro_hw.emulator.step_kernel (kernel modules {_kernel_fingerprint()})
import numpy as np
from numba import njit

from neuro_hw.emulator.conv import send_conv
from neuro_hw.emulator.dense import active_indices, send_one, send_sparse
from neuro_hw.emulator.glue import (
    accumulate, accumulate_row, advance_delay_line, advance_uniform_delay_line, clear_registers, record_bank,
    record_synapses, set_registers, zero,
)
from neuro_hw.emulator.graded import graded_step
from neuro_hw.emulator.intmath import clip, wrap32
from neuro_hw.emulator.learning import overwrite_x1, spike_times, trace_history
from neuro_hw.emulator.lif import lif_step
"""


#: Trial ranges per thread (dynamic load balancing; each range costs ~20 us of dispatch).
TASKS_PER_WORKER = 4


def worker_count() -> int:
    """Threads used for a batch: ``$NEURO_HW_THREADS`` when set (a positive integer; the sweep engine sets 1 in
    its Dask workers, which already fill the cores with one task each), else the cores this process may run on."""
    env = os.environ.get("NEURO_HW_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"NEURO_HW_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class StepKernel:
    """The generated step loop of one :class:`~.engine.EmulatorRun` (see module doc).

    Parameters
    ----------
    program:
        The compiled circuit.
    pops:
        The populations' state, in Program order.
    conns:
        Every connection's state, in Program order: :class:`~.dense.DenseSynapse` (static) or
        :class:`~.learning.LearningEngine` (plastic).
    full:
        Record ``u``, ``v`` and the trace registers (else spikes only).  A runtime argument of the kernel, not part
        of its source: a circuit trained with spikes recorded and checked with everything recorded compiles once
        (without recording, ``u``/``v`` are "recorded" into themselves, as one-row views).
    """

    def __init__(
        self,
        program: Program,
        pops: Mapping[str, LifPopulation | GradedPopulation],
        conns: Mapping[str, DenseSynapse | ConvSynapse | LearningEngine],
        full: bool,
    ) -> None:
        self.program = program
        self.pops = dict(pops)
        self.conns = dict(conns)
        self.full = full
        self.pop_index = {name: i for i, name in enumerate(self.pops)}
        self.engines = {n: c for n, c in self.conns.items() if isinstance(c, LearningEngine)}
        self.engine_index = {name: i for i, name in enumerate(self.engines)}
        self.conn_index = {name: i for i, name in enumerate(self.conns)}
        sources = [program.connections[n].source for n in self.conns]
        sources += [v for eng in self.engines.values() for v in eng.three_factor.values()]
        self.input_names = sorted({s for s in sources if s in program.inputs})
        self.source = self._source()
        self.module = load_generated(self.source, "steps")
        self.function: Callable = self.module.run_chunk

    # ------------------------------------------------------------------------------------------------
    def _spikes_of(self, node: str) -> str:
        """The ``(T, n)`` array of trial ``b`` holding what ``node`` (population or input) sends, row by step:
        spikes (bool) of a LIF population, payloads (int32) of a graded one or of an input."""
        if node in self.pop_index:
            kind = "y" if isinstance(self.pops[node], GradedPopulation) else "s"
            return f"p{self.pop_index[node]}_{kind}_b"
        return f"in{self.input_names.index(node)}_b"

    def _active_of(self, node: str) -> str:
        """``"list, count"``: the indices of ``node``'s nonzero outputs at this step and their number."""
        name = f"p{self.pop_index[node]}" if node in self.pop_index else f"in{self.input_names.index(node)}"
        return f"{name}_act, {name}_nact"

    def _source(self) -> str:
        """The module source (rule functions, then ``run_chunk``).

        Every per-trial view (``x_b = x[b]``) is made once per trial, before the step loop, and the
        step's row is passed as an index: in numba each array view costs two atomic reference-count
        updates on the parent's memory, which the threads running other trials would contend for.
        Offsets computed from sizes index as unsigned integers: numba tests every signed index for
        wrap-around (negative indices), which turns a contiguous loop into gathers.
        Each population's and input's nonzero outputs are listed once per step (``active_indices``) for
        every connection and learning engine that reads them."""
        args = ["b0", "b1", "steps", "t0", "wrow", "full"]
        init: list[str] = []  # per trial, before the step loop
        body: list[str] = []  # per step
        # the nodes whose nonzero outputs are listed each step: sources of connections, targets of plastic ones
        listed = {self.program.connections[name].source for name in self.conns}
        listed |= {self.program.connections[name].target for name in self.engines}
        fan_in = {p: [] for p in self.pop_index}
        for name in self.conns:
            fan_in[self.program.connections[name].target].append(name)
        # a LIF population fed by one connection without delays reads its output directly (0 + x = x)
        direct = {
            pop: self.conn_index[names[0]]
            for pop, names in fan_in.items()
            if len(names) == 1
            and not getattr(self.conns[names[0]], "delayed", False)
            and not isinstance(self.pops[pop], GradedPopulation)
        }
        for pop, p in self.pop_index.items():
            if isinstance(self.pops[pop], GradedPopulation):
                args += [f"p{p}_y", f"p{p}_prm"]
                init += [
                    f"p{p}_y_b = p{p}_y[b]",
                    f"p{p}_in = np.empty(p{p}_y.shape[2], dtype=np.int32)",
                    f"p{p}_inb = np.empty(p{p}_y.shape[2], dtype=np.int32)",
                ]
                if pop in listed:
                    init.append(f"p{p}_act = np.empty(p{p}_y.shape[2], dtype=np.int64)")
                body += [f"zero(p{p}_in)", f"zero(p{p}_inb)"]
                continue
            args += [f"p{p}_u", f"p{p}_v", f"p{p}_bias", f"p{p}_uf", f"p{p}_vf", f"p{p}_vth", f"p{p}_s"]
            init += [
                f"p{p}_u_b = p{p}_u[b]",
                f"p{p}_v_b = p{p}_v[b]",
                f"p{p}_s_b = p{p}_s[b]",
            ]
            if pop in listed:
                init.append(f"p{p}_act = np.empty(p{p}_u.shape[1], dtype=np.int64)")
            if pop not in direct:
                init.append(f"p{p}_in = np.empty(p{p}_u.shape[1], dtype=np.int32)")
                body.append(f"zero(p{p}_in)")
            args += [f"p{p}_ru", f"p{p}_rv"]  # (B, T, n) records, or u, v themselves as (B, 1, n) views
            init += [f"p{p}_ru_b = p{p}_ru[b]", f"p{p}_rv_b = p{p}_rv[b]"]
        for i, node in enumerate(self.input_names):
            args.append(f"in{i}")
            init.append(f"in{i}_b = in{i}[b]")
            if node in listed:
                init.append(f"in{i}_act = np.empty(in{i}.shape[2], dtype=np.int64)")
                body.append(f"in{i}_nact = active_indices(in{i}_b, row, in{i}_act)")
        uv_row = "urow"  # the record row of u, v: this step's, or 0 (u, v themselves) without recording
        body.insert(0, "urow = row if full else 0")
        # ---- 1. what the connections send (computed at the previous step) --------------------
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            pop = self.program.connections[name].target
            if pop in direct:
                continue
            p = self.pop_index[pop]
            port = "inb" if self.program.connections[name].port == "b" else "in"
            if getattr(conn, "delayed", False):
                body.append(f"accumulate_row(p{p}_{port}, c{c}_line_b, c{c}_head)")
            else:
                body.append(f"accumulate(p{p}_{port}, c{c}_out_b)")
        # ---- 2. the populations ----------------------------------------------------------------------
        for pop, p in self.pop_index.items():
            gp = self.pops[pop]
            if isinstance(gp, GradedPopulation):
                body.append(
                    f"graded_step(p{p}_in, p{p}_inb, {gp.act}, {gp.gate}, p{p}_prm[0], p{p}_prm[1], p{p}_prm[2], "
                    f"p{p}_prm[3], p{p}_prm[4], p{p}_y_b, row)"
                )
                if pop in listed:
                    body.append(f"p{p}_nact = active_indices(p{p}_y_b, row, p{p}_act)")
                continue
            a_in = f"c{direct[pop]}_out_b" if pop in direct else f"p{p}_in"
            body.append(
                f"lif_step(p{p}_u_b, p{p}_v_b, {a_in}, p{p}_bias, p{p}_uf, p{p}_vf, p{p}_vth, p{p}_s_b, row, "
                f"p{p}_ru_b, p{p}_rv_b, {uv_row})"
            )
            if pop in listed:
                body.append(f"p{p}_nact = active_indices(p{p}_s_b, row, p{p}_act)")
        # ---- 3. the connections receive -----------------------------------------------------------------
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            spec = self.program.connections[name]
            src, act = self._spikes_of(spec.source), self._active_of(spec.source)
            graded = int(spec.num_message_bits) > 0
            if isinstance(conn, ConvSynapse):
                args += [f"c{c}_ptr", f"c{c}_rows", f"c{c}_taps", f"c{c}_kern", f"c{c}_we"]
                kernel = f"c{c}_ptr, c{c}_rows, c{c}_taps, c{c}_kern, {src}, row, {act}, {graded}"
                if not conn.delayed:
                    args.append(f"c{c}_out")
                    init += [f"c{c}_out_b = c{c}_out[b]", f"c{c}_acc = np.empty(c{c}_out.shape[1], dtype=np.int64)"]
                    body.append(f"send_conv({kernel}, {graded}, c{c}_we, c{c}_out_b, c{c}_acc)")
                    continue
                args += [f"c{c}_line", f"c{c}_head0", f"c{c}_delay"]
                init += [
                    f"c{c}_sent = np.empty(c{c}_line.shape[2], dtype=np.int32)",
                    f"c{c}_acc = np.empty(c{c}_line.shape[2], dtype=np.int64)",
                    f"c{c}_line_b = c{c}_line[b]",
                    f"c{c}_head = c{c}_head0",
                ]
                body += [  # as a DelayDense whose synapses all have delay d
                    f"send_conv({kernel}, False, c{c}_we, c{c}_sent, c{c}_acc)",
                    f"c{c}_head = advance_uniform_delay_line(c{c}_line_b, c{c}_head, c{c}_sent, c{c}_delay)",
                ]
                continue
            if isinstance(conn, DenseSynapse):
                args += [f"c{c}_mat", f"c{c}_we"]
                init += [  # one weight matrix for all trials, or the trial's own
                    f"c{c}_mat_b = c{c}_mat[b if c{c}_mat.shape[0] > 1 else 0]",
                    f"c{c}_acc = np.empty(c{c}_mat.shape[2], dtype=np.int64)",
                ]
                if conn.sparse:  # mostly zeros: the rows' nonzero entries only (the same sums)
                    args += [f"c{c}_ptr", f"c{c}_cols", f"c{c}_vals"]
                    init += [
                        f"c{c}_w = 1 if c{c}_ptr.shape[0] > 1 else 0",
                        f"c{c}_ptr_b = c{c}_ptr[b * c{c}_w]",
                        f"c{c}_cols_b = c{c}_cols[b * c{c}_w]",
                        f"c{c}_vals_b = c{c}_vals[b * c{c}_w]",
                    ]
                    weights = f"c{c}_ptr_b, c{c}_cols_b, c{c}_vals_b"
                    send = "send_sparse"
                else:
                    weights, send = f"c{c}_mat_b", "send_one"
                if not conn.delayed:
                    args.append(f"c{c}_out")
                    init.append(f"c{c}_out_b = c{c}_out[b]")
                    body.append(
                        f"{send}({weights}, {src}, row, {act}, {graded}, {graded}, c{c}_we, c{c}_out_b, c{c}_acc)"
                    )
                    continue
                args += [f"c{c}_line", f"c{c}_head0"]
                init += [
                    f"c{c}_sent = np.empty(c{c}_mat.shape[2], dtype=np.int32)",
                    f"c{c}_line_b = c{c}_line[b]",
                    f"c{c}_head = c{c}_head0",
                ]
                body += [  # delay k arrives k steps after the next
                    f"{send}({weights}, {src}, row, {act}, {graded}, False, c{c}_we, c{c}_sent, c{c}_acc)",
                    f"c{c}_head = advance_delay_line(c{c}_line_b, c{c}_head, c{c}_sent)",
                ]
                continue
            e = self.engine_index[name]
            tgt_act = self._active_of(spec.target)
            args += [f"c{c}_out", f"c{c}_we"]
            init += [f"c{c}_acc = np.empty(c{c}_out.shape[1], dtype=np.int64)", f"c{c}_out_b = c{c}_out[b]"]
            body += [
                f"send_one(e{e}_w_b, {src}, row, {act}, {graded}, {graded}, c{c}_we, c{c}_out_b, c{c}_acc)",
                f"spike_times(e{e}_tx_b, e{e}_ty_b, {act}, {tgt_act}, (t - 1) % e{e}_te + 1, e{e}_z_b, e{e}_npre, "
                f"e{e}_npost, e{e}_lx, e{e}_xma, e{e}_yint, e{e}_yfrac, e{e}_rimp[2 * t - 1, e{e}_stream_b, 1], "
                f"{conn.ky > 0 and not conn.three_factor}, e{e}_epre_b, e{e}_epost_b, e{e}_nep_b, "
                f"{conn.x_multi_from}, e{e}_tmax)",
            ]
            if conn.pre_activity:  # graded pre activity overwrites x1 (GradedSpikeCfg.OVERWRITE)
                body.append(f"overwrite_x1(e{e}_z_b, {src}, row, {act})")
            for trace, pos in conn.ypos.items() if conn.three_factor else ():
                node = conn.three_factor.get(trace)  # 3-factor: the y registers take the received values
                base = f"e{e}_lx + {pos} * e{e}_npost"
                if node is None:
                    body.append(f"clear_registers(e{e}_z_b, {base}, e{e}_npost)")
                else:
                    body.append(f"set_registers(e{e}_z_b, {base}, e{e}_npost, {self._spikes_of(node)}, row)")
        # ---- 4. learning phases ------------------------------------------------------------------------
        rule_sources: dict[str, str] = {}  # one function per rules' form
        for name, eng in self.engines.items():
            e = self.engine_index[name]
            args += [
                f"e{e}_{k}"
                for k in (
                    "w", "t", "d", "tx", "ty", "z", "te", "npre", "npost", "lx", "decay", "imp_int", "imp_frac",
                    "xma", "yint", "yfrac", "rdecay", "rimp", "stream", "round", "norm", "t1min", "dec",
                    "epre", "epost", "nep", "tmax", "rp", "rc", "mask",
                )
            ]  # fmt: skip
            init += [
                f"e{e}_hist = np.empty((e{e}_te + 1, e{e}_z.shape[1]))",
                f"e{e}_scratch = np.empty(({SCRATCH_ROWS}, max(e{e}_npre, e{e}_npost)), dtype=np.int64)",
                *(f"e{e}_{k}_b = e{e}_{k}[b]" for k in ("w", "t", "d", "tx", "ty", "z", "epre", "epost", "nep")),
                f"e{e}_norm_b = e{e}_norm[b]",  # per-trial flags kept in locals (written back below)
                f"e{e}_t1min_b = e{e}_t1min[b]",
                f"e{e}_stream_b = e{e}_stream[b]",  # the trial's random streams
            ]
            u = f"1 if e{e}_dec >= 0 and (t // e{e}_te) % (1 << e{e}_dec) == 0 else 0" if eng.has_u else "0"
            body += [
                f"if t % e{e}_te == 0:",
                f"    u = {u}",
                f"    trace_history(e{e}_z_b, e{e}_tx_b, e{e}_ty_b, e{e}_lx, e{e}_npre, e{e}_npost, e{e}_decay, "
                f"e{e}_imp_int, e{e}_imp_frac, e{e}_rdecay[2 * t, e{e}_stream_b, 0], "
                f"e{e}_rdecay[2 * t, e{e}_stream_b, 1], e{e}_rimp[2 * t, e{e}_stream_b, 0], "
                f"e{e}_rimp[2 * t, e{e}_stream_b, 1], e{e}_hist, {bool(eng.three_factor)}, e{e}_tmax)",
                f"    whole = not e{e}_norm_b or e{e}_t1min_b or u == 1",
                f"    low = {eng.rule_name}(e{e}_w_b, e{e}_t_b, e{e}_d_b, e{e}_tx_b, e{e}_ty_b, u, whole, "
                f"e{e}_hist, e{e}_round[t // e{e}_te], e{e}_scratch, e{e}_epre_b, e{e}_epost_b, e{e}_nep_b, "
                f"e{e}_rp, e{e}_rc, e{e}_mask)",
                "    if whole:",
                f"        e{e}_norm_b = True",
                f"        e{e}_t1min_b = low",
                "    else:",
                f"        e{e}_t1min_b = e{e}_t1min_b or low",
            ]
            rule_sources[eng.rule_name] = eng.rule_source
        # ---- 5. recording ------------------------------------------------------------------------------
        for name, eng in self.engines.items():
            e = self.engine_index[name]
            args.append(f"e{e}_rtr")
            init.append(f"e{e}_rtr_b = e{e}_rtr[b]")
            body += ["if full:", f"    record_bank(e{e}_rtr_b, row, e{e}_z_b)"]
            for var in sorted(eng.vars_changed):
                args.append(f"e{e}_rw{var}")
                body += ["if wrow[row] >= 0:", f"    record_synapses(e{e}_rw{var}, b, wrow[row], e{e}_{var}_b)"]
        final = [line for e in self.engine_index.values() for line in (
            f"e{e}_norm[b] = e{e}_norm_b", f"e{e}_t1min[b] = e{e}_t1min_b"
        )]  # fmt: skip
        self.arg_names = args
        lines = [
            "",
            "",
            "@njit(cache=True, nogil=True)",
            f"def run_chunk({', '.join(args)}):",
            "    for b in range(b0, b1):",
            *("        " + line for line in init),
            "        for row in range(steps):",
            "            t = t0 + row + 1",
            *("            " + line for line in body),
            *("        " + line for line in final),
            "",
        ]
        return _HEADER + "".join(rule_sources.values()) + "\n".join(lines)

    # ------------------------------------------------------------------------------------------------
    def arguments(
        self,
        steps: int,
        t0: int,
        wrow: np.ndarray,
        data: Mapping[str, np.ndarray],
        rec_s: Mapping[str, np.ndarray],
        rec_u: Mapping[str, np.ndarray],
        rec_v: Mapping[str, np.ndarray],
        rec_tr: Mapping[str, np.ndarray],
        rec_w: Mapping[str, Mapping[str, np.ndarray]],
    ) -> dict[str, Any]:
        """The values of ``run_chunk``'s arguments (except ``b0``, ``b1``) for one chunk."""
        values: dict[str, Any] = {"steps": steps, "t0": t0, "wrow": wrow, "full": self.full}
        for name, pop in self.pops.items():
            p = self.pop_index[name]
            if isinstance(pop, GradedPopulation):  # rec_s holds its int32 outputs
                prm = [pop.params[k] for k in ("clip", "knee", "lo", "hi", "shift")]
                values.update({f"p{p}_y": rec_s[name], f"p{p}_prm": np.asarray(prm, dtype=np.int64)})
                continue
            values.update({
                f"p{p}_u": pop.u, f"p{p}_v": pop.v, f"p{p}_bias": pop.bias, f"p{p}_uf": pop.u_factor,
                f"p{p}_vf": pop.v_factor, f"p{p}_vth": pop.vth_eff, f"p{p}_s": rec_s[name],
                f"p{p}_ru": rec_u[name] if self.full else pop.u.reshape(pop.u.shape[0], 1, pop.u.shape[1]),
                f"p{p}_rv": rec_v[name] if self.full else pop.v.reshape(pop.v.shape[0], 1, pop.v.shape[1]),
            })  # fmt: skip
        for i, name in enumerate(self.input_names):
            values[f"in{i}"] = data[name]
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            spec = self.program.connections[name]
            values[f"c{c}_we"] = int(spec.weight_exp)
            if isinstance(conn, ConvSynapse):
                values.update({f"c{c}_ptr": conn.ptr, f"c{c}_rows": conn.rows, f"c{c}_taps": conn.taps,
                               f"c{c}_kern": conn.kernel})  # fmt: skip
                if conn.delayed:
                    values.update({f"c{c}_line": conn.ring, f"c{c}_head0": conn.head, f"c{c}_delay": conn.delay})
                else:
                    values[f"c{c}_out"] = conn.a_buff
                continue
            if isinstance(conn, DenseSynapse):
                values[f"c{c}_mat"] = conn.mat
                if conn.sparse:
                    values.update({f"c{c}_ptr": conn.ptr, f"c{c}_cols": conn.cols, f"c{c}_vals": conn.vals})
                if conn.delayed:
                    values.update({f"c{c}_line": conn.ring, f"c{c}_head0": conn.head})
                else:
                    values[f"c{c}_out"] = conn.a_buff
                continue
            e = self.engine_index[name]
            eng = conn
            values[f"c{c}_out"] = eng.a_buff
            values.update({
                f"e{e}_w": eng.wt, f"e{e}_t": eng.tt, f"e{e}_d": eng.dt, f"e{e}_tx": eng.tx, f"e{e}_ty": eng.ty,
                f"e{e}_epre": eng.epoch_pre, f"e{e}_epost": eng.epoch_post, f"e{e}_nep": eng.n_epoch,
                f"e{e}_z": eng.z, f"e{e}_te": eng.t_epoch, f"e{e}_npre": eng.n_pre, f"e{e}_npost": eng.n_post,
                f"e{e}_lx": eng.lx, f"e{e}_decay": eng.decay, f"e{e}_imp_int": eng.imp_int,
                f"e{e}_imp_frac": eng.imp_frac, f"e{e}_xma": eng.x_multi_add, f"e{e}_yint": eng.y_int,
                f"e{e}_yfrac": eng.y_frac, f"e{e}_rdecay": eng.r_decay, f"e{e}_rimp": eng.r_imp,
                f"e{e}_stream": eng.stream_of_trial, f"e{e}_round": eng.round_add, f"e{e}_norm": eng.normalized,
                f"e{e}_t1min": eng.tag1_at_min, f"e{e}_dec": eng.decimation_exp,
                f"e{e}_tmax": eng.trace_max, f"e{e}_rp": eng.rule_params, f"e{e}_rc": eng.rule_consts,
                f"e{e}_mask": eng.present,
            })  # fmt: skip
            # the trace registers' record (a one-row dummy, never written, without recording)
            no_record = np.zeros((eng.batch, 1, eng.z.shape[1]), dtype=np.int32)
            values[f"e{e}_rtr"] = rec_tr[name] if self.full else no_record
            for var, arr in rec_w[name].items():
                values[f"e{e}_rw{var}"] = arr
        return values

    def run(self, batch: int, values: Mapping[str, Any]) -> None:
        """Run ``run_chunk`` for trials ``0 .. batch-1`` on :func:`worker_count` threads.

        The batch is cut into up to ``TASKS_PER_WORKER`` ranges per thread, taken from a queue, so a
        thread that is slowed down (another process on its core) does not hold up the others."""
        ordered = [values[k] for k in self.arg_names[2:]]
        if not self.function.signatures:  # the first call compiles (or loads) it: once per machine at a time
            with compile_lock(self.module), recursion_headroom():
                self.function(0, 0, *ordered)  # no trials: types only
        workers = min(worker_count(), batch)
        if workers <= 1:
            self.function(0, batch, *ordered)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ranges = trial_ranges(batch, workers * TASKS_PER_WORKER)
            for future in [pool.submit(self.function, lo, hi, *ordered) for lo, hi in ranges]:
                future.result()


def trial_ranges(batch: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal trial ranges ``[(lo, hi), ...]``: ``min(parts, batch)`` of them, none empty."""
    bounds = np.linspace(0, batch, max(1, min(parts, batch)) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
