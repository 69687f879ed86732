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
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuro_hw import limits
from neuro_hw.errors import CircuitFileError
from neuro_hw.limits import element_count
from neuro_hw.safe_io import check_json_keys, check_output_path, guarded_read, trust_written_file

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

    # -- checks ------------------------------------------------------------------------------------
    def validate(self, file: str | None = None) -> None:
        """Raise :class:`~neuro_hw.errors.CircuitFileError` (naming ``file`` and the field) unless every field has
        the type and every array the shape and dtype of the module doc: ``(B, T, ...)`` spikes and states,
        ``(B, K, n_out, n_in)`` weights with ``K`` 1-based sample steps in ``0..T``."""

        def bad(reason: str, field: str) -> CircuitFileError:
            return CircuitFileError(reason, file=file, field=field)

        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not math.isfinite(self.dt):
            raise bad(f"dt must be a positive finite number, got {self.dt!r}", "dt")
        if self.dt <= 0:
            raise bad(f"dt must be a positive finite number, got {self.dt!r}", "dt")
        for name, low, high in (("steps", 1, limits.MAX_STEPS), ("batch", 1, limits.MAX_BATCH)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise bad(f"{name} must be an integer in {low}..{high:,}, got {value!r}", name)
        seeds = self.seed if isinstance(self.seed, list) else [self.seed]
        if not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
            raise bad(f"seed must be an integer (or a list of integers), got {self.seed!r}", "seed")
        for name in ("backend", "circuit_hash", "target"):
            if not isinstance(getattr(self, name), str):
                raise bad(f"{name} must be a string, got {getattr(self, name)!r}", name)
        if not isinstance(self.versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.versions.items()
        ):
            raise bad(f"versions must map package names to version strings, got {self.versions!r}", "versions")
        if not isinstance(self.metadata, dict):
            raise bad(f"metadata must be a mapping, got {type(self.metadata).__name__}", "metadata")
        lead = (self.batch, self.steps)
        for group, kinds in (("spikes", "biuf"), ("states", "biuf")):
            for key, arr in getattr(self, group).items():
                arr = np.asarray(arr)
                if arr.dtype.kind not in kinds:
                    raise bad(f"{key!r} has dtype {arr.dtype}; expected bool or numbers", group)
                if arr.ndim < 3 or arr.shape[:2] != lead:
                    raise bad(f"{key!r} has shape {arr.shape}; expected (batch, steps, ...) = ({lead[0]}, {lead[1]}, "
                              "...)", group)  # fmt: skip
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise bad(f"{key!r} holds NaN or inf", group)
        if set(self.weights) != set(self.weight_steps):
            diff = sorted(set(self.weights) ^ set(self.weight_steps))
            raise bad(f"weights and weight_steps must have the same keys; {diff} are in only one", "weight_steps")
        for key, arr in self.weights.items():
            arr, when = np.asarray(arr), np.asarray(self.weight_steps[key])
            if arr.dtype.kind not in "biuf":
                raise bad(f"{key!r} has dtype {arr.dtype}; expected numbers", "weights")
            if arr.ndim != 4 or arr.shape[0] != self.batch:
                raise bad(f"{key!r} has shape {arr.shape}; expected (batch={self.batch}, samples, n_out, n_in)",
                          "weights")  # fmt: skip
            if when.dtype.kind not in "iu" or when.shape != (arr.shape[1],):
                raise bad(f"{key!r} needs {arr.shape[1]} integer sample steps, got {when.dtype} {when.shape}",
                          "weight_steps")  # fmt: skip
            if when.size and (when.min() < 0 or when.max() > self.steps or np.any(np.diff(when) < 0)):
                raise bad(f"{key!r} sample steps must be non-decreasing in 0..{self.steps}", "weight_steps")
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise bad(f"{key!r} holds NaN or inf", "weights")

    # -- file I/O ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to an HDF5 file atomically (missing folders are created); returns the path."""
        path = check_output_path(path, "result file", make_parents=True)
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
        try:
            text = json.dumps(meta)
        except (TypeError, ValueError, RecursionError) as err:
            raise CircuitFileError(f"metadata is not JSON-serialisable ({err})", file=str(path),
                                   field="metadata") from None  # fmt: skip
        check_json_keys(self.metadata, str(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as err:
            raise CircuitFileError(f"cannot write next to the file ({err.strerror or err})", file=str(path)) from None
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULT_FORMAT
                f.attrs["format_version"] = RESULT_FORMAT_VERSION
                f.attrs["meta"] = text
                for group_name in ("spikes", "states", "weights", "weight_steps"):
                    group = f.create_group(group_name)
                    for key, arr in getattr(self, group_name).items():
                        group.create_dataset(key.replace("/", "|"), data=np.asarray(arr), compression="gzip")
            os.replace(tmp, path)
            trust_written_file(path)
        except OSError as err:
            raise CircuitFileError(f"cannot write the result file ({err.strerror or err})", file=str(path)) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a file written by :meth:`save`; clear errors for missing, corrupt, foreign or inconsistent files.

        The file is read under the time and memory guard of :mod:`neuro_hw.safe_io`, every dataset's declared size
        is checked against :mod:`neuro_hw.limits` before it is read, and the Result is checked with
        :meth:`validate`."""
        return guarded_read(path, cls._read, "result file")

    @classmethod
    def _read(cls, path: Path) -> Result:
        file = str(path)
        try:
            with h5py.File(path, "r") as f:
                fmt = f.attrs.get("format")
                if isinstance(fmt, bytes):
                    fmt = fmt.decode("utf8", "replace")
                if not isinstance(fmt, str) or fmt != RESULT_FORMAT:
                    raise CircuitFileError(f"not a neuro-hw result file (format attribute {fmt!r})", file=file)
                version = f.attrs.get("format_version")
                version = version.item() if isinstance(version, np.generic) else version
                if (
                    isinstance(version, bool)
                    or not isinstance(version, int)
                    or not 1 <= version <= RESULT_FORMAT_VERSION
                ):
                    raise CircuitFileError(
                        f"result format_version {version!r} is not supported (this neuro-hw reads "
                        f"1..{RESULT_FORMAT_VERSION})",
                        file=file,
                        field="format_version",
                    )
                meta = _read_meta(f, file)
                groups = {name: _read_group(f, name, file) for name in ("spikes", "states", "weights", "weight_steps")}
        except CircuitFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            raise CircuitFileError(f"cannot read result file ({type(err).__name__}: {err})", file=file) from None
        result = cls(**groups, **meta)
        result.validate(file)
        return result


_META_KEYS = ("dt", "steps", "batch", "backend", "circuit_hash", "seed", "target", "versions", "metadata")


def _read_meta(f: h5py.File, file: str) -> dict:
    text = f.attrs.get("meta")
    if isinstance(text, bytes):
        text = text.decode("utf8", "replace")
    if not isinstance(text, str):
        raise CircuitFileError("the 'meta' attribute is missing or not a JSON string", file=file, field="meta")
    if len(text) > limits.MAX_JSON_BYTES:
        raise CircuitFileError(f"'meta' has {len(text):,} characters, more than {limits.limit_name('MAX_JSON_BYTES')}",
                               file=file, field="meta")  # fmt: skip
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise CircuitFileError(f"'meta' is not valid JSON ({type(err).__name__})", file=file, field="meta") from None
    if not isinstance(meta, dict):
        raise CircuitFileError(f"'meta' must be a JSON object, got {type(meta).__name__}", file=file, field="meta")
    missing = [k for k in _META_KEYS if k not in meta]
    unknown = sorted(k for k in meta if k not in _META_KEYS)
    if missing or unknown:
        raise CircuitFileError(f"'meta' lacks {missing} / has unknown {unknown}", file=file,
                               field=(missing or unknown)[0])  # fmt: skip
    return meta


def _read_group(f: h5py.File, name: str, file: str) -> dict[str, np.ndarray]:
    if name not in f or not isinstance(f[name], h5py.Group):
        raise CircuitFileError(f"the file has no '{name}' group", file=file, field=name)
    group = f[name]
    out = {}
    total = 0
    for key in group.keys():
        item = group.get(key)
        if not isinstance(item, h5py.Dataset):
            raise CircuitFileError(f"'{name}/{key}' is not a dataset", file=file, field=name)
        try:
            n = element_count(item.shape or ())
        except ValueError as err:
            raise CircuitFileError(f"'{name}/{key}' has an invalid shape ({err})", file=file, field=name) from None
        total += n
        if n > limits.MAX_RECORDED_VALUES or total > limits.MAX_RECORDED_VALUES:
            raise CircuitFileError(f"'{name}/{key}' declares shape {item.shape}; the file would hold more than "
                                   f"{limits.limit_name('MAX_RECORDED_VALUES')} values", file=file,
                                   field=name)  # fmt: skip
        if item.dtype.kind not in "biuf":
            raise CircuitFileError(f"'{name}/{key}' has dtype {item.dtype}; expected bool or numbers", file=file,
                                   field=name)  # fmt: skip
        out[key.replace("|", "/")] = item[()]
    return out
