"""Tutorial: the self-assembling learning circuit (seed P1), from float to Loihi 2 fixed point.

    python docs/tutorials/self_assembly.py [--samples N] [--out DIR]

What it shows, step by step (the model is written out in docs/self-assembly.md):

1. build the circuit with the public API -- ascending W and descending B streams, two cross-stream synapses,
   Kolen-Pollack-type local rules with weight decay -- and save it as a NIR file with the plasticity extension;
2. load it back and run the first sample in the float64 reference simulator;
3. compile it for Loihi 2 and read the compile report (what was quantised, how the rules became microcode);
4. run the same sample on the bit-exact fixed-point emulator and compare the graded signals with float;
5. train N samples in float (numpy ground truth) and on the emulator at Loihi 2's formats and at one more trace
   bit (a target variant), and watch the angle between W and B^T -- the self-assembly -- in each.

The tests run it (tests/docs/test_tutorials.py); everything printed is computed here.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

import neuro_hw
from neuro_hw.circuits.digits import epoch_order
from neuro_hw.circuits.self_assembly import compile_options, self_assembly_circuit
from neuro_hw.circuits.self_assembly_experiments import hardware_spec
from neuro_hw.circuits.self_assembly_numpy import alignment, digits_task, init_weights, run_seeds
from neuro_hw.circuits.self_assembly_run import train_circuit
from neuro_hw.runner import graded_values


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2694, help="training samples (default 2694: two epochs)")
    parser.add_argument("--out", default="out/tutorials", help="folder for the circuit file (default out/tutorials)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed = 0

    # 1. the circuit: 64-64-64-64-10, the hardware form (offset-coded descending signals), decay every 16 samples
    spec = hardware_spec()
    w, b = init_weights(spec.params, seed)
    circuit, schedule = self_assembly_circuit(spec, w, b)
    path = out / "self_assembly.nir"
    neuro_hw.save(circuit, path)
    print(f"1. circuit: {len(circuit.nodes)} NIR nodes, {len(circuit.plasticity)} plastic synapses -> {path}")

    # 2. any NIR reader loads the graph; ours restores the rules too
    loaded = neuro_hw.load(path)
    task = digits_task()
    order = epoch_order(task.n_train, 1, seed)[:1]
    stim = schedule.present(task.x_train[order], task.t_train[order])
    ref = neuro_hw.simulate(loaded, stim, schedule.period, 1e-3)
    o = ref.states["o.y"][0, schedule.h_time(spec.params.n_layers) - 1]  # the output pulse
    print(f"2. float reference, one sample ({schedule.period} steps): output o = {np.round(o, 2)}")

    # 3. compile for Loihi 2
    program = neuro_hw.compile(loaded, target="loihi2", dt=1e-3, **compile_options(spec))
    rule = next(r for r in program.report.rules if r.synapse == "w1")
    print(f"3. compiled: {len(program.neurons)} populations, {len(program.connections)} connections; rule of w1:")
    print(f"   {rule.original}\n   -> {rule.microcode}")

    # 4. the same sample on the emulator, against float
    emu = neuro_hw.run(program, stim, schedule.period, backend="emulator", seed=seed)
    errors = {}
    for node in ("h1", "h3", "o", "err"):
        errors[node] = float(np.max(np.abs(ref.states[f"{node}.y"][0] - graded_values(program, emu, node)[0])))
    print("4. emulator vs float, largest |difference| per signal: "
          + ", ".join(f"{k} {v:.3f}" for k, v in errors.items()))  # fmt: skip

    # 5. training: float ground truth vs Loihi 2 fixed point (7-bit traces) vs one more trace bit
    epochs = -(-args.samples // task.n_train)
    params = replace(spec.params, epochs=epochs)
    fl = run_seeds(params, task, [seed], "kp", record_every=args.samples)
    angle_float = fl.angle[0, list(fl.record_steps).index(args.samples)]
    angles = {"float": angle_float}
    for name, target in (("Loihi 2 (8/7 bits)", neuro_hw.load_target("loihi2")),
                         ("8 weight / 8 trace bits", neuro_hw.load_target("loihi2").variant(
                             **{"learning.trace_bits": 8}))):  # fmt: skip
        run = train_circuit(spec, task, [seed], "emulator", n_samples=args.samples, target=target, epochs=epochs,
                            record_every=args.samples)  # fmt: skip
        angles[name] = run.angle[0, -1]
    start = [alignment(w[j], b[j])[0] for j in range(1, params.n_layers)]
    print(f"5. angle W_l vs B_l^T (layers 1..3): start {', '.join(f'{a:.1f}' for a in start)} deg; after "
          f"{args.samples} samples:")  # fmt: skip
    for name, a in angles.items():
        print(f"   {name:24s} {', '.join(f'{x:.1f}' for x in a)} deg")
    return {"max_signal_error": max(errors.values()), **{f"angle_l1 {k}": float(v[0]) for k, v in angles.items()}}


if __name__ == "__main__":
    main()
