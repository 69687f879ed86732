"""Compilation for a target: quantisation, learning-engine microcode, resources, Report.

Users call :func:`neuro_hw.compile` (= :func:`compile_circuit`)::

    program = neuro_hw.compile(circuit, target="loihi2", dt=1e-3)
"""

from neuro_hw.compiler.pipeline import compile_circuit
from neuro_hw.compiler.program import ConnectionProgram, InputProgram, LearningProgram, NeuronProgram, Program
from neuro_hw.compiler.report import Report
from neuro_hw.compiler.target import Target, load_target

__all__ = [
    "ConnectionProgram",
    "InputProgram",
    "LearningProgram",
    "NeuronProgram",
    "Program",
    "Report",
    "Target",
    "compile_circuit",
    "load_target",
]
