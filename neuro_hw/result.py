"""`Result`: what every backend returns (reference, emulator, Lava) -- one type, one file format.

Layout (B = batch of independent trials, T = steps; index ``k`` holds the value at the **end** of
step ``k+1``, steps being numbered from 1 like Lava's ``time_step``):

* ``spikes[node]``: ``(B, T, *shape)`` output of every spiking node (bool, or int for graded).
* ``states["node.var"]``: ``(B, T, *shape)`` recorded state variables (``v``, ``u``/``i``, traces
  ``"syn.x1"`` ...).  float64 for the reference, integers for fixed-point backends.
* ``weights["syn.w"]`` (also ``.t``, ``.d``): ``(B, K, n_out, n_in)`` synaptic variables sampled at
  the steps ``weight_steps["syn.w"]`` (K,), 1-based (0 = initial value before step 1).
* provenance: ``circuit_hash``, ``backend``, ``target``, ``seed``, ``dt``, ``steps``, ``versions``.

Files are HDF5, written atomically (temporary file + rename), so an interrupted save never leaves a
half-written result behind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuro_hw.errors import CircuitFileError

RESULT_FORMAT = "neuro-hw-result"
RESULT_FORMAT_VERSION = 1


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers (looked up once per process: ~10 ms)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for pkg in ("neuro-hw", "numpy", "nir", "lava-nc"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


@dataclass
class Result:
    """Per-step spikes, states and sampled weights of one run, with provenance (see module doc)."""

    spikes: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    weight_steps: dict[str, np.ndarray]
    dt: float
    steps: int
    batch: int
    backend: str
    circuit_hash: str
    seed: int = 0
    target: str = "float64"
    versions: dict[str, str] = field(default_factory=package_versions)
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- convenience -------------------------------------------------------------------------------
    def trial(self, b: int) -> Result:
        """Trial ``b`` of the batch as a one-trial Result (arrays are views; metadata and units shared)."""
        if not -self.batch <= b < self.batch:
            raise IndexError(f"trial {b} of a batch of {self.batch}")
        b = b % self.batch
        return dataclasses.replace(
            self,
            spikes={k: v[b : b + 1] for k, v in self.spikes.items()},
            states={k: v[b : b + 1] for k, v in self.states.items()},
            weights={k: v[b : b + 1] for k, v in self.weights.items()},
            batch=1,
        )

    def spike_counts(self, node: str) -> np.ndarray:
        """Total spikes per neuron over the run, ``(B, *shape)``."""
        return (self.spikes[node] != 0).sum(axis=1)

    def final_weights(self, key: str) -> np.ndarray:
        """Last sampled value of a synaptic variable, ``(B, n_out, n_in)``; ``key`` is ``"syn"`` or ``"syn.w"``."""
        if "." not in key:
            key = f"{key}.w"
        return self.weights[key][:, -1]

    def in_float_units(self, key: str) -> np.ndarray:
        """A state (``"pop.v"``) or synaptic variable (``"conn.w"``) in the circuit's float units.

        Float results are returned as they are; fixed-point results are converted with the scales the
        compiler recorded (``metadata["float_units"]``: ``float = int / scale + offset``).
        """
        data = self.states[key] if key in self.states else self.weights[key]
        units = self.metadata.get("float_units", {}).get(key)
        if units is None:
            if data.dtype.kind == "f":
                return data
            raise KeyError(f"no float units recorded for {key!r} (run a compiled Program through neuro_hw.run)")
        scale = np.asarray(units["scale"], dtype=np.float64)
        offset = np.asarray(units["offset"], dtype=np.float64)
        if key in self.weights:  # (B, K, n_post, n_pre) with a per-row scale (n_post, 1); no offset
            return data / scale.reshape(scale.shape[0], -1)
        shape = data.shape[2:]  # (B, T, *population shape)
        return data / scale.reshape(shape) + offset.reshape(shape)

    def summary(self) -> str:
        """A short human-readable description."""
        lines = [
            f"Result: backend={self.backend} target={self.target} steps={self.steps} batch={self.batch} "
            f"dt={self.dt:g} seed={self.seed} circuit={self.circuit_hash[:12]}"
        ]
        for node, s in self.spikes.items():
            counts = (s != 0).sum(axis=(1,))
            rate = counts.mean() / (self.steps * self.dt) if self.steps else 0.0
            lines.append(f"  spikes {node:<20} total={int(counts.sum()):>8}  mean rate={rate:10.3f} /time unit")
        for key, w in self.weights.items():
            lines.append(f"  {key:<27} initial mean={w[:, 0].mean():+.5f}  final mean={w[:, -1].mean():+.5f}")
        return "\n".join(lines)

    # -- file I/O ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to an HDF5 file atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULT_FORMAT
                f.attrs["format_version"] = RESULT_FORMAT_VERSION
                meta = {
                    "dt": self.dt,
                    "steps": self.steps,
                    "batch": self.batch,
                    "backend": self.backend,
                    "circuit_hash": self.circuit_hash,
                    "seed": self.seed,
                    "target": self.target,
                    "versions": self.versions,
                    "metadata": self.metadata,
                }
                f.attrs["meta"] = json.dumps(meta)
                for group_name in ("spikes", "states", "weights", "weight_steps"):
                    group = f.create_group(group_name)
                    for key, arr in getattr(self, group_name).items():
                        group.create_dataset(key.replace("/", "|"), data=np.asarray(arr), compression="gzip")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a file written by :meth:`save`; clear errors for missing, corrupt or foreign files."""
        path = Path(path)
        if not path.exists():
            raise CircuitFileError("no such result file", file=str(path))
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != RESULT_FORMAT:
                    raise CircuitFileError(
                        f"not a neuro-hw result file (format attribute {f.attrs.get('format')!r})",
                        file=str(path),
                    )
                version = int(f.attrs["format_version"])
                if version > RESULT_FORMAT_VERSION:
                    raise CircuitFileError(
                        f"result format version {version} is newer than this neuro-hw supports "
                        f"({RESULT_FORMAT_VERSION})",
                        file=str(path),
                    )
                meta = json.loads(f.attrs["meta"])
                groups = {
                    name: {k.replace("|", "/"): f[name][k][()] for k in f[name]}
                    for name in ("spikes", "states", "weights", "weight_steps")
                }
        except CircuitFileError:
            raise
        except (OSError, KeyError, ValueError) as err:
            raise CircuitFileError(f"cannot read result file ({err})", file=str(path)) from None
        return cls(**groups, **meta)
