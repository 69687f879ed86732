"""The one list of backends a circuit can run on, and what each of them is.

==============  ==============  =====================================================================
name            kind            what runs
==============  ==============  =====================================================================
``reference``   float64         :func:`neuro_hw.simulate` on the Circuit (no compilation)
``emulator``    fixed point     the compiled Program on the bit-exact numba emulator (:mod:`neuro_hw.emulator`)
``lava``        fixed point     the compiled Program on Lava 0.10 ``Loihi2SimCfg(select_tag="fixed_pt")``
``lava-float``  float32/64      the same Lava processes with ``select_tag="floating_pt"``
``lava-hw``     (not built)     a Loihi 2 board through ``Loihi2HwCfg``: **not implemented** -- neuro-hw
                                records state with CPU process models, which cannot run on NeuroCores.
                                The name is reserved; running it raises a clear error, and tests marked
                                ``hardware`` are skipped with that reason.
==============  ==============  =====================================================================

``lava`` and ``lava-float`` need the optional dependency ``lava-nc`` (``pip install 'neuro-hw[lava]'``);
:func:`backend_unavailable` says why a backend cannot run here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """A place to run a circuit: ``fixed_point`` backends run a compiled Program."""

    name: str
    fixed_point: bool
    description: str


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("reference", False, "float64 reference simulator"),
        Backend("emulator", True, "bit-exact numba emulator of Lava fixed_pt"),
        Backend("lava", True, "Lava 0.10 Loihi2SimCfg fixed_pt"),
        Backend("lava-float", True, "Lava 0.10 Loihi2SimCfg floating_pt"),
        Backend("lava-hw", True, "Loihi 2 board (not implemented)"),
    )
}
#: Backends that run a compiled Program (``neuro_hw.run(program, ..., backend=...)``).
PROGRAM_BACKENDS: tuple[str, ...] = tuple(name for name, b in BACKENDS.items() if b.fixed_point)

HARDWARE_MISSING = (
    "neuro-hw has no Loihi 2 hardware backend: its Lava lowering records state with CPU process models, "
    "which cannot run on NeuroCores (a hardware path needs NcProcessModels, on-chip probes and Intel's "
    "lava-loihi runtime)"
)


def lava_missing() -> str | None:
    """Why Lava cannot be used here, or None when ``lava-nc`` is importable."""
    if importlib.util.find_spec("lava") is None:
        return "Lava is not installed: pip install 'neuro-hw[lava]' (lava-nc 0.10.0 needs Python 3.10 and numpy<2)"
    return None


def backend_unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run in this installation, or None when it can."""
    if name == "lava-hw":
        return HARDWARE_MISSING
    if name in ("lava", "lava-float"):
        return lava_missing()
    return None
