"""Child-process side of the Lava backend: ``python -m neuro_hw.targets.loihi2.lava_worker <workdir>``.

Started by :func:`neuro_hw.targets.loihi2.lava_backend.run_program_lava` through
:func:`~neuro_hw.targets.loihi2.process_guard.run_guarded`, in its own process group.  It reads
``<workdir>/spec.pkl``, builds the Lava process network of each trial (and of each connected
component of the program), runs it with ``Loihi2SimCfg`` and the recording models of
:mod:`.recording`, stops it, and writes into ``workdir``:

* the memory-mapped recordings (pre-created by the parent, layout in the spec);
* ``timings.json`` (build / compile+initialise / run / stop seconds per run);
* ``readback.pkl`` when ``read_back`` was requested (final values through ``Var.get()``);
* on failure ``error.json`` (exception type, message, traceback, and the tracebacks of the Lava
  process models that failed), after which it SIGKILLs its own process group instead of trying
  a graceful ``stop()`` that could hang on dead workers.

Nothing in here is public API; the spec format is private to ``lava_backend``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .process_guard import hard_exit_group, install_child_guards

ERROR_FILE = "error.json"
TIMINGS_FILE = "timings.json"
READBACK_FILE = "readback.pkl"
SPEC_FILE = "spec.pkl"


class BuildError(Exception):
    """Building the Lava process of one Program node failed (message names the node)."""


@contextlib.contextmanager
def _building(kind: str, name: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        raise BuildError(f"building the Lava process for {kind} {name!r}: {type(err).__name__}: {err}") from err


class ModelError(Exception):
    """A Lava process model raised; carries the models' own tracebacks."""

    def __init__(self, message: str, model_tracebacks: list[str]) -> None:
        super().__init__(message)
        self.model_tracebacks = model_tracebacks


def components(program: Any) -> list[dict[str, list[str]]]:
    """Connected components of the program graph (inputs, populations, connections, third factors).

    Components that contain no population are dropped (there is nothing to run or record).
    Returns a list of ``{"inputs": [...], "neurons": [...], "connections": [...]}`` in program order.
    """
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for name in list(program.inputs) + list(program.neurons):
        parent[name] = name
    for name, conn in program.connections.items():
        key = f"\0conn:{name}"
        parent[key] = key
        union(key, conn.source)
        union(key, conn.target)
        if conn.learning is not None:
            for src in conn.learning.third_factor.values():
                union(key, src)
    groups: dict[str, dict[str, list[str]]] = {}
    order: list[str] = []
    for name in program.inputs:
        root = find(name)
        if root not in groups:
            groups[root] = {"inputs": [], "neurons": [], "connections": []}
            order.append(root)
        groups[root]["inputs"].append(name)
    for name in program.neurons:
        root = find(name)
        if root not in groups:
            groups[root] = {"inputs": [], "neurons": [], "connections": []}
            order.append(root)
        groups[root]["neurons"].append(name)
    for name in program.connections:
        groups[find(f"\0conn:{name}")]["connections"].append(name)
    return [groups[r] for r in order if groups[r]["neurons"]]


def _rec(spec: dict[str, Any], trial: int, label: str, keys: dict[str, str]) -> dict[str, Any]:
    """Recording plan for one process: ``keys`` maps the model's key to the array name in the spec."""
    arrays = {}
    for model_key, array_name in keys.items():
        a = spec["arrays"].get(array_name)
        if a is None:
            continue
        per_trial = tuple(a["shape"][1:])
        itemsize = np.dtype(a["dtype"]).itemsize
        arrays[model_key] = {
            "path": a["path"],
            "dtype": a["dtype"],
            "offset": trial * int(np.prod(per_trial, dtype=np.int64)) * itemsize,
            "shape": list(per_trial),
        }
    rec: dict[str, Any] = {"label": label, "error_dir": str(Path(spec["workdir"]) / "errors"), "arrays": arrays}
    if spec.get("ring"):
        rec["ring"] = int(spec["ring"])  # ring-buffer rows (persistent session, see recording.py)
    return rec


def _learning_rule(conn: Any, rng_seed: int) -> Any:
    """A fresh Lava learning-rule object for ``conn.learning`` (never shared: Lava mutates rules)."""
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule, Loihi3FLearningRule

    lp = conn.learning
    imp = {k: float(lp.impulses.get(k, 0.0)) for k in ("x1", "x2", "y1", "y2", "y3")}
    tau = {k: int(lp.taus.get(k, 0)) for k in ("x1", "x2", "y1", "y2", "y3")}
    kw: dict[str, Any] = dict(
        dw=lp.rules.get("dw"),
        dd=lp.rules.get("dd"),
        dt=lp.rules.get("dt"),
        x1_impulse=imp["x1"],
        x1_tau=tau["x1"],
        x2_impulse=imp["x2"],
        x2_tau=tau["x2"],
        t_epoch=int(lp.t_epoch),
        rng_seed=int(rng_seed),
    )
    if lp.third_factor:
        return Loihi3FLearningRule(**kw)
    # Loihi2FLearningRule, not the LoihiLearningRule base class: Lava's recv_traces only reads
    # s_in_bap (post spikes) for instances of Loihi2FLearningRule / Loihi3FLearningRule.
    return Loihi2FLearningRule(
        **kw,
        y1_impulse=imp["y1"],
        y1_tau=tau["y1"],
        y2_impulse=imp["y2"],
        y2_tau=tau["y2"],
        y3_impulse=imp["y3"],
        y3_tau=tau["y3"],
    )


