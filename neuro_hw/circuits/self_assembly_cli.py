"""``neuro-hw self-assembly``: seed circuit P1 (the self-assembling learning circuit, a documented reconstruction of
Liao et al., arXiv 2412.20018; see docs/self-assembly.md) from the command line.

:func:`register` adds the subcommand to the ``neuro-hw`` subparsers object (``neuro_hw.cli`` wires it); its
handler returns an exit code.  The default stage, ``quick``, finishes in about a minute on one core: the float64
ground truth on digits for 2 seeds and 3 epochs, the reconstruction against zero decay, printed as a table of the
angle between W_l and B_l^T per hidden layer (nothing is written).  The stages that write
``OUT/self_assembly_<stage>.json`` (and plots) are those of ``docs/self-assembly.md``::

    neuro-hw self-assembly assembly  --out docs/results                      # float curves and ablations
    neuro-hw self-assembly learning  --out docs/results                      # circuit vs BP, FA, sign symmetry
    neuro-hw self-assembly hardware  --out docs/results --seeds 0 1          # emulator, both roundings
    neuro-hw self-assembly precision --out docs/results --weight-bits 8 12   # neuro_hw.sweep over bits
    neuro-hw self-assembly cancellation --out docs/results                  # where W - B^T changes on chip
"""

from __future__ import annotations

import argparse
from typing import Any

STAGE_CHOICES = ("quick", "assembly", "learning", "hardware", "precision", "cancellation")


def register(sub: Any) -> None:
    """Add the ``self-assembly`` subcommand to ``sub`` (an ``argparse`` subparsers object); its ``func`` default is
    :func:`handle`, which returns the exit code."""
    parser = sub.add_parser(
        "self-assembly",
        help="seed circuit P1: Kolen-Pollack-type self-assembling learning circuit (float, ablations, emulator)",
        description=__doc__.split("\n\n")[0] + " Stages: " + ", ".join(STAGE_CHOICES) + ".",
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", nargs="?", default="quick", choices=STAGE_CHOICES,
                        help="what to run (default: quick: ~1 minute, prints a table, writes nothing)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                        help="seeds (initial W and B, sample order, rounding); default: 0 1 for quick, "
                        "hardware, precision; 0 1 2 3 4 for assembly, learning; 0 (first only) for "
                        "cancellation")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training set (default: 3 for quick, else 10)")  # fmt: skip
    parser.add_argument("--record-every", type=int, default=337, metavar="N",
                        help="record the alignment every N samples (default: 337, four times an epoch)")  # fmt: skip
    parser.add_argument("--task", choices=("digits", "teacher-student"), nargs="+", default=None,
                        help="learning stage: the tasks (default: both)")  # fmt: skip
    parser.add_argument("--rounding", choices=("stochastic", "nearest"), nargs="+", default=None,
                        help="hardware stage: the learning engine's weight rounding (default: both)")  # fmt: skip
    parser.add_argument("--weight-bits", type=int, nargs="+", default=None, metavar="B",
                        help="precision stage: weight widths (default: 8 12; all widths share one emulator kernel, "
                        "compiled on the first run: about a minute)")  # fmt: skip
    parser.add_argument("--trace-bits", type=int, nargs="+", default=None, metavar="B",
                        help="precision stage: trace widths (default: 7)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="precision stage: run the sweep on a Dask LocalCluster with N workers "
                        "(default: serially in this process)")  # fmt: skip
    parser.add_argument("--out", default="out/self_assembly", metavar="DIR",
                        help="folder for self_assembly_<stage>.json and the plots (default: out/self_assembly; "
                        "docs/results reproduces the documented results)")  # fmt: skip
    parser.set_defaults(func=handle)


def _quick(args: argparse.Namespace) -> int:
    from neuro_hw.circuits.self_assembly_experiments import assembly_curves

    seeds = args.seeds or [0, 1]
    epochs = args.epochs or 3
    data = assembly_curves(seeds, epochs, args.record_every, names=("kp", "no-decay"))
    for entry in data["variants"].values():
        print(f"{entry['label']}: test accuracy {100 * entry['test_accuracy_mean']:.2f} % "
              f"+- {100 * entry['test_accuracy_se']:.2f} (seeds {seeds}, {epochs} epochs)")  # fmt: skip
        layers = len(entry["angle_mean"])
        print("  epoch  " + "  ".join(f"angle l{j + 1}" for j in range(layers)) + "   |W-B^T|/|W| (l1..)")
        for k, ep in enumerate(entry["epochs"]):
            angles = "  ".join(f"{entry['angle_mean'][j][k]:8.2f}" for j in range(layers))
            rels = " ".join(f"{entry['rel_diff_mean'][j][k]:.3f}" for j in range(layers))
            print(f"  {ep:5.2f}  {angles}   {rels}")
    return 0


def handle(args: argparse.Namespace) -> int:
    """Run the stage of ``args``; 0 on success."""
    from neuro_hw.circuits import self_assembly_experiments as ex

    if args.stage == "quick":
        return _quick(args)
    kwargs: dict[str, Any] = {}
    if args.stage in ("assembly", "learning", "hardware"):
        kwargs["seeds"] = args.seeds or ([0, 1] if args.stage == "hardware" else [0, 1, 2, 3, 4])
        kwargs["epochs"] = args.epochs or 10
    if args.stage in ("assembly", "hardware"):
        kwargs["record_every"] = args.record_every
    if args.stage == "learning" and args.task:
        kwargs["tasks"] = args.task
    if args.stage == "hardware" and args.rounding:
        kwargs["roundings"] = args.rounding
    if args.stage == "cancellation":
        kwargs["seed"] = (args.seeds or [0])[0]
    if args.stage == "precision":
        kwargs["seeds"] = args.seeds or [0, 1]
        kwargs["epochs"] = args.epochs or 10
        if args.weight_bits:
            kwargs["weight_bits"] = args.weight_bits
        if args.trace_bits:
            kwargs["trace_bits"] = args.trace_bits
        kwargs["serial"] = args.workers is None
        kwargs["workers"] = args.workers
    data = ex.run_stage(args.stage, args.out, **kwargs)
    print(f"wrote {args.out}/self_assembly_{args.stage}.json ({data['wall_seconds']} s)")
    if args.stage == "precision":
        print(data["summary"])
        return 1 if data["failures"] else 0
    return 0
