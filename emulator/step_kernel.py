"""The step loop of one emulated circuit, generated as one compiled numba function per circuit structure.

:class:`StepKernel` writes the step order of :mod:`.engine` for the Program's populations and
connections as straight-line numba source: one function ``run_chunk(b0, b1, steps, t0, ...)`` that
runs trials ``b0 .. b1-1`` for ``steps`` steps, each trial through all its steps before the next (the
trials are independent), calling the arithmetic kernels of :mod:`.lif` (:func:`~.lif.lif_step`),
:mod:`.dense` (:func:`~.dense.send_one`), :mod:`.learning` (:func:`~.learning.spike_times`,
:func:`~.learning.trace_history`) and each plastic connection's generated rule function
(:mod:`.rule_kernel`).  Every step of trial ``b``::

    in_p  = sum of what the connections into p send (computed at t-1)          (int32 wrap-around)
    s_p   = lif_step(u_p, v_p, in_p)                       every population, Program order
    every connection c (source: this step's spikes of a population, or an input's payloads):
        static Dense:  out_c = send_one(W_c, s_src)
        DelayDense:    line[head] = 0; head += 1; line[head + k] += send_one(W_c^(k), s_src)
        LearningDense: out_c = send_one(w_c, s_src); spike_times(...); third factors -> y registers
    every plastic connection with t % t_epoch == 0: trace_history(...); apply_rules_i(...)
    record spikes, u, v, trace registers; plastic w/t/d at the sampled steps

Only the structure is in the source (which populations, how connected, graded or binary, delayed,
plastic with which rules, what is recorded); sizes and parameters are arguments, so circuits of the
same structure share one compiled function.  The source is written to the kernel cache
(:mod:`.codegen`), where numba caches its machine code: a new structure compiles once (a few seconds),
later runs load it.  Trials are split into contiguous ranges run by one thread per core (the function
releases the GIL; :meth:`StepKernel.run`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from neuro_hw.compile.program import Program

from .codegen import load_generated
from .dense import DenseSynapse
from .learning import LearningEngine
from .lif import LifPopulation

_HEADER = """import numpy as np
from numba import njit