def _make_lif(spec: dict[str, Any], name: str, trial: int) -> Any:
    from lava.proc.lif.process import LIF

    pop = spec["program"].neurons[name]
    rec = _rec(spec, trial, name, {"s": f"{name}.s", "u": f"{name}.u", "v": f"{name}.v"})
    if spec["select_tag"] == "floating_pt":
        scale = 2.0 ** (6 + spec["float_exp"][name])
        return LIF(
            shape=(pop.n,),
            u=pop.u_init.astype(np.float64) / scale,
            v=pop.v_init.astype(np.float64) / scale,
            du=(pop.du + 1) / 4096.0,
            dv=pop.dv / 4096.0,
            bias_mant=pop.bias_mant.astype(np.float64) * np.exp2(pop.bias_exp.astype(np.float64)) / scale,
            bias_exp=0.0,
            vth=pop.vth * 64.0 / scale,
            name=name,
            nh_rec=rec,
        )
    # Python ints for the scalar Vars: Var.get() hangs on other scalar types (pitfall §9 #5)
    return LIF(
        shape=(pop.n,),
        u=pop.u_init.astype(np.int32),
        v=pop.v_init.astype(np.int32),
        du=int(pop.du),
        dv=int(pop.dv),
        bias_mant=pop.bias_mant.astype(np.int32),
        bias_exp=pop.bias_exp.astype(np.int32),
        vth=int(pop.vth),
        name=name,
        nh_rec=rec,
    )


def _make_connection(spec: dict[str, Any], name: str, trial: int) -> Any:
    from lava.proc.dense.process import DelayDense, Dense, LearningDense
    from lava.utils.weightutils import SignMode

    conn = spec["program"].connections[name]
    common: dict[str, Any] = dict(
        weight_exp=int(conn.weight_exp),
        num_weight_bits=int(conn.num_weight_bits),
        sign_mode=SignMode[conn.sign_mode.upper()],
        num_message_bits=int(conn.num_message_bits),
        name=name,
    )
    if spec["select_tag"] == "floating_pt":
        shift = int(conn.weight_exp) - spec["float_exp"][conn.target]
        weights = conn.weights.astype(np.float64) * 2.0**shift
    else:
        weights = conn.weights.astype(np.int32)
    if conn.learning is not None:
        keys = {"w": f"{name}.w", "t": f"{name}.t", "d": f"{name}.d"}
        keys.update({k: f"{name}.{k}" for k in ("x1", "x2", "y1", "y2", "y3")})
        rec = _rec(spec, trial, name, keys)
        rec["rows"] = spec.get("rows")
        rule = _learning_rule(conn, spec["learning_seeds"][name][trial])
        return LearningDense(weights=weights, learning_rule=rule, nh_rec=rec, **common)
    rec = _rec(spec, trial, name, {"w": f"{name}.w"})
    if conn.delays is not None:
        return DelayDense(weights=weights, delays=conn.delays.astype(int), nh_rec=rec, **common)
    return Dense(weights=weights, nh_rec=rec, **common)


def build_component(
    spec: dict[str, Any],
    comp: dict[str, list[str]],
    trial: int,
    make_input: Callable[[dict[str, Any], str, int], Any] | None = None,
) -> dict[str, Any]:
    """Create the Lava processes of one component for one trial and connect them.

    Inputs become ``RingBuffer`` processes holding ``spec["inputs"]``, unless ``make_input(spec, name,
    trial)`` is given: then it creates each input's process (anything with an ``s_out`` port of shape
    ``(n,)``; the persistent session passes its chunk source).
    """
    from lava.proc.io.source import RingBuffer

    program = spec["program"]
    floating = spec["select_tag"] == "floating_pt"
    procs: dict[str, Any] = {}
    for name in comp["inputs"]:
        with _building("input", name):
            if make_input is not None:
                procs[name] = make_input(spec, name, trial)
                continue
            data = np.ascontiguousarray(spec["inputs"][name][trial].T)  # (n, steps): column k-1 sent at step k
            procs[name] = RingBuffer(data=data.astype(np.float64 if floating else np.int32))
    for name in comp["neurons"]:
        with _building("population", name):
            procs[name] = _make_lif(spec, name, trial)
    for name in comp["connections"]:
        conn = program.connections[name]
        with _building("connection", name):
            proc = procs[name] = _make_connection(spec, name, trial)
            procs[conn.source].s_out.connect(proc.s_in)
            proc.a_out.connect(procs[conn.target].a_in)
            if conn.learning is not None:
                # post spikes straight from the LIF (LearningLIF.s_out_bap is never sent: deadlock)
                procs[conn.target].s_out.connect(proc.s_in_bap)
                for trace, src in conn.learning.third_factor.items():
                    procs[src].s_out.connect(getattr(proc, f"s_in_{trace}"))
    return procs


