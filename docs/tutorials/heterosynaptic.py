"""Tutorial: a heterosynaptic circuit (seed P2) as a gradient machine, from float to Loihi 2 fixed point.

    python docs/tutorials/heterosynaptic.py [--samples N] [--out DIR]

The model is written out in docs/heterosynaptic.md: a forward weight W's update is driven by another pathway's
activity (the feedback V delivers it to the neuron), and the paper's two conditions -- heterosynaptic stability
(HS: V settles) and dynamical consistency (DC: the update's sign agrees with the gradient's) -- make it follow the
gradient.  Step by step:

1. build the minimal motif (64 inputs, 8 hidden, 10 outputs; W forward, V feedback, offset-coded for the chip)
   and save it as a NIR file with the plasticity extension;
2. train N digits in the float64 reference simulator and check it against the numpy ground truth;
3. compile it for Loihi 2 and read the rules as the learning engine's microcode;
4. train the same N digits on the bit-exact emulator, and at 5-bit weights (a target variant);
5. the monitors on each: gradient alignment (cosine between the circuit's update and the true gradient, which
   only the monitor computes), the fraction of neurons with a positive consistency score (DC), and test accuracy.

The tests run it (tests/docs/test_tutorials.py); everything printed is computed here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import neuro_hw
from neuro_hw.circuits import heterosynaptic as hc
from neuro_hw.circuits import heterosynaptic_numpy as hn
from neuro_hw.circuits.digits import epoch_order, load_digits_split, one_hot
from neuro_hw.circuits.heterosynaptic_run import HW_PARAMS


def _monitors(topo: hn.Topology, state: hn.State, x: np.ndarray, t: np.ndarray, test: tuple) -> dict[str, float]:
    pr = hn.probe(topo, HW_PARAMS, state, x, t)
    return {"alignment": pr.alignment_all, "dc_positive": pr.dc_positive,
            "test_accuracy": hn.accuracy(topo, HW_PARAMS, state, *test)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1347, help="training digits (default 1347: one epoch)")
    parser.add_argument("--out", default="out/tutorials", help="folder for the circuit file (default out/tutorials)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed, n = 0, args.samples

    # 1. the motif in hardware form (the signed feedback activity is offset-coded: Loihi 2's pre traces are unsigned)
    topo = hn.motif(64, 8, 10)
    state = hn.init_state(topo, HW_PARAMS, seed)
    spec = hc.CircuitSpec(topo, HW_PARAMS)
    circuit, schedule = hc.heterosynaptic_circuit(spec, state)
    path = out / "heterosynaptic.nir"
    neuro_hw.save(circuit, path)
    print(f"1. motif 64-8-10: {len(circuit.nodes)} NIR nodes, {len(circuit.plasticity)} plastic synapses, one digit "
          f"every {schedule.period} steps -> {path}")  # fmt: skip

    # 2. float: the reference simulator against the numpy ground truth.  The circuit clips its feedback signals at
    #    their declared ranges (SignalRanges, which set the chip's fixed-point scales); numpy does not.  With ranges
    #    wide enough never to clip, the two are the same computation; at the chip's ranges the clipping shows.
    split = load_digits_split()
    x, t = split.x_train, one_hot(split.y_train)
    order = epoch_order(len(x), 1, seed)[:n]
    stim = schedule.present(x[order], t[order])
    steps = schedule.steps(n)
    truth = state.copy()
    hn.train(topo, HW_PARAMS, truth, x, t, order)
    wide, _ = hc.heterosynaptic_circuit(
        hc.CircuitSpec(topo, HW_PARAMS, ranges=hc.SignalRanges(delta=(4.0, 4.0))), state
    )
    diffs = {}
    for name, c in (("wide ranges", wide), ("chip ranges", neuro_hw.load(path))):
        ref = neuro_hw.simulate(c, stim, steps, hc.DT, weights_every=steps)
        final = hc.state_from_weights(topo, hc.recorded_weights(ref))
        diffs[name] = max(float(np.max(np.abs(final.W[k] - truth.W[k]))) for k in topo.forward)
    final_ref = final  # the circuit as compiled, in float
    print(f"2. float reference vs numpy after {n} digits, largest |W difference|: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + f" (clipping at {spec.ranges.delta})")  # fmt: skip

    # 3. compiled for Loihi 2
    program = neuro_hw.compile(circuit, target="loihi2", dt=hc.DT, **hc.compile_options(spec))
    print(f"3. compiled: {len(program.neurons)} populations, {len(program.connections)} connections; rules:")
    for rule in program.report.rules:
        print(f"   {rule.synapse}.{rule.target}: {rule.microcode}")

    # 4.-5. the emulator at Loihi 2's formats and at 5-bit weights; the monitors on the final weights
    probe_x, probe_t = x[:300], t[:300]
    test = (split.x_test, split.y_test)
    results = {"start": _monitors(topo, state, probe_x, probe_t, test),
               "float": _monitors(topo, final_ref, probe_x, probe_t, test)}  # fmt: skip
    base = neuro_hw.load_target("loihi2")
    for name, target in (("Loihi 2 (8-bit)", base), ("5-bit weights", base.variant(**{"weights.bits": 5}))):
        prog = neuro_hw.compile(circuit, target=target, dt=hc.DT, **hc.compile_options(spec))
        emu = neuro_hw.run(prog, stim, steps, backend="emulator", seed=seed, weights_every=steps)
        results[name] = _monitors(topo, hc.state_from_weights(topo, hc.recorded_weights(emu)), probe_x, probe_t, test)
    print(f"4.-5. after {n} digits: gradient alignment, fraction of neurons with phi > 0 (DC), test accuracy")
    for name, m in results.items():
        print(f"   {name:16s} {m['alignment']:+.2f}   {m['dc_positive']:.2f}   {100 * m['test_accuracy']:.1f} %")
    return {**results, "float_vs_numpy": diffs}


if __name__ == "__main__":
    main()
