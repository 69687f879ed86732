"""``neuro-hw meta-plasticity``: seed circuit P3 (meta-learned plasticity rules with random feedback) from the CLI.

:func:`register` adds the subcommand to the ``neuro-hw`` subparsers object (``neuro_hw.cli`` wires it); its
handler returns an exit code.  The stages are those of :mod:`.meta_plasticity_acceptance`; the default stage,
``quick``, finishes in well under a minute on one core: the four baselines (BP, FA, eHebb, F_bio) with the
meta-learned theta of ``docs/results/meta_plasticity_meta.json`` on 20 held-out digits episodes in float64
(numpy ground truth), printed as a table (nothing written under ``docs/results``).  The fuller runs::

    neuro-hw meta-plasticity agreement                  # numpy == the IR circuit in the float reference
    neuro-hw meta-plasticity meta --budget 0.5          # CMA-ES in float through neuro_hw.sweep
    neuro-hw meta-plasticity meta-emulator              # CMA-ES directly on the fixed-point emulator
    neuro-hw meta-plasticity evaluate --episodes 100    # the results table (float and emulator)
    neuro-hw meta-plasticity lava                       # first 200 steps, emulator vs Lava 0.10
    neuro-hw meta-plasticity precision                  # weight x trace bits on the emulator
    neuro-hw meta-plasticity speed                      # 100 episodes: emulator (batched) vs reference
    neuro-hw meta-plasticity report                     # table and plots from the JSON files
"""

from __future__ import annotations

import argparse
from typing import Any

from neuro_hw.circuits import meta_plasticity_acceptance as acceptance


def register(sub: Any) -> None:
    """Add the ``meta-plasticity`` subcommand to ``sub`` (an ``argparse`` subparsers object); its ``func`` default
    is :func:`handle`, which returns the exit code."""
    parser = sub.add_parser(
        "meta-plasticity",
        help="seed circuit P3: feedback alignment with meta-learned plasticity rules (float, emulator, Lava)",
        description=__doc__.split("\n\n")[0] + " Stages: " + ", ".join(["quick", *acceptance.STAGES, "report"])
        + "; every stage but 'quick' and 'report' writes docs/results/meta_plasticity_<stage>.json "
        "(see docs/meta-plasticity.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    acceptance.arguments(parser, default_stage="quick")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the stage of ``args`` (:func:`.meta_plasticity_acceptance.run`); 0 on success."""
    return acceptance.run(args)
