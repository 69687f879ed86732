"""Vectorised, bit-exact emulator of Lava 0.10 ``Loihi2SimCfg(select_tag="fixed_pt")`` semantics.

Runs a compiled :class:`~neuro_hw.compiler.program.Program` (LIF, Dense, DelayDense, LearningDense with
2- and 3-factor rules) for a batch of independent trials in compiled numba code, without importing
Lava, and returns the same :class:`~neuro_hw.result.Result` as the Lava backend, value for value.  The
whole step loop of a circuit is one generated numba function (compiled once per circuit structure and
cached on disk); the trials of a batch are split over one thread per core.  The integer semantics are
those of ``docs/lava-semantics.md``; each module documents its formulas:

* :mod:`.lif` -- ``PyLifModelBitAcc`` (int32 wrap, 24-bit u wrap, v clip, decays toward zero);
* :mod:`.dense` -- weight preparation and the Dense / DelayDense / LearningDense spiking path;
* :mod:`.learning` -- traces, histories, RNG replay, which synapses an epoch visits;
* :mod:`.rule_kernel` -- the product arithmetic and stochastic rounding, generated as straight-line
  code per rule set;
* :mod:`.step_kernel` -- the step order of one circuit, generated as one function; :mod:`.codegen`
  -- where generated code is cached;
* :mod:`.intmath` -- int32 wrap-around and clipping;
* :mod:`.microcode` -- the rule-string parser (Lava's syntax and quirks);
* :mod:`.engine` -- state, recording, the resumable :class:`~.engine.EmulatorRun`;
* :mod:`.session` -- :class:`EmulatorSession` (closed loop); :mod:`.compare` -- :func:`first_mismatch`.

Timing against Lava: ``benchmarks/emulator_vs_lava.py`` (``make bench``).
"""

from .compare import Mismatch, first_mismatch
from .engine import run_program_emulator
from .session import EmulatorSession

__all__ = ["EmulatorSession", "Mismatch", "first_mismatch", "run_program_emulator"]
