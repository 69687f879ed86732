"""Circuit files: NIR HDF5 (``.nir``) that stock ``nir.read`` loads, plus our plasticity extension.

Layout of a file written by :func:`save`::

    /version            NIR version string            (written by nir.write)
    /node/...           the static NIR graph           (written by nir.write; all stock readers see this)
    /neuro_hw           group ignored by nir.read:
        attrs format            = "neuro-hw-plasticity"
        attrs format_version    = 1
        attrs neuro_hw_version  = package version that wrote it
        attrs extension         = JSON {"plasticity": {weight node: Plasticity.to_dict()},
                                        "metadata": {...}}

Rules are stored structurally (coefficients as exact JSON floats) *and* as readable strings; the
structural form is authoritative, so a save/load round trip is lossless.  Saves are atomic: the file
is written next to the target under a temporary name and renamed over it, so an interrupted save
never leaves a half-written circuit and never destroys the previous file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import h5py
import nir
from nir.serialization import hdf2dict

from neuro_hw.errors import CircuitFileError, NeuroHWError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.plasticity import Plasticity

EXTENSION_GROUP = "neuro_hw"
EXTENSION_FORMAT = "neuro-hw-plasticity"
EXTENSION_VERSION = 1


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("neuro-hw")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def save(circuit: Circuit, path: str | os.PathLike) -> Path:
    """Write ``circuit`` to ``path`` atomically (NIR HDF5 + plasticity extension); returns the path."""
    if not isinstance(circuit, Circuit):
        raise TypeError(f"save() expects a Circuit, got {type(circuit).__name__}")
    path = Path(path)
    circuit.validate()
    extension = {
        "plasticity": {name: spec.to_dict() for name, spec in circuit.plasticity.items()},
        "metadata": circuit.metadata,
    }
    try:
        payload = json.dumps(extension, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ValidationError(
            f"circuit metadata is not JSON-serialisable ({err})", file=str(path), field="metadata"
        ) from None
    if not path.parent.exists():
        raise CircuitFileError("the folder to save into does not exist", file=str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # compression=None: nir.write cannot compress 0-d (scalar) parameters.
        nir.write(tmp, circuit.to_nir(), compression=None)
        with h5py.File(tmp, "a") as f:
            group = f.create_group(EXTENSION_GROUP)
            group.attrs["format"] = EXTENSION_FORMAT
            group.attrs["format_version"] = EXTENSION_VERSION
            group.attrs["neuro_hw_version"] = _package_version()
            group.attrs["extension"] = payload
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_graph(f: h5py.File, file: str) -> nir.NIRGraph:
    if "node" not in f:
        raise CircuitFileError("not a NIR file: it has no '/node' group", file=file)
    root = f["node"]
    try:
        root_type = root["type"][()].decode() if "type" in root else None
    except (AttributeError, OSError) as err:
        raise CircuitFileError(f"cannot read the root node type ({err})", file=file) from None
    if root_type != "NIRGraph":
        raise CircuitFileError(f"the root node is {root_type!r}, expected a NIRGraph", file=file)
    if "nodes" not in root or "edges" not in root:
        raise CircuitFileError("the graph has no 'nodes' or 'edges'", file=file, field="node")
    nodes = {}
    for name in root["nodes"]:
        nodes[name] = _read_node(root["nodes"][name], name, file)
    try:
        edges = [(_str(a), _str(b)) for a, b in root["edges"][()]]
    except (ValueError, TypeError, OSError) as err:
        raise CircuitFileError(f"cannot read the edge list ({err})", file=file, field="edges") from None
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _str(x) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def _read_node(group: h5py.Group, name: str, file: str) -> nir.NIRNode:
    try:
        data = hdf2dict(group)
    except (OSError, KeyError, ValueError) as err:
        raise CircuitFileError(f"cannot read node data ({err})", file=file, node=name) from None
    kind = data.get("type")
    if kind is None:
        raise CircuitFileError("node has no 'type' entry", file=file, node=name, field="type")
    try:
        cls = getattr(nir, str(kind))
        if not (isinstance(cls, type) and issubclass(cls, nir.NIRNode)):
            raise AttributeError
    except AttributeError:
        raise UnsupportedNodeError(f"unknown node type {kind!r}", file=file, node=name, field="type") from None
    try:
        return nir.dict2NIRNode(data)
    except TypeError as err:
        raise CircuitFileError(f"{kind} node has missing or unexpected fields ({err})", file=file, node=name) from None
    except (AssertionError, ValueError, KeyError, IndexError) as err:
        reason = str(err) or type(err).__name__
        raise ValidationError(f"invalid {kind} node ({reason})", file=file, node=name) from None


def _read_extension(f: h5py.File, file: str) -> tuple[dict[str, Plasticity], dict]:
    if EXTENSION_GROUP not in f:
        return {}, {}
    group = f[EXTENSION_GROUP]
    fmt = group.attrs.get("format")
    if fmt != EXTENSION_FORMAT:
        raise CircuitFileError(f"'/{EXTENSION_GROUP}' has unknown format {fmt!r}", file=file, field=EXTENSION_GROUP)
    version = int(group.attrs.get("format_version", -1))
    if version != EXTENSION_VERSION:
        raise CircuitFileError(
            f"plasticity extension version {version} is not supported (this neuro-hw reads {EXTENSION_VERSION})",
            file=file,
            field=EXTENSION_GROUP,
        )
    try:
        ext = json.loads(group.attrs["extension"])
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise CircuitFileError(
            f"plasticity extension is not valid JSON ({err})", file=file, field=EXTENSION_GROUP
        ) from None
    plasticity = {}
    for name, spec in ext.get("plasticity", {}).items():
        try:
            plasticity[name] = Plasticity.from_dict(spec)
        except NeuroHWError as err:
            raise err.located(file=file, node=name) from None
        except (KeyError, TypeError, ValueError) as err:
            raise CircuitFileError(
                f"malformed plasticity entry ({err!r})", file=file, node=name, field="plasticity"
            ) from None
    return plasticity, ext.get("metadata", {})


def load(path: str | os.PathLike) -> Circuit:
    """Load a circuit from a ``.nir`` file: any stock NIR file, or one saved by :func:`save` (with rules)."""
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise CircuitFileError("no such file", file=file)
    if path.is_dir():
        raise CircuitFileError("is a directory, not a circuit file", file=file)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CircuitFileError(f"not a readable HDF5/NIR file (truncated or corrupt?): {err}", file=file) from None
    try:
        with f:
            graph = _read_graph(f, file)
            plasticity, metadata = _read_extension(f, file)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise CircuitFileError(f"corrupt file ({err})", file=file) from None
    try:
        circuit = Circuit.from_nir(graph, plasticity)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    circuit.metadata.update(metadata)
    return circuit
