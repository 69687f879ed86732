"""neuro-hw: describe, simulate, compile and bit-exactly emulate learning spiking circuits.

Main entry points::

    circuit = neuro_hw.load("circuit.nir")            # NIR graph + plasticity rules
    result = neuro_hw.simulate(circuit, inputs, steps=200, dt=1e-3)   # float64 reference
    program = neuro_hw.compile(circuit, target="loihi2", dt=1e-3)     # integers + Report
    fixed = neuro_hw.run(program, inputs, steps=200, backend="emulator")  # or "lava"
    neuro_hw.save(circuit, "copy.nir")

Heavy parts (simulator, compiler, backends) are imported on first use.  The compiler lives in the
package :mod:`neuro_hw.compiler`; ``neuro_hw.compile`` is the function that runs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from neuro_hw import errors
from neuro_hw.ir import Circuit, Expression, Plasticity, Trace, load, parse_rule, save
from neuro_hw.result import Result

if TYPE_CHECKING:
    from neuro_hw.compiler.program import Program
    from neuro_hw.compiler.target import Target

__version__ = "0.1.0"

_LAZY = {
    "simulate": "neuro_hw.reference.engine",
    "run": "neuro_hw.runner",
    "run_circuit": "neuro_hw.runner",
    "load_target": "neuro_hw.compiler.target",
}


def compile(circuit: Circuit, target: str | Target = "loihi2", dt: float = 1e-3, **options: Any) -> Program:  # noqa: A001
    """Compile ``circuit`` for ``target`` with step ``dt``: see :func:`neuro_hw.compiler.compile_circuit`."""
    from neuro_hw.compiler import compile_circuit

    return compile_circuit(circuit, target, dt, **options)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuro_hw' has no attribute {name!r}")


__all__ = [
    "Circuit",
    "Expression",
    "Plasticity",
    "Result",
    "Trace",
    "compile",
    "errors",
    "load",
    "parse_rule",
    "save",
    *_LAZY,
]