from neuro_hw.emulator.dense import send_one
from neuro_hw.emulator.intmath import clip, wrap32
from neuro_hw.emulator.learning import spike_times, trace_history
from neuro_hw.emulator.lif import lif_step
"""


#: Trial ranges per thread (dynamic load balancing; each range costs ~20 us of dispatch).
TASKS_PER_WORKER = 4


def worker_count() -> int:
    """Threads used for a batch: the cores this process may run on."""
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
        Record ``u``, ``v`` and the trace registers (else spikes only).
    """

    def __init__(
        self,
        program: Program,
        pops: Mapping[str, LifPopulation],
        conns: Mapping[str, DenseSynapse | LearningEngine],
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
        self.function: Callable = load_generated(self.source, "steps").run_chunk

    # ------------------------------------------------------------------------------------------------
    def _spikes_of(self, node: str) -> str:
        """Expression of what ``node`` (population or input) sends at this step, for trial ``b``."""
        if node in self.pop_index:
            return f"p{self.pop_index[node]}_s[b, row]"
        return f"in{self.input_names.index(node)}[b, row]"

    def _source(self) -> str:
        """The module source (rule functions, then ``run_chunk``)."""
        args = ["b0", "b1", "steps", "t0", "wrow"]
        init: list[str] = []  # per trial, before the step loop
        body: list[str] = []  # per step
        for p in self.pop_index.values():
            args += [f"p{p}_u", f"p{p}_v", f"p{p}_bias", f"p{p}_uf", f"p{p}_vf", f"p{p}_vth", f"p{p}_s"]
            if self.full:
                args += [f"p{p}_ru", f"p{p}_rv"]
            init.append(f"p{p}_in = np.empty(p{p}_u.shape[1], dtype=np.int32)")
            body.append(f"p{p}_in[:] = 0")
        args += [f"in{i}" for i in range(len(self.input_names))]
        # ---- 1. what the connections send (computed at the previous step) --------------------
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            p = self.pop_index[self.program.connections[name].target]
            out = (
                f"c{c}_line[b, c{c}_head, k]" if isinstance(conn, DenseSynapse) and conn.delayed else f"c{c}_out[b, k]"
            )
            body += [
                f"for k in range(p{p}_in.shape[0]):",
                f"    p{p}_in[k] = wrap32(p{p}_in[k] + {out})",
            ]
        # ---- 2. the populations ----------------------------------------------------------------------
        for p in self.pop_index.values():
            rec = f"p{p}_ru[b, row], p{p}_rv[b, row]" if self.full else f"p{p}_u[b], p{p}_v[b]"
            body.append(
                f"lif_step(p{p}_u[b], p{p}_v[b], p{p}_in, p{p}_bias, p{p}_uf, p{p}_vf, p{p}_vth, p{p}_s[b, row], {rec})"
            )
        # ---- 3. the connections receive -----------------------------------------------------------------
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            spec = self.program.connections[name]
            src = self._spikes_of(spec.source)
            graded = int(spec.num_message_bits) > 0
            if isinstance(conn, DenseSynapse):
                args += [f"c{c}_mat", f"c{c}_we"]
                init.append(f"c{c}_acc = np.empty(c{c}_mat.shape[1], dtype=np.int64)")
                if not conn.delayed:
                    args.append(f"c{c}_out")
                    body.append(f"send_one(c{c}_mat, {src}, {graded}, {graded}, c{c}_we, c{c}_out[b], c{c}_acc)")
                    continue
                args += [f"c{c}_line", f"c{c}_head0"]
                init += [
                    f"c{c}_sent = np.empty(c{c}_mat.shape[1], dtype=np.int32)",
                    f"c{c}_head = c{c}_head0",
                    f"c{c}_depth, c{c}_m = c{c}_line.shape[1], c{c}_line.shape[2]",
                ]
                body += [
                    f"send_one(c{c}_mat, {src}, {graded}, False, c{c}_we, c{c}_sent, c{c}_acc)",
                    f"c{c}_line[b, c{c}_head] = 0",
                    f"c{c}_head = (c{c}_head + 1) % c{c}_depth",
                    f"for k in range(c{c}_depth):  # delay k arrives k steps after the next",
                    f"    r = (c{c}_head + k) % c{c}_depth",
                    f"    for q in range(c{c}_m):",
                    f"        c{c}_line[b, r, q] = wrap32(c{c}_line[b, r, q] + c{c}_sent[k * c{c}_m + q])",
                ]
                continue
            e = self.engine_index[name]
            tgt = self._spikes_of(spec.target)
            args += [f"c{c}_out", f"c{c}_we"]
            init.append(f"c{c}_acc = np.empty(c{c}_out.shape[1], dtype=np.int64)")
            body += [
                f"send_one(e{e}_w[b], {src}, {graded}, {graded}, c{c}_we, c{c}_out[b], c{c}_acc)",
                f"spike_times(e{e}_tx[b], e{e}_ty[b], {src}, {tgt}, (t - 1) % e{e}_te + 1, e{e}_z[b], e{e}_npre, "
                f"e{e}_npost, e{e}_lx, e{e}_xma, e{e}_yint, e{e}_yfrac, e{e}_yimp[2 * t - 1, b], "
                f"{conn.ky > 0 and not conn.three_factor})",
            ]
            for trace, pos in conn.ypos.items() if conn.three_factor else ():
                node = conn.three_factor.get(trace)  # 3-factor: the y registers take the received values
                value = "0.0" if node is None else f"{self._spikes_of(node)}[q]"
                body += [
                    f"for q in range(e{e}_npost):",
                    f"    e{e}_z[b, e{e}_lx + {pos} * e{e}_npost + q] = {value}",
                ]
        # ---- 4. learning phases ------------------------------------------------------------------------
        rule_sources = []
        for name, eng in self.engines.items():
            e = self.engine_index[name]
            args += [
                f"e{e}_{k}"
                for k in (
                    "w", "t", "d", "tx", "ty", "z", "te", "npre", "npost", "lx", "decay", "imp_int", "imp_frac",
                    "xma", "yint", "yfrac", "rdecay", "rimp", "yimp", "round", "norm", "t1min", "dec",
                )
            ]  # fmt: skip
            init += [
                f"e{e}_hist = np.empty((e{e}_te + 1, e{e}_z.shape[1]))",
                f"e{e}_rows = np.empty(e{e}_npost, dtype=np.int64)",
            ]
            u = f"1 if e{e}_dec >= 0 and (t // e{e}_te) % (1 << e{e}_dec) == 0 else 0" if eng.has_u else "0"
            body += [
                f"if t % e{e}_te == 0:",
                f"    u = {u}",
                f"    trace_history(e{e}_z[b], e{e}_tx[b], e{e}_ty[b], e{e}_lx, e{e}_npre, e{e}_npost, e{e}_decay, "
                f"e{e}_imp_int, e{e}_imp_frac, e{e}_rdecay[2 * t, b], e{e}_rimp[2 * t, b], e{e}_hist, "
                f"{bool(eng.three_factor)})",
                f"    whole = not e{e}_norm[b] or e{e}_t1min[b] or u == 1",
                f"    low = apply_rules_{e}(e{e}_w[b], e{e}_t[b], e{e}_d[b], e{e}_tx[b], e{e}_ty[b], u, whole, "
                f"e{e}_hist, e{e}_round[t // e{e}_te], e{e}_rows)",
                "    if whole:",
                f"        e{e}_norm[b] = True",
                f"        e{e}_t1min[b] = low",
                "    else:",
                f"        e{e}_t1min[b] = e{e}_t1min[b] or low",
            ]
            rule_sources.append(eng.rule_source)
        # ---- 5. recording ------------------------------------------------------------------------------
        for name, eng in self.engines.items():
            e = self.engine_index[name]
            if self.full:
                args.append(f"e{e}_rtr")
                body += [
                    f"for q in range(e{e}_z.shape[1]):",
                    f"    e{e}_rtr[b, row, q] = np.int32(e{e}_z[b, q])",
                ]
            for var in sorted(eng.vars_changed):
                args.append(f"e{e}_rw{var}")
                body += [
                    "r = wrow[row]",
                    "if r >= 0:",
                    f"    for j in range(e{e}_npre):",
                    f"        for i in range(e{e}_npost):",
                    f"            e{e}_rw{var}[b, r, i, j] = e{e}_{var}[b, j, i]",
                ]
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
            "",
        ]
        return _HEADER + "".join(rule_sources) + "\n".join(lines)

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
        values: dict[str, Any] = {"steps": steps, "t0": t0, "wrow": wrow}
        for name, pop in self.pops.items():
            p = self.pop_index[name]
            values.update({
                f"p{p}_u": pop.u, f"p{p}_v": pop.v, f"p{p}_bias": pop.bias, f"p{p}_uf": pop.u_factor,
                f"p{p}_vf": pop.v_factor, f"p{p}_vth": pop.vth_eff, f"p{p}_s": rec_s[name],
                f"p{p}_ru": rec_u.get(name), f"p{p}_rv": rec_v.get(name),
            })  # fmt: skip
        for i, name in enumerate(self.input_names):
            values[f"in{i}"] = data[name]
        for name, conn in self.conns.items():
            c = self.conn_index[name]
            spec = self.program.connections[name]
            values[f"c{c}_we"] = int(spec.weight_exp)
            if isinstance(conn, DenseSynapse):
                values[f"c{c}_mat"] = conn.mat
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
                f"e{e}_z": eng.z, f"e{e}_te": eng.t_epoch, f"e{e}_npre": eng.n_pre, f"e{e}_npost": eng.n_post,
                f"e{e}_lx": eng.lx, f"e{e}_decay": eng.decay, f"e{e}_imp_int": eng.imp_int,
                f"e{e}_imp_frac": eng.imp_frac, f"e{e}_xma": eng.x_multi_add, f"e{e}_yint": eng.y_int,
                f"e{e}_yfrac": eng.y_frac, f"e{e}_rdecay": eng.r_decay, f"e{e}_rimp": eng.r_imp,
                f"e{e}_yimp": eng.y_imp_draws, f"e{e}_round": eng.round_add, f"e{e}_norm": eng.normalized,
                f"e{e}_t1min": eng.tag1_at_min, f"e{e}_dec": eng.decimation_exp, f"e{e}_rtr": rec_tr.get(name),
            })  # fmt: skip
            for var, arr in rec_w[name].items():
                values[f"e{e}_rw{var}"] = arr
        return values

    def run(self, batch: int, values: Mapping[str, Any]) -> None:
        """Run ``run_chunk`` for trials ``0 .. batch-1`` on :func:`worker_count` threads.

        The batch is cut into up to ``TASKS_PER_WORKER`` ranges per thread, taken from a queue, so a
        thread that is slowed down (another process on its core) does not hold up the others."""
        ordered = [values[k] for k in self.arg_names[2:]]
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
