"""Seed circuit P3 on the fixed-point side and the meta-learning loop: the emulator against the float ground
truth (slow), the first 200 steps bit-exact against Lava 0.10 (lava), CMA-ES through ``neuro_hw.sweep`` (slow),
and the CLI's subcommand (fast).

The emulator and Lava tests need this circuit's step kernels (one per record mode): with them in the kernel cache
they take 5-20 s each (measured 4.4 s, 20.5 s on a quiet 2-core machine); a first compile costs about 7 min of
CPU per kernel (numba/LLVM on a 1,700-line function)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from neuro_hw.circuits import meta_plasticity_circuit as mc
from neuro_hw.circuits import meta_plasticity_meta as mm
from neuro_hw.circuits import meta_plasticity_numpy as mn

BOX = mc.GainBox(0.05, 0.003, 0.003)


# -- fast ---------------------------------------------------------------------------------------------------------
def test_theta_space_round_trip_and_scales():
    space = mm.space_for("paper", "0,2,9")
    theta = mn.theta_vector({0: 0.03, 2: -0.02, 9: 0.004})
    np.testing.assert_allclose(space.theta(space.x_of(theta)), theta, rtol=1e-12, atol=0)
    scales = np.array(space.scales)
    assert np.all(np.isfinite(scales)) and np.all(scales > 0)
    assert scales[0] == pytest.approx(0.01)  # F0 is its own reference
    assert space.l1(theta) == pytest.approx(sum(abs(theta[r]) / scales[r] for r in (0, 2, 9)))
    chip = mm.space_for("chip", f"0,{mn.OJA_LOCAL}")
    assert chip.theta([0.5, -1.0])[mn.OJA_LOCAL] > 0  # the on-chip Oja decay is kept >= 0


def test_cli_subcommand_parses_with_help_for_every_option():
    from neuro_hw.circuits.meta_plasticity_cli import handle, register

    parser = argparse.ArgumentParser(prog="neuro-hw")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["meta-plasticity"])
    assert args.stage == "quick" and args.func is handle
    args = parser.parse_args(["meta-plasticity", "evaluate", "--episodes", "100", "--no-emulator"])
    assert (args.stage, args.episodes, args.emulator) == ("evaluate", 100, False)
    actions = sub.choices["meta-plasticity"]._actions
    assert all(a.help for a in actions), [a.dest for a in actions if not a.help]
    with pytest.raises(SystemExit):
        parser.parse_args(["meta-plasticity", "no-such-stage"])


def test_quick_stage_reports_a_missing_meta_file(tmp_path, capsys):
    from neuro_hw.circuits.meta_plasticity_cli import handle, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["meta-plasticity", "--out", str(tmp_path), "--work", str(tmp_path / "w")])
    assert handle(args) == 1
    assert "meta_plasticity_meta.json is missing" in capsys.readouterr().out


def _feedback_fits(margin: float, bits: int, monkeypatch) -> str:
    """Compile the box's Program at ``bits`` weight bits with the feedback template at ``margin`` and quantise the
    feedback of episodes 0..59; '' if every weight fits, else the refusal."""
    import neuro_hw
    from neuro_hw.circuits import meta_plasticity_run as mr
    from neuro_hw.compiler.target import load_target
    from neuro_hw.compiler.trial_weights import trial_weights as int_trial_weights
    from neuro_hw.errors import InputError

    monkeypatch.setattr(mc, "FEEDBACK_MARGIN", margin)
    circuit, _ = mr._template_circuit(mc.CHIP_CONFIG, BOX)
    target = load_target("loihi2").variant(**{"weights.bits": bits})
    program = neuro_hw.compile(circuit, target=target, dt=mc.DT, **mc.ChipRanges().compile_options(mc.CHIP_CONFIG, BOX))
    ws, bs = mn.init_weights(mc.CHIP_CONFIG, list(range(60)))  # episode seeds 0..59
    feedback = {k: v for k, v in mc.trial_weights(mc.CHIP_CONFIG, ws, bs).items() if k.startswith("b")}
    try:
        ints = int_trial_weights(program, feedback, 60)
    except InputError as err:
        return str(err)
    lo, hi = program.engine.weight_range("mixed")
    assert all(lo <= int(v.min()) and int(v.max()) <= hi for v in ints.values())
    return ""


def test_feedback_template_fits_every_episode_at_5_weight_bits(monkeypatch):
    """Mixed-sign weights round to even integers: without the template's margin over the Xavier bound, an episode's
    B_5 entry near the bound needs the integer 32 at 5 weight bits (range -32..31) and is refused."""
    assert _feedback_fits(mc.FEEDBACK_MARGIN, 5, monkeypatch) == ""
    assert "needs the integer 32" in _feedback_fits(0.0, 5, monkeypatch)


def test_demo_reads_the_committed_rules_and_the_builder_refuses_f2():
    """The demo section's inputs: the committed meta-learned rules (F_bio's F2 with the aligning sign, the
    emulator-learned pool inside the Program's gain box) and the circuit builder's refusal of F2."""
    from neuro_hw.circuits.meta_plasticity_acceptance import clip_to_box
    from neuro_hw.demo.meta_plasticity import _f2_refusal, committed_rules

    rules = committed_rules()
    assert set(rules) == {"BP", "FA", "F_bio", "FA_chip", "F_bio_chip", "pool_fixed"}
    assert rules["F_bio"][2] < 0 and rules["F_bio"][0] > 0  # docs/meta-plasticity.md §3: theta2 < 0 aligns W to B
    boxed, clipped = clip_to_box(rules["pool_fixed"])
    assert not clipped and np.array_equal(boxed, rules["pool_fixed"])  # learned inside the box: runs as learned
    assert clip_to_box(mn.theta_vector({0: -0.01}))[0][0] == 0.0  # theta0 < 0 does not fit the Program either
    assert "presynaptic error" in _f2_refusal(rules["F_bio"])


# -- slow: the emulator against the float ground truth --------------------------------------------------------
@pytest.mark.slow
def test_emulator_learns_like_the_float_chip_form():
    """4 held-out episodes of the chip form (clipped output, hard softplus, local Oja decay, bounded weights):
    the emulator's weight changes track numpy's in every layer (correlation; measured 0.57-0.91 with another rule)
    and its query accuracy is within 20 points of numpy's."""
    from neuro_hw.circuits.meta_plasticity_run import run_emulator

    theta = mn.theta_vector({0: 0.04, mn.OJA_LOCAL: 0.0007})
    ep = mm.meta_episodes(range(4), "eval")
    emu = run_emulator(mc.CHIP_CONFIG, theta, ep, BOX, group=4)
    ws, bs = mn.init_weights(mc.CHIP_CONFIG, ep.seeds)
    truth = mn.adapt(mc.CHIP_CONFIG, theta, ep, ws=mc.initial_weights(theta, ws), bs=bs)
    assert abs(emu.query_accuracy.mean() - truth.query_accuracy.mean()) < 0.2
    for layer in range(5):
        d_emu = (emu.weights[layer] - ws[layer]).reshape(-1)
        d_np = (truth.weights[layer] - ws[layer]).reshape(-1)
        assert np.corrcoef(d_emu, d_np)[0, 1] > 0.5, layer