def collect_model_errors(proc: Any, workdir: Path) -> list[str]:
    """Tracebacks of the Lava process models that raised.

    Our recording models write theirs (with node name and time step) into ``workdir/errors``; for
    other models (e.g. the RingBuffer) fall back to Lava's ``SystemProcess.exception`` records.
    """
    err_dir = workdir / "errors"
    if err_dir.is_dir():
        texts = [f.read_text(errors="replace") for f in sorted(err_dir.iterdir())]
        if texts:
            return texts
    texts = []
    runtime = getattr(proc, "runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None) if runtime is not None else None
    for actor in getattr(infra, "actors", None) or []:
        try:
            exc = actor.exception
        except Exception:  # the pipe may already be closed
            exc = None
        if exc:
            texts.append(str(exc[1]))
    return texts


def _read_back(procs: dict[str, Any], spec: dict[str, Any], comp: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Final values through Lava's own ``Var.get()`` (slow: ~50 µs per element)."""
    program = spec["program"]
    out: dict[str, np.ndarray] = {}
    for name in comp["neurons"]:
        out[f"{name}.u"] = np.asarray(procs[name].u.get())
        out[f"{name}.v"] = np.asarray(procs[name].v.get())
    for name in comp["connections"]:
        proc = procs[name]
        out[f"{name}.w"] = np.asarray(proc.weights.get())
        if program.connections[name].learning is not None:
            out[f"{name}.t"] = np.asarray(proc.tag_1.get())
            out[f"{name}.d"] = np.asarray(proc.tag_2.get())
            for k in ("x1", "x2", "y1", "y2", "y3"):
                out[f"{name}.{k}"] = np.asarray(getattr(proc, k).get())
    return out


def run(spec: dict[str, Any]) -> None:
    """Run every trial and component described by ``spec`` (see module doc)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .recording import recording_model_map

    workdir = Path(spec["workdir"])
    steps = int(spec["steps"])
    timings: list[dict[str, float]] = []
    readback: dict[str, list[np.ndarray]] = {}
    comps = components(spec["program"])
    for trial in range(int(spec["batch"])):
        for ci, comp in enumerate(comps):
            t0 = time.perf_counter()
            procs = build_component(spec, comp, trial)
            root = procs[comp["neurons"][0]]
            cfg = Loihi2SimCfg(
                select_tag=spec["select_tag"], exception_proc_model_map=recording_model_map(spec["select_tag"])
            )
            t1 = time.perf_counter()
            try:
                root.create_runtime(run_cfg=cfg)
                t2 = time.perf_counter()
                root.run(condition=RunSteps(num_steps=steps))
            except Exception as err:
                model_tbs = collect_model_errors(root, workdir)
                if model_tbs:
                    raise ModelError(str(err), model_tbs) from err
                raise
            t3 = time.perf_counter()
            if spec["read_back"]:
                for key, value in _read_back(procs, spec, comp).items():
                    readback.setdefault(key, []).append(value)
            t4 = time.perf_counter()
            root.stop()
            t5 = time.perf_counter()
            timings.append(
                {
                    "trial": trial,
                    "component": ci,
                    "build_s": t1 - t0,
                    "compile_init_s": t2 - t1,
                    "run_s": t3 - t2,
                    "read_back_s": t4 - t3,
                    "stop_s": t5 - t4,
                }
            )
    (workdir / TIMINGS_FILE).write_text(json.dumps(timings))
    if spec["read_back"]:
        with open(workdir / READBACK_FILE, "wb") as f:
            pickle.dump({k: np.stack(v) for k, v in readback.items()}, f)


def write_error(workdir: Path, err: BaseException) -> None:
    """Write ``workdir/error.json`` (read by ``lava_backend._raise_worker_failure``) for ``err``.

    Call it from the ``except`` clause that caught ``err`` (the traceback is ``format_exc()``).
    """
    info = {
        "type": type(err).__name__,
        "message": str(err),
        "traceback": traceback.format_exc(),
        "model_tracebacks": getattr(err, "model_tracebacks", []),
    }
    tmp = workdir / (ERROR_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, workdir / ERROR_FILE)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ...lava_worker <workdir>``."""
    argv = sys.argv[1:] if argv is None else argv
    workdir = Path(argv[0])
    with open(workdir / SPEC_FILE, "rb") as f:
        spec = pickle.load(f)
    install_child_guards(workdir, int(spec["parent_pid"]))
    try:
        run(spec)
    except BaseException as err:  # noqa: B036 - report everything, then kill the group
        write_error(workdir, err)
        # A failed Lava runtime cannot be stopped reliably (workers may be blocked on channels):
        # unlink its shared memory and SIGKILL the whole process group, ourselves included.
        hard_exit_group(workdir)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
