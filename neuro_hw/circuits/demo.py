"""`neuro-hw demo`: STDP selects correlated inputs, in the float64 reference, several trials at once.

Builds :func:`neuro_hw.circuits.stdp.stdp_circuit`, saves it as a ``.nir`` file (which stock
``nir.read`` can open), loads it back, simulates a batch of trials with different input spike trains,
prints a table of firing rates and weight changes per input group, and writes a plot and the Result.
"""

from __future__ import annotations

import time
from pathlib import Path

import neuro_hw
from neuro_hw.circuits.stdp import DT, correlated_inputs, stdp_circuit
from neuro_hw.compare.plots import plot_learning_run


def run_demo(out_dir: Path, steps: int = 20000, trials: int = 4, seed: int = 0, n_in: int = 40) -> dict:
    """Run the demo and return its key numbers (also printed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    circuit_path = neuro_hw.save(stdp_circuit(n_in=n_in, seed=seed), out_dir / "stdp.nir")
    circuit = neuro_hw.load(circuit_path)
    print(f"circuit written to {circuit_path} (loads with stock nir.read; rules restored by neuro_hw.load)")
    print(f"  rule: {circuit.plasticity['synapses'].rules['dw']}   (t_epoch=1, w in [0, 0.25])")

    spikes_in = correlated_inputs(steps, n_in, batch=trials, seed=seed)
    start = time.perf_counter()
    result = neuro_hw.simulate(circuit, {"input": spikes_in}, steps=steps, dt=DT, seed=seed, record=["neurons.v"])
    elapsed = time.perf_counter() - start
    print(
        f"simulated {trials} trials x {steps} steps of {DT * 1e3:g} ms in {elapsed:.2f} s "
        f"({trials * steps / elapsed:,.0f} trial-steps/s, float64 reference)"
    )

    w = result.weights["synapses.w"]  # (B, K, n_out, n_in)
    half = n_in // 2
    rows = []
    header = (
        f"{'trial':>5} {'rate Hz':>8} {'w corr start':>13} {'w corr end':>11} {'w indep start':>14} {'w indep end':>12}"
    )
    print()
    print(header)
    print("-" * len(header))
    for b in range(trials):
        rate = result.spikes["neurons"][b].sum() / (steps * DT) / w.shape[2]
        row = {
            "trial": b,
            "rate_hz": float(rate),
            "w_corr_start": float(w[b, 0, :, :half].mean()),
            "w_corr_end": float(w[b, -1, :, :half].mean()),
            "w_indep_start": float(w[b, 0, :, half:].mean()),
            "w_indep_end": float(w[b, -1, :, half:].mean()),
        }
        rows.append(row)
        print(
            f"{b:>5} {row['rate_hz']:>8.1f} {row['w_corr_start']:>13.4f} {row['w_corr_end']:>11.4f} "
            f"{row['w_indep_start']:>14.4f} {row['w_indep_end']:>12.4f}"
        )
    selective = sum(r["w_corr_end"] > r["w_indep_end"] for r in rows)
    print(f"\ncorrelated inputs end with larger weights in {selective}/{trials} trials")

    plot_path = plot_learning_run(
        result,
        out_dir / "stdp_demo.png",
        input_spikes=spikes_in,
        spike_node="neurons",
        weight_key="synapses.w",
        groups={"correlated inputs": range(half), "independent inputs": range(half, n_in)},
        title="STDP (float64 reference), trial 0",
    )
    result_path = result.save(out_dir / "stdp_result.h5")
    print(f"plot written to {plot_path}")
    print(f"result written to {result_path}")
    return {"rows": rows, "selective": selective, "plot": plot_path, "result": result_path, "circuit": circuit_path}
