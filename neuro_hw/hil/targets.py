"""One interface to run a circuit on any backend: the float reference, the emulator, Lava or a board.

``get_runner("emulator").run(circuit, inputs, steps, dt, seed)`` compiles when needed and returns a
:class:`~neuro_hw.result.Result`.  Tests written against a runner run unchanged on every target
(see the pytest plugin, :mod:`neuro_hw.hil.pytest_plugin`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.errors import InputError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.result import Result

TARGETS = ("reference", "emulator", "lava", "lava-hw")


def hardware_available() -> tuple[bool, str]:
    """Whether a Loihi 2 board can be used here, and why not."""
    from neuro_hw.targets.loihi2.lava_backend import lava_loihi_missing

    missing = lava_loihi_missing()
    if missing:
        return False, f"Intel's lava-loihi runtime is not installed (cannot import {', '.join(missing)})"
    return False, "lava-loihi is installed but neuro-hw has no on-chip recording path yet (CPU models only)"


@dataclass
class Runner:
    """Runs circuits on one target; ``compile_options`` go to :func:`neuro_hw.compile` for fixed-point targets."""

    target: str
    chip: str = "loihi2"
    compile_options: dict = field(default_factory=dict)

    @property
    def fixed_point(self) -> bool:
        return self.target != "reference"

    def run(
        self,
        circuit: Circuit,
        inputs: Mapping[str, np.ndarray] | None,
        steps: int,
        dt: float,
        seed: int | Sequence[int] = 0,
        **options,
    ) -> Result:
        if self.target == "reference":
            from neuro_hw.reference.engine import simulate

            return simulate(circuit, inputs, steps, dt, seed=seed if isinstance(seed, int) else 0, **options)
        import neuro_hw
        from neuro_hw.runner import run

        program = neuro_hw.compile(circuit, target=self.chip, dt=dt, **self.compile_options)
        backend = {"emulator": "emulator", "lava": "lava", "lava-hw": "lava-hw"}[self.target]
        return run(program, inputs, steps, backend=backend, seed=seed)


def get_runner(target: str, **compile_options) -> Runner:
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}; choose one of {TARGETS}", field="target")
    return Runner(target, compile_options=compile_options)
