"""neuro-hw: describe, simulate, compile and bit-exactly emulate learning spiking circuits.

Main entry points::

    circuit = neuro_hw.load("circuit.nir")            # NIR graph + plasticity rules
    result = neuro_hw.simulate(circuit, inputs, steps=200, dt=1e-3)   # float64 reference
    program = neuro_hw.compile(circuit, target="loihi2", dt=1e-3)     # integers + Report
    fixed = neuro_hw.run(program, inputs, steps=200, backend="emulator")  # or "lava"
    neuro_hw.save(circuit, "copy.nir")

Heavy parts (simulator, compiler, backends) are imported on first use.
"""

from importlib import import_module
from typing import Any

from neuro_hw import errors
from neuro_hw.ir import Circuit, Expression, Plasticity, Trace, load, parse_rule, save
from neuro_hw.result import Result

__version__ = "0.1.0"

_LAZY = {
    "simulate": "neuro_hw.reference.engine",
    "run": "neuro_hw.runner",
    "load_target": "neuro_hw.compile.target",
}


def __getattr__(name: str) -> Any:
    if name == "compile":  # the callable package neuro_hw.compile
        return import_module("neuro_hw.compile")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuro_hw' has no attribute {name!r}")


__all__ = (
    ["Circuit", "Expression", "Plasticity", "Result", "Trace", "errors", "load", "parse_rule", "save"]
    + list(_LAZY)
    + ["compile"]
)