@pytest.mark.slow
def test_meta_learning_through_the_sweep_engine_improves_fa(tmp_path):
    """CMA-ES (2 generations x 4 candidates, 4 episodes, serial) from a poor theta0 = 0.002 finds a better one."""
    run = mm.run_meta("t_fa", "paper", "0", start={0: 0.002}, episodes=4, validation=4, generations=3, size=4,
                      sigma=1.5, restarts=1, out_dir=str(tmp_path), serial=True)  # fmt: skip
    hist = run.restarts[0]["history"]
    assert len(hist) == 3 and hist[-1]["best_so_far"] <= hist[0]["best"]
    start = mm.evaluate({"config": "paper", "terms": "0", "x0": float(mm.space_for("paper", "0").x_of({0: 0.002})[0])},
                        None, "reference", list(range(4)))  # fmt: skip
    assert run.restarts[0]["train_loss"] < np.mean([r["loss"] for r in start]) - 0.05


# -- lava ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.lava
def test_first_200_steps_bit_exact_emulator_vs_lava():
    from neuro_hw.circuits.meta_plasticity_run import lava_check

    out = lava_check(mn.theta_vector({0: 0.03, mn.HEBB: 0.001, mn.OJA_LOCAL: 0.002}), BOX, steps=200)
    assert out["exact"], out["first_divergence"]
    assert out["values"] > 1_000_000 and out["weights_changed"]
