"""Command line: ``neuro-hw demo | info | simulate | compile | run | check | sweep`` and the seed circuits
(``self-assembly``, ``heterosynaptic``, ``meta-plasticity``).

Run ``neuro-hw <command> --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

from neuro_hw.demo import SECTIONS as DEMO_SECTIONS
from neuro_hw.errors import InputError, NeuroHWError


def _cmd_demo(args: argparse.Namespace) -> int:
    from neuro_hw.demo import run_demo

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be positive, got {args.workers}", field="--workers")
    result = run_demo(args.out, full=args.full, only=args.only, serial=args.serial, workers=args.workers,
                      progress=not args.no_progress)  # fmt: skip
    failed = [s.key for s in result.sections if s.error]
    print(f"\nreport: {result.report} ({result.seconds:.0f} s, {result.mode})")
    if failed:
        print(f"section(s) failed: {failed} (their errors are in the report)", file=sys.stderr)
        return 1
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import neuro_hw
    from neuro_hw.compiler.graph import unsupported_nodes
    from neuro_hw.compiler.target import load_target

    circuit = neuro_hw.load(args.circuit)
    print(circuit.describe())
    if args.target == "none":
        return 0
    target = load_target(args.target)
    print(f"\non target {target.name} (dt={args.dt:g}):")
    for name, reason in unsupported_nodes(circuit, target.name).items():
        print(f"  UNSUPPORTED {name}: {reason}")
    try:
        program = neuro_hw.compile(circuit, target=target, dt=args.dt)
    except NeuroHWError as err:  # the circuit is valid NIR; it just does not map onto this target
        print(f"  does not compile: {err}")
        return 0
    r = program.report.resources
    print(f"  compiles: {len(program.neurons)} populations, {len(program.connections)} connections, "
          f"{r.cores_used}/{r.cores_budget} cores, {r.neurons} neurons, {r.synapses} synapses; "
          f"{len(program.report.notes)} approximation notes (neuro-hw compile shows the report)")  # fmt: skip
    return 0


def _parse_input(spec: str) -> tuple[str, np.ndarray]:
    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise InputError(f"--input expects NAME=FILE.npy, got {spec!r}", field="--input")
    from neuro_hw.safe_io import check_readable_file

    try:
        check_readable_file(file, "stimulus file")  # a FIFO would block np.load forever
    except NeuroHWError as err:
        raise InputError(err.reason, file=file, node=name, field="--input") from None
    try:
        return name, np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"cannot read stimulus ({err})", file=file, node=name, field="--input") from None


def _cmd_simulate(args: argparse.Namespace) -> int:
    import neuro_hw
    from neuro_hw.safe_io import check_output_path

    if args.out:
        check_output_path(args.out, "result file", make_parents=True)  # before the run, not after it
    circuit = neuro_hw.load(args.circuit)
    inputs = dict(_parse_input(s) for s in args.input)
    result = neuro_hw.simulate(
        circuit,
        inputs,
        steps=args.steps,
        dt=args.dt,
        seed=args.seed,
        record=args.record,
        method=args.method,
        synaptic_delay=args.synaptic_delay,
        batch=args.batch,
    )
    print(result.summary())
    if args.out:
        print(f"result written to {result.save(args.out)}")
    return 0


def _parse_range(spec: str) -> tuple[str, float]:
    name, sep, value = spec.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise InputError(f"--input-range expects NAME=MAX, got {spec!r}", field="--input-range") from None


def _cmd_compile(args: argparse.Namespace) -> int:
    import json
    import os
    import tempfile

    import neuro_hw
    from neuro_hw.safe_io import check_output_path

    if args.report:
        check_output_path(args.report, "report")  # before compiling; the temporary file goes next to it
    circuit = neuro_hw.load(args.circuit)
    program = neuro_hw.compile(
        circuit,
        target=args.target,
        dt=args.dt,
        input_ranges=dict(_parse_range(s) for s in args.input_range),
        trace_impulse=args.trace_impulse,
    )
    print(program.report.format_table())
    if args.report:
        path = Path(args.report)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(program.report.to_dict(), f, indent=2)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print(f"\nreport written to {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import neuro_hw

    if args.out:
        from neuro_hw.safe_io import check_output_path

        check_output_path(args.out, "--out")  # before the run, not after it
    if args.weights_every is not None and args.weights_every < 1:
        raise InputError(f"--weights-every must be a positive number of steps, got {args.weights_every}",
                         field="--weights-every")  # fmt: skip
    _, inputs, program = _compiled_with_inputs(args)
    notes = program.report.notes
    print(f"compiled for {program.report.target} (dt={args.dt:g}): {len(program.neurons)} populations, "
          f"{len(program.connections)} connections, {len(notes)} approximation notes"
          f"{' (neuro-hw compile shows them)' if notes else ''}")  # fmt: skip
    result = neuro_hw.run(
        program, inputs, args.steps, backend=args.backend, seed=args.seed, weights_every=args.weights_every or 1
    )
    print(result.summary())
    if args.out:
        print(f"result written to {result.save(args.out)}")
    return 0


def _compiled_with_inputs(args: argparse.Namespace) -> tuple:
    """``(circuit, inputs, program)`` of ``run`` and ``check``: the options checked, the circuit loaded, the inputs
    (``--input`` files, else Poisson trains at ``--rate``) and the circuit compiled for ``--target``."""
    import neuro_hw
    from neuro_hw.limits import check_seed, check_steps

    check_steps(args.steps, "--steps")
    check_seed(args.seed, "--seed")
    if not 0.0 <= args.rate <= 1.0:
        raise InputError(f"--rate is a spike probability per step in 0..1, got {args.rate}", field="--rate")
    circuit = neuro_hw.load(args.circuit)
    inputs = dict(_parse_input(s) for s in args.input) or _default_stimuli(circuit, args.steps, args.rate, args.seed)
    program = neuro_hw.compile(
        circuit,
        target=args.target,
        dt=args.dt,
        input_ranges=dict(_parse_range(s) for s in args.input_range),
        trace_impulse=args.trace_impulse,
    )
    return circuit, inputs, program


def _default_stimuli(circuit, steps: int, rate: float, seed: int) -> dict[str, np.ndarray]:
    """Poisson spike trains (probability ``rate`` per step) for every input of the circuit."""
    rng = np.random.default_rng(seed)
    return {name: (rng.random((steps, circuit.size(name))) < rate).astype(np.float64) for name in circuit.input_names}


def _cmd_check(args: argparse.Namespace) -> int:
    import neuro_hw
    from neuro_hw.compare import compare

    circuit, inputs, program = _compiled_with_inputs(args)
    runs = {"reference": neuro_hw.simulate(circuit, inputs, args.steps, args.dt, seed=args.seed, record="all")}
    for backend in args.backends:
        runs[backend] = neuro_hw.run(program, inputs, args.steps, backend=backend, seed=args.seed)
    names = list(runs)
    header = f"{'population':<20}" + "".join(f"{n:>14}" for n in names)
    print(f"spike counts over {args.steps} steps (dt={args.dt:g}, seed={args.seed}):")
    print(header)
    print("-" * len(header))
    for pop in runs["reference"].spikes:
        print(f"{pop:<20}" + "".join(f"{int((runs[n].spikes[pop] != 0).sum()):>14}" for n in names))
    failed = False
    print()
    fixed = [n for n in names if n != "reference"]
    if "emulator" in runs and "lava" in runs:
        c = compare(runs["lava"], runs["emulator"], "exact")
        failed |= not c.passed
        print(c.report())
    for n in fixed:
        c = compare(runs["reference"], runs[n], args.profile)
        failed |= not c.passed
        print(c.report())
    return 1 if failed else 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from neuro_hw.sweep import PopulationSpec, load, run_population, run_sweep

    spec = load(args.spec)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be positive, got {args.workers}", field="--workers")
    if args.serial and (args.scheduler or args.workers):
        raise InputError("--serial runs in this process: no --scheduler or --workers", field="--serial")
    if args.scheduler and args.workers:
        raise InputError("--workers sizes the LocalCluster; an existing cluster has its own", field="--workers")
    engine = dict(serial=args.serial, scheduler=args.scheduler, workers=args.workers)
    out = Path(args.out) if args.out else Path("out") / "sweeps" / spec.name
    options = dict(resume=not args.no_resume, progress=not args.no_progress)
    try:
        if isinstance(spec, PopulationSpec):
            pop = run_population(spec, out, **engine, **options)
            print(f"population {spec.name}: {spec.generations} generations x {spec.size} individuals x "
                  f"{len(spec.sweep.seeds)} seeds ({spec.method}); {pop.ran} runs now, {pop.skipped} found done, "
                  f"{pop.seconds:.1f} s")  # fmt: skip
            print(f"best {spec.metric} = {pop.best_value:.6g} at {pop.best_params}")
            print(f"table: {pop.csv}\ngenerations: {pop.generations_csv}\nplot: {pop.plot}")
            failures = pop.failures
            report = "\n".join(f"  {r.get('error_type')}: {r.get('error_message')}" for r in failures[:20])
        else:
            res = run_sweep(spec, out, **engine, **options)
            print(f"sweep {spec.name}: {len(res.rows)} runs ({res.ran} now, {res.skipped} found done in the table) "
                  f"on {res.engine}, {res.seconds:.1f} s")  # fmt: skip
            print(f"table: {res.csv}")
            for plot in res.plots:
                print(f"plot: {plot}")
            failures, report = res.failures, res.failure_report()
    except KeyboardInterrupt:
        print(f"\nneuro-hw sweep: interrupted; the finished runs are in {out}; run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    if failures:
        print(f"{len(failures)} run(s) failed (status=error in the table; rerun to retry them):\n{report}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


#: Modules with ``register(sub)`` adding a seed circuit's subcommand.
SEED_CIRCUIT_COMMANDS = (
    "neuro_hw.circuits.self_assembly_cli",
    "neuro_hw.circuits.heterosynaptic_run",
    "neuro_hw.circuits.meta_plasticity_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuro-hw",
        description="Describe, simulate, compile and emulate learning spiking circuits (NIR + plasticity).",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="the learning circuits in float and on emulated Loihi 2 fixed point: one HTML report",
        description="For each circuit (section): compile it for Loihi 2, train it in float and on the bit-exact "
        "emulator, check the emulator against Lava bit for bit on a short window, run a small precision sweep, "
        "and write OUT/report.html (self-contained), OUT/summary.json and each section's files; prints the headline "
        "numbers beside the claims they test. Exit status 0, or 1 when a section failed (the others still run).",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--full", action="store_true",
                      help="more seeds and epochs, and a weight x trace bits sweep (tens of minutes)")  # fmt: skip
    demo.add_argument("--only", nargs="+", metavar="SECTION", default=None,
                      help=f"run only these sections ({', '.join(DEMO_SECTIONS)})")  # fmt: skip
    demo.add_argument("--serial", action="store_true", help="run the sweeps in this process (no Dask)")
    demo.add_argument("--workers", type=int, default=None, metavar="N",
                      help="Dask LocalCluster workers for the sweeps (default: one per core)")  # fmt: skip
    demo.add_argument("--no-progress", action="store_true", help="no progress output")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser(
        "info",
        help="describe a circuit file (nodes, edges, plasticity rules) and whether it compiles for a target",
        description="Describe any valid NIR file (nodes with shapes, edges, plasticity rules), then say whether it "
        "compiles for the target: node kinds the target cannot express are listed as UNSUPPORTED with the reason, "
        "and a refusal of the compiler is quoted. Exit status 0 when the file is a valid circuit, also when it does "
        "not compile; 2 when it cannot be read.",
    )
    info.add_argument("circuit", help="a .nir file (stock NIR or saved by neuro-hw)")
    info.add_argument(
        "--target", default="loihi2", help="target name or .toml file to check the circuit against, or 'none'"
    )
    info.add_argument(
        "--dt", type=float, default=1e-3, help="compile-check step length, graph time unit (default 1e-3)"
    )
    info.set_defaults(func=_cmd_info)

    sim = sub.add_parser("simulate", help="run the float64 reference simulator on a circuit file")
    sim.add_argument("circuit", help="a .nir file")
    sim.add_argument("--steps", type=int, required=True, help="number of steps")
    sim.add_argument("--dt", type=float, required=True, help="step length in the graph's time unit")
    sim.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="stimulus for input node NAME: array (T, *shape) or (B, T, *shape); repeat per input",
    )
    sim.add_argument("--record", action="append", default=None, help="extra state to record, e.g. lif.v or 'all'")
    sim.add_argument("--method", choices=("exact", "euler"), default="exact", help="integration (default: exact)")
    sim.add_argument("--synaptic-delay", type=int, choices=(0, 1), default=1, help="weight-node delay in steps")
    sim.add_argument("--batch", type=int, default=None, help="trials when the circuit has no inputs")
    sim.add_argument("--seed", type=int, default=0, help="seed recorded with the result")
    sim.add_argument("--out", help="write the Result to this HDF5 file")
    sim.set_defaults(func=_cmd_simulate)

    comp = sub.add_parser("compile", help="quantise a circuit for a target and print the approximation report")
    comp.add_argument("circuit", help="a .nir file")
    comp.add_argument("--target", default="loihi2", help="target name (loihi2) or a target .toml file")
    comp.add_argument("--dt", type=float, default=1e-3, help="step length in the graph's time unit (default 1e-3)")
    comp.add_argument(
        "--input-range",
        action="append",
        default=[],
        metavar="NAME=MAX",
        help="largest magnitude of a graded input (e.g. a third factor), to scale it onto the payload range",
    )
    comp.add_argument("--trace-impulse", type=int, default=None, help="integer impulse of spike-driven traces")
    comp.add_argument("--report", help="also write the report as JSON to this file")
    comp.set_defaults(func=_cmd_compile)

    run = sub.add_parser(
        "run",
        help="compile a circuit for a target and run the integers on the emulator or Lava",
        description="Compile CIRCUIT for the target (as 'neuro-hw compile') and run the compiled program for STEPS "
        "steps on a fixed-point backend: 'emulator' (bit-exact with Lava, fast), 'lava' (Lava Loihi2SimCfg "
        "fixed_pt) or 'lava-float' (floating_pt). Stimuli come from --input files (NAME=FILE.npy, (T, n) or "
        "(B, T, n) for B trials) or, without any, Poisson spikes at --rate for every input. Prints the compile "
        "summary and the result; --out saves the Result (integers; Result.load reads it back). Exit status 0 on "
        "success, 2 on an error in the input (the message names the file, node and field).",
    )
    run.add_argument("circuit", help="a .nir file")
    run.add_argument("--target", default="loihi2", help="target name or .toml file (default loihi2)")
    run.add_argument("--backend", default="emulator", choices=("emulator", "lava", "lava-float"),
                     help="where to run the compiled program (default emulator)")  # fmt: skip
    run.add_argument("--steps", type=int, required=True, help="number of steps")
    run.add_argument("--dt", type=float, default=1e-3, help="step length in the graph's time unit (default 1e-3)")
    run.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                     help="stimulus of input NAME, (T, n) or (B, T, n); repeat per input")  # fmt: skip
    run.add_argument("--rate", type=float, default=0.05,
                     help="spike probability per step of the generated inputs when no --input is given")  # fmt: skip
    run.add_argument("--input-range", action="append", default=[], metavar="NAME=MAX",
                     help="largest magnitude of a graded input, to scale it onto the payload range")  # fmt: skip
    run.add_argument("--trace-impulse", type=int, default=None, help="integer impulse of spike-driven traces")
    run.add_argument("--seed", type=int, default=0, help="seed of generated inputs and the learning engine (default 0)")
    run.add_argument("--weights-every", type=int, default=None, metavar="K",
                     help="record plastic weights every K steps and at the last (default: every step)")  # fmt: skip
    run.add_argument("--out", help="write the Result to this .h5 file")
    run.set_defaults(func=_cmd_run)

    chk = sub.add_parser(
        "check",
        help="run reference, emulator and Lava on the same inputs: three-way table, exact and statistical verdicts",
    )
    chk.add_argument("circuit", help="a .nir file")
    chk.add_argument("--target", default="loihi2", help="target name or .toml file (default loihi2)")
    chk.add_argument("--steps", type=int, required=True, help="number of steps")
    chk.add_argument("--dt", type=float, default=1e-3, help="step length in the graph's time unit (default 1e-3)")
    chk.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="stimulus per input")
    chk.add_argument("--rate", type=float, default=0.05, help="spike probability per step of generated inputs")
    chk.add_argument("--input-range", action="append", default=[], metavar="NAME=MAX", help="graded input range")
    chk.add_argument("--seed", type=int, default=0, help="seed of generated inputs and of the learning engine")
    chk.add_argument(
        "--backends",
        nargs="+",
        default=["emulator", "lava"],
        choices=("emulator", "lava", "lava-float"),
        help="fixed-point backends to run (default: emulator lava)",
    )
    chk.add_argument("--profile", default="fixed-vs-float", help="tolerance profile for fixed vs float")
    chk.add_argument("--trace-impulse", type=int, default=None, help="integer impulse of spike-driven traces")
    chk.set_defaults(func=_cmd_check)

    swp = sub.add_parser(
        "sweep",
        help="run a sweep or population described in a TOML file, serially or on Dask (see docs/sweeps.md)",
        description="Run every point x seed of a sweep (or every generation of a population) described in a TOML "
        "file, on a Dask LocalCluster with a worker process per core unless told otherwise. Writes OUT/NAME.csv (one "
        "row per point and seed: parameters, seed, versions, metrics, errors) and the plots. Runs already in the "
        "table are skipped (resume); a failing point is reported and the rest completes (exit status 1). "
        "Format: docs/sweeps.md, example: examples/sweeps/stdp_precision.toml.",
    )
    swp.add_argument("spec", help="the sweep's TOML file ([sweep], [params], [grid], [[points]], [[plots]] or "
                     "[population])")  # fmt: skip
    swp.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run on the existing Dask cluster with this scheduler address (tcp://host:port) instead of "
                     "starting a LocalCluster")  # fmt: skip
    swp.add_argument("--workers", type=int, default=None, metavar="N",
                     help="worker processes of the LocalCluster (default: the cores of this machine); each runs one "
                     "task at a time with one emulator thread")  # fmt: skip
    swp.add_argument("--out", metavar="DIR", default=None,
                     help="output folder for NAME.csv and the plots (default: out/sweeps/NAME)")  # fmt: skip
    swp.add_argument("--serial", action="store_true",
                     help="run every task in this process, one after another (no Dask; same results)")  # fmt: skip
    swp.add_argument(
        "--no-resume",
        action="store_true",
        help="run every point again and replace the table (default: skip the runs already ok in it)",
    )
    swp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    swp.set_defaults(func=_cmd_sweep)
    for module in SEED_CIRCUIT_COMMANDS:  # each seed circuit adds its own subcommand (register(sub))
        importlib.import_module(module).register(sub)
    for command in sub.choices.values():  # --debug also after the command name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NeuroHWError as err:
        if args.debug:
            raise
        print(f"neuro-hw {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - one paragraph, no traceback, unless --debug
        if args.debug:
            raise
        print(
            f"neuro-hw {args.command}: internal error: {type(err).__name__}: {err} (this is a bug in neuro-hw; "
            "rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
