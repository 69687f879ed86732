"""Tutorial: meta-learned plasticity rules with random feedback (seed P3), from float to Loihi 2 fixed point.

    python docs/tutorials/meta_plasticity.py [--episodes N] [--out DIR]

The model is written out in docs/meta-plasticity.md: a 64-170-130-100-70-5 network learns a 5-way digits task
online (50 images per class, seen once) with a plasticity rule ``dW = sum_r theta_r F^r`` from a pool of local
terms, and errors sent back through fixed random matrices B (feedback alignment).  Step by step:

1. one held-out episode in numpy, the paper's form (softmax output, exact softplus derivative), for four rules:
   backprop (symmetric feedback), FA (F0 only), eHebb (F0, F2) and F_bio (F0, F2, F9);
2. the chip form -- clipped output, a hard softplus derivative, the local Oja term, bounded weights -- as an IR
   circuit, checked against its numpy twin in the float64 reference on the first images;
3. compiled for Loihi 2 (what the compile report says), and run on the bit-exact emulator for N held-out episodes
   with a rule the chip can express, beside the same rule in numpy.

The tests run it (tests/docs/test_tutorials.py); everything printed is computed here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import neuro_hw
from neuro_hw.circuits import meta_plasticity_circuit as mc
from neuro_hw.circuits.meta_plasticity_meta import meta_episodes
from neuro_hw.circuits.meta_plasticity_numpy import BASELINES, OJA_LOCAL, NetworkConfig, adapt, init_weights
from neuro_hw.circuits.meta_plasticity_numpy import theta_vector as theta_of
from neuro_hw.circuits.meta_plasticity_run import run_emulator

#: The baselines' coefficients as meta-learned in float (CMA-ES, docs/meta-plasticity.md §3-4), read from the run
#: committed with the repository.
META = Path(__file__).resolve().parents[1] / "results" / "meta_plasticity_meta.json"


def baseline_rules() -> dict[str, np.ndarray]:
    arms = json.loads(META.read_text())["arms"]
    return {name: theta_of(arms[name]["theta"]) for name in ("BP", "FA", "eHebb", "F_bio")}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4, help="held-out episodes on the emulator (default 4)")
    parser.add_argument("--out", default="out/tutorials", help="folder for the circuit file (default out/tutorials)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    numbers: dict[str, float] = {}

    # 1. the paper's form in numpy, one held-out episode per rule
    episode = meta_episodes([0], "eval")
    print("1. numpy, paper form, held-out episode 0 (5 classes x 50 images, then 50 queries):")
    for name, theta in baseline_rules().items():
        feedback = BASELINES[name][1]
        terms = ", ".join(f"F{r} {v:+.3g}" for r, v in enumerate(theta) if v)
        run = adapt(NetworkConfig(feedback=feedback), theta, episode)
        numbers[f"numpy {name}"] = float(run.query_accuracy[0])
        # the angle between the error the rule's feedback B carries and backprop's (BP carries backprop's own)
        alpha = "0 (it is backprop)" if feedback == "bp" else ", ".join(f"{a:.0f}" for a in run.query_alpha[0])
        print(f"   {name:6s} ({feedback} feedback; {terms}): query accuracy {100 * run.query_accuracy[0]:5.1f} %, "
              f"angle to backprop's error per layer {alpha} deg")  # fmt: skip

    # 2. the chip form as an IR circuit, against its numpy twin on the first 20 images
    theta = theta_of({0: 0.04, OJA_LOCAL: 0.0007})  # FA plus the local Oja decay: a rule the chip can express
    circuit, schedule, weights = mc.episode_circuit(mc.CHIP_CONFIG, theta, episode)
    neuro_hw.save(circuit, out / "meta_plasticity.nir")
    n = 20
    ref = neuro_hw.simulate(circuit, mc.stimuli(schedule, episode, 5, n), mc.episode_steps(schedule, n), mc.DT,
                            weights=weights, weights_every=schedule.period, activations="hardware")  # fmt: skip
    ws, bs = init_weights(mc.CHIP_CONFIG, episode.seeds)
    twin = adapt(mc.CHIP_CONFIG, theta, episode, ws=mc.initial_weights(theta, ws), bs=bs, record_first=n, n_samples=n)
    rows = slice(mc.sample_record_index(0), mc.sample_record_index(n - 1) + 1)
    diff = max(float(np.abs(ref.weights[f"w{k + 1}.w"][:, rows] - twin.weights_first[k]).max()) for k in range(5))
    numbers["reference vs numpy"] = diff
    print(f"2. chip form as a circuit ({len(circuit.nodes)} NIR nodes, {len(circuit.plasticity)} plastic layers): "
          f"float reference vs numpy after each of {n} images, largest |dW| {diff:.1e}")  # fmt: skip

    # 3. compiled for Loihi 2 and run on the emulator, the same rule in numpy beside it
    box = mc.GainBox(0.05, 0.003, 0.003)
    program, _ = mc_program(box)
    report = program.report
    print(f"3. compiled: {len(program.neurons)} populations, {len(program.connections)} connections, "
          f"{report.resources.cores_used if report.resources else '?'} cores; rule of w2: "
          f"{next(r.microcode for r in report.rules if r.synapse == 'w2')}")  # fmt: skip
    held_out = meta_episodes(range(args.episodes), "eval")
    emu = run_emulator(mc.CHIP_CONFIG, theta, held_out, box)
    ws, bs = init_weights(mc.CHIP_CONFIG, held_out.seeds)
    float_run = adapt(mc.CHIP_CONFIG, theta, held_out, ws=mc.initial_weights(theta, ws), bs=bs)
    numbers["emulator"] = float(emu.query_accuracy.mean())
    numbers["numpy chip form"] = float(float_run.query_accuracy.mean())
    print(f"   {args.episodes} held-out episodes, query accuracy: numpy (float, chip form) "
          f"{100 * float_run.query_accuracy.mean():.1f} %, emulator (Loihi 2 fixed point) "
          f"{100 * emu.query_accuracy.mean():.1f} % ({emu.seconds:.1f} s, {emu.steps} steps per episode)")  # fmt: skip
    return numbers


def mc_program(box: mc.GainBox):  # noqa: ANN201 - (Program, schedule)
    """The circuit compiled once for every rule inside ``box`` (the rule gains are per-trial weights)."""
    from neuro_hw.circuits.meta_plasticity_run import compiled_program

    return compiled_program(mc.CHIP_CONFIG, box)


if __name__ == "__main__":
    main()
