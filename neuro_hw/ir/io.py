"""Circuit files: NIR HDF5 (``.nir``) that stock ``nir.read`` loads, plus our plasticity extension.

Layout of a file written by :func:`save`::

    /version            NIR version string            (written by nir.write)
    /node/...           the static NIR graph           (written by nir.write; all stock readers see this)
    /neuro_hw           group ignored by nir.read:
        attrs format            = "neuro-hw-plasticity"
        attrs format_version    = 2   (version 1 files, without graded neurons, are read too)
        attrs neuro_hw_version  = package version that wrote it
        attrs extension         = JSON {"plasticity": {weight node: Plasticity.to_dict()},
                                        "nodes": {graded node: GradedNeuron/ProductNeuron entry},
                                        "metadata": {...}}

Graded neurons (:mod:`neuro_hw.ir.graded`) have no NIR type: ``/node`` holds an identity ``Scale`` of the
same shape in their place (so stock readers load the file), and ``"nodes"`` holds the real node, which
:func:`load` puts back after checking that the stand-in is there with that shape.

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
import numpy as np
from nir.serialization import hdf2dict

from neuro_hw.errors import CircuitFileError, NeuroHWError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GRADED_TYPES, from_extension
from neuro_hw.ir.plasticity import Plasticity

EXTENSION_GROUP = "neuro_hw"
EXTENSION_FORMAT = "neuro-hw-plasticity"
EXTENSION_VERSION = 2
#: Extension versions this reader understands.
READABLE_VERSIONS = (1, 2)


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
        "nodes": {name: node.to_extension() for name, node in circuit.graded_nodes.items()},
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
    return _read_nodes_and_edges(root, "", file)


def _read_nodes_and_edges(group: h5py.Group, prefix: str, file: str) -> nir.NIRGraph:
    """A graph's nodes and edges, without nir's type check: shapes are checked, with our messages, when the
    (flattened) graph becomes a :class:`Circuit`.  ``prefix`` is the dotted path of a nested graph (``"rec."``)."""
    if "nodes" not in group or "edges" not in group:
        raise CircuitFileError("the graph has no 'nodes' or 'edges'", file=file, node=prefix[:-1] or None,
                               field="node" if not prefix else "nodes")  # fmt: skip
    nodes = {}
    for name in group["nodes"]:
        nodes[name] = _read_node(group["nodes"][name], prefix + name, file)
    try:
        edges = [(_str(a), _str(b)) for a, b in group["edges"][()]]
    except (ValueError, TypeError, OSError) as err:
        raise CircuitFileError(
            f"cannot read the edge list ({err})", file=file, node=prefix[:-1] or None, field="edges"
        ) from None
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
    if str(kind) == "NIRGraph":  # a nested graph (an exporter's recurrent layer): read it like the top level
        return _read_nodes_and_edges(group, name + ".", file)
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


def _read_extension(f: h5py.File, file: str) -> tuple[dict[str, Plasticity], dict, dict]:
    if EXTENSION_GROUP not in f:
        return {}, {}, {}
    group = f[EXTENSION_GROUP]
    fmt = group.attrs.get("format")
    if fmt != EXTENSION_FORMAT:
        raise CircuitFileError(f"'/{EXTENSION_GROUP}' has unknown format {fmt!r}", file=file, field=EXTENSION_GROUP)
    raw_version = group.attrs.get("format_version", None)
    version = raw_version.item() if hasattr(raw_version, "item") else raw_version
    if isinstance(version, bool) or not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise CircuitFileError(
            f"plasticity extension version {raw_version!r} is not supported (this neuro-hw reads "
            f"{', '.join(map(str, READABLE_VERSIONS))})",
            file=file,
            field=EXTENSION_GROUP,
        )
    try:
        ext = json.loads(group.attrs["extension"])
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise CircuitFileError(
            f"plasticity extension is not valid JSON ({err})", file=file, field=EXTENSION_GROUP
        ) from None
    if not isinstance(ext, dict):
        raise CircuitFileError(f"extension must be a JSON object, got {type(ext).__name__}", file=file,
                               field=EXTENSION_GROUP)  # fmt: skip
    for key in ("plasticity", "nodes", "metadata"):
        if not isinstance(ext.get(key, {}), dict):
            raise CircuitFileError(f"extension field {key!r} must be an object", file=file, field=key)
    nodes = {}
    for name, entry in ext.get("nodes", {}).items():
        try:
            nodes[name] = from_extension(entry)
        except NeuroHWError as err:
            raise err.located(file=file, node=name) from None
        except (KeyError, TypeError, ValueError) as err:
            raise CircuitFileError(
                f"malformed graded node entry ({err!r})", file=file, node=name, field="nodes"
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
    return plasticity, ext.get("metadata", {}), nodes


def _restore_graded(graph: nir.NIRGraph, graded: dict, file: str) -> None:
    """Put the graded nodes of the extension in place of their ``Scale`` stand-ins (top level of the graph)."""
    for name, node in graded.items():
        standin = graph.nodes.get(name)
        if standin is None:
            raise CircuitFileError("the extension defines a graded node that is not in the graph", file=file,
                                   node=name, field="nodes")  # fmt: skip
        if type(standin).__name__ != "Scale":
            raise CircuitFileError(
                f"the graph holds a {type(standin).__name__} where the extension puts a graded node (expected its "
                "Scale stand-in)",
                file=file,
                node=name,
                field="nodes",
            )
        if tuple(np.shape(standin.scale)) != tuple(int(s) for s in node.shape):
            raise CircuitFileError(
                f"stand-in shape {tuple(np.shape(standin.scale))} differs from the graded node's shape "
                f"{tuple(int(s) for s in node.shape)}",
                file=file,
                node=name,
                field="shape",
            )
        graph.nodes[name] = node
    for name, node in graph.nodes.items():
        kind = (node.metadata or {}).get("neuro_hw") if isinstance(node, nir.Scale) else None
        if kind in GRADED_TYPES and name not in graded:
            raise CircuitFileError(
                f"the graph holds the Scale stand-in of a {kind} but the extension has no entry for it (the graded "
                "node is lost; was the file re-written by a tool that drops the '/neuro_hw' group?)",
                file=file,
                node=name,
                field="nodes",
            )


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
            plasticity, metadata, graded = _read_extension(f, file)
            _restore_graded(graph, graded, file)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise CircuitFileError(f"corrupt file ({err})", file=file) from None
    try:
        circuit = Circuit.from_nir(graph, plasticity)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    circuit.metadata.update(metadata)
    circuit.source = file
    return circuit
