"""Circuit IR: NIR graph + plasticity extension, rule expressions, validation and file I/O."""

from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.io import load, save
from neuro_hw.ir.plasticity import Plasticity, Trace
from neuro_hw.ir.rules import Expression, Factor, Term, as_expression, parse_rule

__all__ = [
    "Circuit",
    "Expression",
    "Factor",
    "Plasticity",
    "Term",
    "Trace",
    "as_expression",
    "load",
    "parse_rule",
    "save",
]
