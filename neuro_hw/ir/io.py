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
        masks/<k>               uint8 (n_post, n_pre) 0/1: the plasticity mask of a masked entry, whose
                                JSON holds the marker {"shape", "present", "dataset": "masks/<k>"}

``format_version`` is 3 when the circuit has a plasticity mask (a reader of version 2 refuses the file rather
than losing the mask), else 2.

Graded neurons (:mod:`neuro_hw.ir.graded`) have no NIR type: ``/node`` holds an identity ``Scale`` of the
same shape in their place (so stock readers load the file), and ``"nodes"`` holds the real node, which
:func:`load` puts back after checking that the stand-in is there with that shape.

Rules are stored structurally (coefficients as exact JSON floats) *and* as readable strings; the
structural form is authoritative, so a save/load round trip is lossless.  Saves are atomic: the file
is written next to the target under a temporary name and renamed over it, so an interrupted save
never leaves a half-written circuit and never destroys the previous file.

Loads accept regular files only and read them under the time and memory guard of :mod:`neuro_hw.safe_io` (a
corrupt HDF5 heap can make the library loop forever); every dataset's declared size, the edge count and the
extension JSON are checked against :mod:`neuro_hw.limits` before they are read, and every field of the extension
is type-checked (``docs/limits.md``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import h5py
import nir
import numpy as np

from neuro_hw import limits
from neuro_hw.errors import CircuitFileError, NeuroHWError, UnsupportedNodeError, ValidationError
from neuro_hw.ir.circuit import Circuit
from neuro_hw.ir.graded import GRADED_TYPES, from_extension
from neuro_hw.ir.plasticity import Plasticity
from neuro_hw.limits import element_count
from neuro_hw.safe_io import check_json_keys, check_output_path, guarded_read, trust_written_file

EXTENSION_GROUP = "neuro_hw"
EXTENSION_FORMAT = "neuro-hw-plasticity"
EXTENSION_VERSION = 2
#: The version written when a plasticity mask is present (masks are HDF5 datasets beside the JSON).
MASK_VERSION = 3
#: Extension versions this reader understands.
READABLE_VERSIONS = (1, 2, 3)
MASK_GROUP = "masks"


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
    masks: dict[str, np.ndarray] = {}
    plasticity = {}
    for name, spec in circuit.plasticity.items():
        entry = spec.to_dict()
        if spec.mask is not None:
            dataset = f"{MASK_GROUP}/{len(masks)}"
            entry["mask"]["dataset"] = dataset
            masks[dataset] = spec.mask.astype(np.uint8)
        plasticity[name] = entry
    extension = {
        "plasticity": plasticity,
        "nodes": {name: node.to_extension() for name, node in circuit.graded_nodes.items()},
        "metadata": circuit.metadata,
    }
    try:
        payload = json.dumps(extension, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as err:
        raise ValidationError(
            f"circuit metadata is not JSON-serialisable ({err})", file=str(path), field="metadata"
        ) from None
    check_json_keys(circuit.metadata, str(path))
    check_output_path(path, "circuit file")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise CircuitFileError(f"cannot write next to the file ({err.strerror or err})", file=str(path)) from None
    os.close(fd)
    try:
        # compression=None: nir.write cannot compress 0-d (scalar) parameters.
        nir.write(tmp, circuit.to_nir(), compression=None)
        with h5py.File(tmp, "a") as f:
            group = f.create_group(EXTENSION_GROUP)
            group.attrs["format"] = EXTENSION_FORMAT
            group.attrs["format_version"] = MASK_VERSION if masks else EXTENSION_VERSION
            for dataset, array in masks.items():
                group.create_dataset(dataset, data=array)
            group.attrs["neuro_hw_version"] = _package_version()
            group.attrs["extension"] = payload
        os.replace(tmp, path)
        trust_written_file(path)
    except OSError as err:
        raise CircuitFileError(f"cannot write the circuit file ({err.strerror or err})", file=str(path)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class _Budget:
    """Counts the objects walked and the values read from one file against the limits (before reading)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.objects = 0
        self.values = 0

    def dataset(self, item: h5py.Dataset, node: str | None, field: str) -> None:
        shape = item.shape
        try:
            n = 0 if shape is None else element_count(shape)
        except ValueError as err:
            raise CircuitFileError(f"dataset has an invalid shape ({err})", file=self.file, node=node,
                                   field=field) from None  # fmt: skip
        if n > limits.MAX_ARRAY_ELEMENTS:
            raise CircuitFileError(
                f"dataset declares {n:,} elements (shape {shape}), more than {limits.limit_name('MAX_ARRAY_ELEMENTS')}",
                file=self.file,
                node=node,
                field=field,
            )
        self.values += n
        if self.values > limits.MAX_FILE_VALUES:
            raise CircuitFileError(
                f"the file's datasets hold more than {limits.limit_name('MAX_FILE_VALUES')} values",
                file=self.file,
                node=node,
                field=field,
            )
        kind = item.dtype.kind
        if kind not in "biufSO":
            raise CircuitFileError(
                f"dataset has dtype {item.dtype}; expected numbers or strings", file=self.file, node=node, field=field
            )
        if kind == "O" and h5py.check_string_dtype(item.dtype) is None:
            raise CircuitFileError(
                "dataset holds variable-length data that is not a string", file=self.file, node=node, field=field
            )

    def step(self, node: str | None) -> None:
        self.objects += 1
        if self.objects > limits.MAX_FILE_OBJECTS:
            raise CircuitFileError(f"the file has more than {limits.limit_name('MAX_FILE_OBJECTS')} groups and "
                                   "datasets", file=self.file, node=node)  # fmt: skip


def _read_group(group: h5py.Group, budget: _Budget, node: str | None, depth: int = 0) -> dict:
    """``nir.serialization.hdf2dict`` with every dataset's declared size checked before it is read."""
    if depth > limits.MAX_DEPTH:
        raise CircuitFileError(
            f"groups are nested deeper than {limits.limit_name('MAX_DEPTH')} (a cycle of links?)",
            file=budget.file,
            node=node,
        )
    data: dict = {}
    for key in group.keys():
        budget.step(node)
        item = group.get(key)
        key = _str(key)
        if isinstance(item, h5py.Group):
            data[key] = _read_group(item, budget, node, depth + 1)
        elif isinstance(item, h5py.Dataset):
            budget.dataset(item, node, key)
            value = item[()]
            if isinstance(value, h5py.Empty):
                raise CircuitFileError("dataset has no data (empty dataspace)", file=budget.file, node=node, field=key)
            data[key] = _str(value) if isinstance(value, bytes) else value
        else:
            raise CircuitFileError(f"entry {key!r} is neither a group nor a dataset (a dangling link?)",
                                   file=budget.file, node=node)  # fmt: skip
    return data


def _read_graph(f: h5py.File, file: str, budget: _Budget) -> nir.NIRGraph:
    if "node" not in f:
        raise CircuitFileError("not a NIR file: it has no '/node' group", file=file)
    root = f["node"]
    if not isinstance(root, h5py.Group):
        raise CircuitFileError("'/node' is not a group", file=file)
    root_type = None
    if "type" in root:
        item = root["type"]
        if not isinstance(item, h5py.Dataset):
            raise CircuitFileError("the root node's 'type' is not a dataset", file=file, field="type")
        budget.dataset(item, None, "type")
        try:
            value = item[()]
            root_type = value.decode() if isinstance(value, bytes) else value
        except (AttributeError, OSError, TypeError, UnicodeDecodeError) as err:
            raise CircuitFileError(f"cannot read the root node type ({err})", file=file) from None
    if root_type != "NIRGraph":
        raise CircuitFileError(f"the root node is {root_type!r}, expected a NIRGraph", file=file)
    if "nodes" not in root or "edges" not in root:
        raise CircuitFileError("the graph has no 'nodes' or 'edges'", file=file, field="node")
    if not isinstance(root["nodes"], h5py.Group) or not isinstance(root["edges"], h5py.Dataset):
        raise CircuitFileError("'nodes' must be a group and 'edges' a dataset", file=file, field="node")
    names = list(root["nodes"].keys())
    if len(names) > limits.MAX_NODES:
        raise CircuitFileError(f"the graph has {len(names):,} nodes, more than {limits.limit_name('MAX_NODES')}",
                               file=file, field="nodes")  # fmt: skip
    nodes = {}
    for name in names:
        item = root["nodes"].get(name)
        if not isinstance(item, h5py.Group):
            raise CircuitFileError("a node must be a group", file=file, node=name)
        nodes[name] = _read_node(item, name, file, budget)
    edges_ds = root["edges"]
    shape = edges_ds.shape or ()
    if len(shape) != 2 or shape[1] != 2:
        if not (len(shape) == 1 and shape[0] == 0):
            raise CircuitFileError(f"the edge list has shape {shape}, expected (n, 2)", file=file, field="edges")
    elif shape[0] > limits.MAX_EDGES:
        raise CircuitFileError(f"the edge list declares {shape[0]:,} rows, more than {limits.limit_name('MAX_EDGES')}",
                               file=file, field="edges")  # fmt: skip
    budget.dataset(edges_ds, None, "edges")
    try:
        raw = edges_ds[()]
        edges = [(_str(a), _str(b)) for a, b in raw] if len(shape) == 2 else []
    except (ValueError, TypeError, OSError) as err:
        raise CircuitFileError(f"cannot read the edge list ({err})", file=file, field="edges") from None
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _str(x) -> str:
    if isinstance(x, bytes):
        try:
            return x.decode("utf8")
        except UnicodeDecodeError:
            raise CircuitFileError(f"a name is not valid UTF-8 ({x[:40]!r})") from None
    return str(x)


def _read_node(group: h5py.Group, name: str, file: str, budget: _Budget | None = None) -> nir.NIRNode:
    try:
        data = _read_group(group, budget or _Budget(file), name)
    except NeuroHWError as err:
        raise err.located(file=file, node=name) from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CircuitFileError(f"cannot read node data ({err})", file=file, node=name) from None
    return _node_from_dict(data, name, file)


def _node_from_dict(data: dict, name: str, file: str, depth: int = 0) -> nir.NIRNode:
    kind = data.get("type")
    if kind is None:
        raise CircuitFileError("node has no 'type' entry", file=file, node=name, field="type")
    if not isinstance(kind, str):
        raise CircuitFileError(f"node 'type' must be a string, got {kind!r}", file=file, node=name, field="type")
    try:
        cls = getattr(nir, kind)
        if not (isinstance(cls, type) and issubclass(cls, nir.NIRNode)):
            raise AttributeError
    except AttributeError:
        raise UnsupportedNodeError(f"unknown node type {kind!r}", file=file, node=name, field="type") from None
    if kind == "NIRGraph":
        # Build subgraphs ourselves: nir's from_dict would accept anything in 'nodes' / 'edges'.
        if depth >= limits.MAX_DEPTH:
            raise CircuitFileError(f"subgraphs are nested deeper than {limits.limit_name('MAX_DEPTH')}", file=file,
                                   node=name)  # fmt: skip
        # (an exporter's recurrent layer): read like the top level, without nir's type check; shapes are checked,
        # with our messages, when the flattened graph becomes a Circuit
        sub_nodes, sub_edges = data.get("nodes"), data.get("edges")
        if sub_nodes is None or sub_edges is None:
            raise CircuitFileError("the graph has no 'nodes' or 'edges'", file=file, node=name, field="nodes")
        if not isinstance(sub_nodes, dict):
            raise CircuitFileError("a subgraph's 'nodes' must be a group", file=file, node=name, field="nodes")
        edges_arr = np.asarray(sub_edges)
        if edges_arr.size and (edges_arr.ndim != 2 or edges_arr.shape[1] != 2):
            raise CircuitFileError(f"the edge list has shape {edges_arr.shape}, expected (n, 2)", file=file,
                                   node=name, field="edges")  # fmt: skip
        nodes = {}
        for key, sub in sub_nodes.items():
            if not isinstance(sub, dict):
                raise CircuitFileError("a node must be a group", file=file, node=f"{name}.{key}")
            nodes[key] = _node_from_dict(sub, f"{name}.{key}", file, depth + 1)
        edges = [(_str(a), _str(b)) for a, b in edges_arr.reshape(-1, 2)]
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("input_type", "output_type", "metadata"):
            raise CircuitFileError(f"{kind} field is a group; expected a dataset", file=file, node=name, field=key)
    try:
        return nir.dict2NIRNode(data)
    except TypeError as err:
        raise CircuitFileError(f"{kind} node has missing or unexpected fields ({err})", file=file, node=name) from None
    except (AssertionError, ValueError, KeyError, IndexError, AttributeError) as err:
        reason = str(err) or type(err).__name__
        raise ValidationError(f"invalid {kind} node ({reason})", file=file, node=name) from None


def _read_extension(f: h5py.File, file: str, budget: _Budget) -> tuple[dict[str, Plasticity], dict, dict]:
    if EXTENSION_GROUP not in f:
        return {}, {}, {}
    group = f[EXTENSION_GROUP]
    if not isinstance(group, h5py.Group):
        raise CircuitFileError(f"'/{EXTENSION_GROUP}' is not a group", file=file, field=EXTENSION_GROUP)
    fmt = group.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf8", "replace")
    if not isinstance(fmt, str) or fmt != EXTENSION_FORMAT:
        raise CircuitFileError(f"'/{EXTENSION_GROUP}' has unknown format {fmt!r}", file=file, field=EXTENSION_GROUP)
    raw_version = group.attrs.get("format_version", None)
    version = raw_version.item() if isinstance(raw_version, np.ndarray) and raw_version.size == 1 else raw_version
    if isinstance(version, np.generic):
        version = version.item()
    if isinstance(version, bool) or not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise CircuitFileError(
            f"plasticity extension format_version {version!r} is not supported (this neuro-hw reads "
            f"{', '.join(map(str, READABLE_VERSIONS))})",
            file=file,
            field="format_version",
        )
    if "extension" not in group.attrs:
        raise CircuitFileError("the plasticity extension has no 'extension' attribute", file=file,
                               field="extension")  # fmt: skip
    text = group.attrs["extension"]
    if isinstance(text, bytes):
        text = text.decode("utf8", "replace")
    if not isinstance(text, str):
        raise CircuitFileError(f"the 'extension' attribute must be a JSON string, got {type(text).__name__}",
                               file=file, field="extension")  # fmt: skip
    if len(text) > limits.MAX_JSON_BYTES:
        raise CircuitFileError(f"the extension JSON has {len(text):,} characters, more than "
                               f"{limits.limit_name('MAX_JSON_BYTES')}", file=file, field="extension")  # fmt: skip
    try:
        ext = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise CircuitFileError(f"plasticity extension is not valid JSON ({reason})", file=file,
                               field=EXTENSION_GROUP) from None  # fmt: skip
    if not isinstance(ext, dict):
        raise CircuitFileError(f"extension must be a JSON object, got {type(ext).__name__}", file=file,
                               field="extension")  # fmt: skip
    unknown = sorted(set(ext) - {"plasticity", "nodes", "metadata"})
    if unknown:
        raise CircuitFileError(f"unknown extension field(s) {unknown} (this neuro-hw knows plasticity, nodes, "
                               "metadata)", file=file, field=str(unknown[0]))  # fmt: skip
    required = ("plasticity", "metadata") + (("nodes",) if version >= 2 else ())
    missing = [key for key in required if key not in ext]
    if missing:
        raise CircuitFileError(f"the extension (format_version {version}) has no {missing} field(s)", file=file,
                               field=missing[0])  # fmt: skip
    for key in ("plasticity", "nodes", "metadata"):
        if not isinstance(ext.get(key, {}), dict):
            raise CircuitFileError(f"extension field {key!r} must be an object, got {type(ext[key]).__name__}",
                                   file=file, field=key)  # fmt: skip
    nodes = {}
    for name, entry in ext.get("nodes", {}).items():
        try:
            nodes[name] = from_extension(entry)
        except NeuroHWError as err:
            raise err.located(file=file, node=name) from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise CircuitFileError(
                f"malformed graded node entry ({err!r})", file=file, node=name, field="nodes"
            ) from None
    plasticity = {}
    for name, spec in ext.get("plasticity", {}).items():
        try:
            mask = _read_mask(group, spec, budget, version, name) if isinstance(spec, dict) else None
            plasticity[name] = Plasticity.from_dict(spec, mask)
        except NeuroHWError as err:
            raise err.located(file=file, node=name, field="plasticity") from None
    return plasticity, ext.get("metadata", {}), nodes


def _read_mask(group: h5py.Group, spec: dict, budget: _Budget, version: int, node: str) -> np.ndarray | None:
    """The mask array of a plasticity entry with a ``"mask"`` marker (else None), size-checked before it is read."""
    marker = spec.get("mask")
    if marker is None:
        return None
    if version < MASK_VERSION:
        raise CircuitFileError(f"a plasticity mask needs format_version {MASK_VERSION}, the file says {version}",
                               node=node, field="mask")  # fmt: skip
    dataset = marker.get("dataset") if isinstance(marker, dict) else None
    if not isinstance(dataset, str) or not dataset.startswith(f"{MASK_GROUP}/") or dataset.count("/") != 1:
        raise CircuitFileError(f"the mask marker names no dataset under '{MASK_GROUP}/' (got {dataset!r})",
                               node=node, field="mask")  # fmt: skip
    try:
        item = group.get(dataset)
        if not isinstance(item, h5py.Dataset):
            raise CircuitFileError(f"the mask dataset '/{EXTENSION_GROUP}/{dataset}' is missing", node=node,
                                   field="mask")  # fmt: skip
        budget.dataset(item, node, "mask")
        if item.dtype.kind not in "biu" or len(item.shape or ()) != 2:
            raise CircuitFileError(
                f"the mask dataset must be a 2-D integer 0/1 array, got dtype {item.dtype} shape {item.shape}",
                node=node,
                field="mask",
            )
        return np.asarray(item[()])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as err:
        raise CircuitFileError(f"cannot read the mask dataset '/{EXTENSION_GROUP}/{dataset}' ({err})", node=node,
                               field="mask") from None  # fmt: skip


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


def _read_file(path: Path) -> tuple[nir.NIRGraph, dict[str, Plasticity], dict]:
    """Everything :func:`load` reads with HDF5 (run first in a guarded child: :mod:`neuro_hw.safe_io`)."""
    file = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CircuitFileError(f"not a readable HDF5/NIR file (truncated or corrupt?): {err}", file=file) from None
    try:
        with f:
            budget = _Budget(file)  # one budget for the graph's datasets and the masks
            graph = _read_graph(f, file, budget)
            plasticity, metadata, graded = _read_extension(f, file, budget)
            _restore_graded(graph, graded, file)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError) as err:
        raise CircuitFileError(f"corrupt file ({type(err).__name__}: {err})", file=file) from None
    return graph, plasticity, metadata


def load(path: str | os.PathLike) -> Circuit:
    """Load a circuit from a ``.nir`` file: any stock NIR file, or one saved by :func:`save` (with rules).

    The file must be a regular file; it is read under a time and memory guard (:mod:`neuro_hw.safe_io`) and
    every declared size is checked against :mod:`neuro_hw.limits` before anything is read.
    """
    file = str(path)
    graph, plasticity, metadata = guarded_read(path, _read_file, "circuit file")
    try:
        circuit = Circuit.from_nir(graph, plasticity)
    except NeuroHWError as err:
        raise err.located(file=file) from None
    circuit.metadata.update(metadata)
    circuit.source = file
    return circuit
