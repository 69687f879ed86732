"""Compilation for a target: quantisation, learning-engine microcode, resources, Report.

``neuro_hw.compile`` is both this package and the function users call::

    program = neuro_hw.compile(circuit, target="loihi2", dt=1e-3)

(the package module is callable and forwards to :func:`neuro_hw.compile.compiler.compile_circuit`).
"""

import sys
import types

from neuro_hw.compile.compiler import compile_circuit
from neuro_hw.compile.program import ConnectionProgram, InputProgram, LearningProgram, NeuronProgram, Program
from neuro_hw.compile.report import Report
from neuro_hw.compile.target import Target, load_target

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


class _CallableModule(types.ModuleType):
    def __call__(self, circuit, target="loihi2", dt=1e-3, **kwargs):
        """Compile ``circuit`` for ``target`` (see :func:`compile_circuit`)."""
        return compile_circuit(circuit, target, dt, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
