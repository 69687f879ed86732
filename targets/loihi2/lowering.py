"""Lowering of a compiled :class:`~neuro_hw.compiler.program.Program` to Lava 0.10 processes (1:1).

* ``InputProgram``  -> ``lava.proc.io.source.RingBuffer`` with data ``(n, steps)``; column k-1 is
  sent at step k (int32 payloads under ``fixed_pt``).  Spike inputs must be 0/1, graded payloads
  must lie in ``0..max_payload`` and need ``num_message_bits > 0`` on a Dense they feed (a binary
  Dense counts any nonzero payload as one spike); both are checked.  (The persistent session replaces
  the RingBuffer by its own chunk source, :mod:`.lava_session_worker`.)
* ``NeuronProgram`` (``model="lif"``) -> ``LIF`` (``PyLifModelBitAcc``): ``du``, ``dv``, ``vth`` as
  Python ints, ``bias_mant``, ``bias_exp``, ``u``, ``v`` as int32 arrays, passed unchanged (Lava
  wraps ``bias_mant`` into int16 silently; the compiler keeps it in 13 bits).
* ``GradedProgram`` -> Lava's own ``GradedReluVec`` / ``GradedVec`` (``vth=0``: every nonzero value is sent;
  Lava's default 1 would drop 1) or ``ProdNeuron`` (``vth=0, exp=shift``) where the datapath is exactly
  theirs (``GradedProgram.lava_process``), else the custom :class:`.graded_process.GradedNeuron`.  Port-a
  connections feed ``a_in`` (``a_in1`` of products and of the custom process), port-b connections
  ``a_in2``.  ``fixed_pt`` only: Lava has no floating_pt models of its graded processes.
* ``ConnectionProgram`` -> ``Dense`` / ``DelayDense`` (``delays`` set) / ``LearningDense`` / ``LearningSparse``
  (a plasticity mask: exactly the mask's synapses stored, run by our corrected model, :mod:`.recording`)
  (``learning`` set) with ``weight_exp``, ``num_weight_bits``, ``sign_mode`` (Lava ``SignMode``,
  always passed explicitly) and ``num_message_bits``.  ``source.s_out -> conn.s_in``,
  ``conn.a_out -> target.a_in``.
* A convolution ``ConnectionProgram`` (``conv`` set) -> ``lava.proc.conv`` ``Conv`` with the kernel, wired through
  virtual reshape/transpose ports, when :func:`~neuro_hw.compiler.conv_weights.lava_conv_reason` allows it
  (:mod:`.conv_process`); else the Dense / DelayDense above with its unrolled matrix.
* ``LearningProgram`` -> ``Loihi2FLearningRule`` (``Loihi3FLearningRule`` when ``third_factor``
  is set) with the rule strings, impulses, taus, ``t_epoch`` and
  ``rng_seed = learning_rng_seed(seed_b, i)`` for the i-th plastic connection (Program order);
  ``pre_activity`` -> ``LearningDense(graded_spike_cfg=GradedSpikeCfg.OVERWRITE)``.
  Post spikes: ``target.s_out -> conn.s_in_bap``; third factors: ``source.s_out -> conn.s_in_y<k>``
  (the y-trace is *overwritten* every step by what the source sends; docs/lava-semantics.md §4.3).  A
  fresh rule object is built for every connection and trial (Lava mutates rule objects).
* Each connected component of the Program (:func:`components`) is its own Lava network: components
  cannot interact, so this is exact.

Every process gets the recording plan of its trial (:func:`.recording_plan.process_recording`); the
recording subclasses of :mod:`.recording` replace Lava's models through ``exception_proc_model_map``.

floating_pt
-----------
``select_tag="floating_pt"`` runs Lava's float models on the *same* Program.  Lava's float LIF has
other units (``u = u(1-du) + a``, ``v > vth``, no ``<<6`` scaling, ``bias_exp`` ignored), so the
lowering converts the integer parameters, for a population ``p`` with unit exponent ``e_p``
(the ``weight_exp`` of the plastic connections into ``p``, 0 if none; :func:`check_lowerable`)::

    S_p = 2**(6 + e_p);  du_f = (du+1)/4096;  dv_f = dv/4096;  vth_f = vth*64/S_p
    u_f = u/S_p;  v_f = v/S_p;  bias_f = bias_mant*2**bias_exp/S_p
    weights_f = W * 2**(weight_exp - e_p)    (plastic connections: W itself)

and :func:`.recording_plan.pack_recordings` multiplies ``u``, ``v`` back by ``S_p`` and divides weights by
``2**(weight_exp - e_p)``, so float and fixed results are in the same units and can be compared
statistically.  Plastic connections into one population must share their ``weight_exp``.

Lava is imported inside the functions: this module is imported by the parent process too, which never
needs Lava itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from neuro_hw.compiler.checks import check_program
from neuro_hw.compiler.conv_weights import lava_conv_reason
from neuro_hw.compiler.program import GRADED_ACTIVATIONS, GRADED_GATES, GradedProgram, Program
from neuro_hw.errors import NeuroHWError

from .recording_plan import process_recording

SELECT_TAGS = ("fixed_pt", "floating_pt")


class UnsupportedProgramError(NeuroHWError):
    """The Program uses a feature that Lava 0.10 cannot express (or would silently ignore)."""


def masked_connections(program: Program) -> list[str]:
    """The plastic connections with a plasticity mask (lowered to LearningSparse)."""
    return [n for n, c in program.connections.items() if c.learning is not None and c.learning.mask is not None]


def check_lowerable(program: Program, select_tag: str) -> dict[str, int]:
    """Check that the Program can be lowered (:func:`~neuro_hw.compiler.checks.check_program`); return the
    float unit exponent ``e_p`` of each population (floating_pt: the ``weight_exp`` of its plastic inputs)."""
    check_program(program, UnsupportedProgramError, max_delay=None)  # Lava's DelayDense checks its own bound
    if not program.engine.is_lava:
        raise UnsupportedProgramError(
            f"the Program was compiled for engine formats {program.engine} (a target variant); Lava 0.10 implements "
            "Loihi 2's only (8-bit weights, 7-bit traces, stochastic rounding): run variants on the emulator",
            field="engine",
        )
    masked = masked_connections(program)
    if select_tag == "floating_pt" and masked:
        raise UnsupportedProgramError(
            "a plasticity mask lowers to LearningSparse, which runs here with fixed_pt only (our corrected model, "
            "targets/loihi2/recording.py); run masked circuits with fixed_pt",
            node=masked[0],
            field="select_tag",
        )
    if select_tag == "floating_pt" and program.graded:
        name = next(iter(program.graded))
        raise UnsupportedProgramError(
            "Lava 0.10 has no floating_pt models of its graded neurons; run graded circuits with fixed_pt",
            node=name,
            field="select_tag",
        )
    float_exp: dict[str, int | None] = {name: None for name in program.neurons}
    for name, conn in program.connections.items():
        if conn.learning is None or select_tag != "floating_pt":
            continue
        prev = float_exp[conn.target]
        if prev is not None and prev != int(conn.weight_exp):
            raise UnsupportedProgramError(
                f"floating_pt: plastic connections into {conn.target!r} have different weight_exp "
                f"({prev} and {conn.weight_exp}); their learning rates cannot share one float unit",
                node=name,
                field="weight_exp",
            )
        float_exp[conn.target] = int(conn.weight_exp)
    return {k: (0 if v is None else v) for k, v in float_exp.items()}


class BuildError(Exception):
    """Building the Lava process of one Program node failed (message names the node)."""


@contextlib.contextmanager
def _building(kind: str, name: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        raise BuildError(f"building the Lava process for {kind} {name!r}: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def _building(kind: str, name: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        raise BuildError(f"building the Lava process for {kind} {name!r}: {type(err).__name__}: {err}") from err


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


def learning_rule(conn: Any, rng_seed: int) -> Any:
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


def make_lif(spec: dict[str, Any], name: str, trial: int) -> Any:
    from lava.proc.lif.process import LIF

    pop = spec["program"].neurons[name]
    rec = process_recording(spec, trial, name, {"s": f"{name}.s", "u": f"{name}.u", "v": f"{name}.v"})
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


def make_graded(spec: dict[str, Any], name: str, trial: int) -> Any:
    """The Lava process of a graded population (module doc), recording its output every step."""
    from lava.proc.graded.process import GradedReluVec, GradedVec
    from lava.proc.prodneuron.process import ProdNeuron

    from .graded_process import GradedNeuron

    pop = spec["program"].neurons[name]
    rec = process_recording(spec, trial, name, {"y": f"{name}.y"})
    shape = (pop.n,)
    kind = pop.lava_process
    if kind in ("GradedReluVec", "GradedVec", "ProdNeuron"):
        # Lava's graded processes take only (shape, vth, exp): the name and the recording plan are set after
        if kind == "GradedReluVec":
            proc = GradedReluVec(shape=shape, vth=0, exp=0)
        elif kind == "GradedVec":
            proc = GradedVec(shape=shape, vth=0, exp=0)
        else:
            proc = ProdNeuron(shape=shape, vth=0, exp=int(pop.shift))
        proc.name = name
        proc.proc_params["nh_rec"] = rec
        return proc
    params = (int(pop.clip), int(pop.knee), int(pop.gate_lo), int(pop.gate_hi), int(pop.shift))
    return GradedNeuron(
        shape=shape,
        activation=GRADED_ACTIVATIONS.index(pop.activation),
        gate=GRADED_GATES.index(pop.gate),
        params=params,
        name=name,
        nh_rec=rec,
    )


def input_port(proc: Any, population: Any, port: str) -> Any:
    """The Lava InPort of ``proc`` that a connection into ``port`` ("a"/"b") of ``population`` feeds."""
    if port == "b":
        return proc.a_in2
    if isinstance(population, GradedProgram) and population.lava_process in ("ProdNeuron", "GradedNeuron"):
        return proc.a_in1
    return proc.a_in


def make_connection(spec: dict[str, Any], name: str, trial: int) -> Any:
    from lava.proc.dense.process import DelayDense, Dense, LearningDense
    from lava.utils.weightutils import SignMode

    conn = spec["program"].connections[name]
    per_trial = spec.get("trial_weights", {}).get(name)
    int_weights = conn.weights if per_trial is None else per_trial[trial]
    common: dict[str, Any] = dict(
        weight_exp=int(conn.weight_exp),
        num_weight_bits=int(conn.num_weight_bits),
        sign_mode=SignMode[conn.sign_mode.upper()],
        num_message_bits=int(conn.num_message_bits),
        name=name,
    )
    if spec["select_tag"] == "floating_pt":
        shift = int(conn.weight_exp) - spec["float_exp"][conn.target]
        weights = int_weights.astype(np.float64) * 2.0**shift
    else:
        weights = int_weights.astype(np.int32)
    if conn.learning is not None:
        keys = {"w": f"{name}.w", "t": f"{name}.t", "d": f"{name}.d"}
        keys.update({k: f"{name}.{k}" for k in ("x1", "x2", "y1", "y2", "y3")})
        rec = process_recording(spec, trial, name, keys)
        rec["rows"] = spec.get("rows")
        rule = learning_rule(conn, spec["learning_seeds"][name][trial])
        if conn.learning.pre_activity:
            from lava.magma.core.learning.constants import GradedSpikeCfg

            common["graded_spike_cfg"] = GradedSpikeCfg.OVERWRITE
        if conn.learning.mask is not None:
            return _learning_sparse(weights, conn.learning.mask, rule, rec, common)
        return LearningDense(weights=weights, learning_rule=rule, nh_rec=rec, **common)
    rec = process_recording(spec, trial, name, {"w": f"{name}.w"})
    if conn.delays is not None:
        return DelayDense(weights=weights, delays=conn.delays.astype(int), nh_rec=rec, **common)
    return Dense(weights=weights, nh_rec=rec, **common)


def _learning_sparse(weights: np.ndarray, mask: np.ndarray, rule: Any, rec: dict, common: dict) -> Any:
    """A ``LearningSparse`` storing exactly the mask's synapses (zero weights as explicit entries) and int32 tags
    stored at the same entries (Lava builds zero tags as empty matrices, on which dt/dd rules would touch nothing);
    it runs with :class:`~.recording.RecLearningSparseFixed`."""
    from lava.proc.sparse.process import LearningSparse
    from scipy.sparse import csr_matrix

    rows, cols = np.nonzero(mask)

    def stored(values: np.ndarray) -> csr_matrix:
        return csr_matrix((values.astype(np.int32), (rows, cols)), shape=mask.shape)

    zeros = np.zeros(len(rows), dtype=np.int32)
    return LearningSparse(
        weights=stored(weights[rows, cols]), tag_1=stored(zeros), tag_2=stored(zeros), learning_rule=rule,
        nh_rec=rec, **common,
    )  # fmt: skip


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
            graded = isinstance(program.neurons[name], GradedProgram)
            procs[name] = make_graded(spec, name, trial) if graded else make_lif(spec, name, trial)
    for name in comp["connections"]:
        conn = program.connections[name]
        with _building("connection", name):
            if conn.conv is not None and lava_conv_reason(program, name) is None:
                from .conv_process import connect_conv, make_conv

                proc = procs[name] = make_conv(spec, name, trial)
                port = input_port(procs[conn.target], program.neurons[conn.target], conn.port)
                connect_conv(proc, conn, procs[conn.source], port)
                continue
            proc = procs[name] = make_connection(spec, name, trial)
            procs[conn.source].s_out.connect(proc.s_in)
            proc.a_out.connect(input_port(procs[conn.target], program.neurons[conn.target], conn.port))
            if conn.learning is not None:
                # post spikes straight from the LIF or the graded population's output (LearningLIF.s_out_bap
                # is never sent: deadlock)
                procs[conn.target].s_out.connect(proc.s_in_bap)
                for trace, src in conn.learning.third_factor.items():
                    procs[src].s_out.connect(getattr(proc, f"s_in_{trace}"))
    return procs
