"""Fuzz cases: hostile inputs to every entry point, generated from ``(family, seed)`` (see ``test_fuzz.py``).

Each family builds one bad input from a seeded ``numpy`` generator and feeds it to neuro-hw.  A case returns the
outcome ``"error"`` (a :class:`~neuro_hw.errors.NeuroHWError`, a refused CLI call: exit status 2 with a one-paragraph
message and no traceback, or a failing golden comparison) or ``"ok"`` (accepted); any other exception propagates
and the worker records a crash.  ``MUST_REFUSE`` families build inputs that are invalid by construction, so ``ok``
there is a silent acceptance; the byte-mutation families may hit bytes that do not matter, so ``ok`` is fine there.

Families: ``nir_bytes`` (random byte changes / truncation of a valid circuit file), ``nir_heap`` (the HDF5
global-heap object headers, where NIR's strings live), ``nir_dataset`` (a node parameter replaced by a hostile
dataset), ``nir_structure`` (groups, edges and types broken), ``ext_field`` (a plasticity-extension field set to an
invalid value), ``ext_random`` (random JSON at random places of the extension), ``rule_bad`` / ``rule_random`` (rule
strings), ``api`` (bad arguments to simulate / run / compile / Plasticity / Circuit), ``result_file`` (Result files
with bad fields or datasets), ``result_bytes`` (random byte changes of a Result file), ``golden`` (check_golden
against bad goldens), ``cli`` (hostile command lines), ``paths`` (outputs onto folders, missing folders, FIFOs).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np

import neuro_hw
from neuro_hw.errors import NeuroHWError
from neuro_hw.result import Result

MUST_REFUSE = {
    "nir_dataset",
    "nir_structure",
    "ext_field",
    "rule_bad",
    "api",
    "result_file",
    "golden",
    "cli",
    "paths",
}
MAY_ACCEPT = {"nir_bytes", "nir_heap", "ext_random", "rule_random", "result_bytes"}
FAMILIES = tuple(sorted(MUST_REFUSE | MAY_ACCEPT))

STEPS = 20
HOSTILE = [
    None,
    [],
    {},
    "",
    "y2",
    "x9",
    True,
    False,
    -1,
    0,
    1.5,
    1e30,
    -1e308,
    math.inf,
    -math.inf,
    math.nan,
    [1, 1],
    [[[]]],
    {"a": 1},
    2**70,
    "1",
    "dw = x1",
]


class Fixtures:
    """Valid files every case starts from, written once per worker into ``root``."""

    def __init__(self, root: Path) -> None:
        from neuro_hw.circuits.stdp import stdp_circuit

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.circuit = stdp_circuit(n_in=4, n_out=2, seed=1)
        self.circuit_path = neuro_hw.save(self.circuit, root / "base.nir")
        rng = np.random.default_rng(0)
        self.inputs = {"input": (rng.random((STEPS, 4)) < 0.3).astype(np.float64)}
        np.save(root / "input.npy", self.inputs["input"])
        self.result = neuro_hw.simulate(self.circuit, self.inputs, STEPS, 1e-3, record="all")
        self.result_path = self.result.save(root / "result.h5")
        sub = nir.NIRGraph(
            nodes={"i": nir.Input(np.array([2])), "s": nir.Scale(np.ones(2)), "o": nir.Output(np.array([2]))},
            edges=[("i", "s"), ("s", "o")],
            type_check=False,
        )
        graph = nir.NIRGraph(
            nodes={"input": nir.Input(np.array([2])), "sub": sub, "output": nir.Output(np.array([2]))},
            edges=[("input", "sub"), ("sub", "output")],
            type_check=False,
        )
        self.nested_path = root / "nested.nir"
        nir.write(self.nested_path, graph, compression=None)
        self.graded_path = neuro_hw.save(graded_circuit(), root / "graded.nir")
        self.program = None

    def copy(self, source: Path, name: str) -> Path:
        target = self.root / name
        shutil.copyfile(source, target)
        return target

    def compiled(self):
        if self.program is None:
            self.program = neuro_hw.compile(self.circuit, dt=1e-3)
        return self.program


def graded_circuit() -> neuro_hw.Circuit:
    """x -> w1 -> h (clipped ReLU) -> w2 -> o -> po -> err <- nt <- t; w2 learns from the modulator e = err, x1 is
    the graded pre activity; p is a ProductNeuron gated by h."""
    from neuro_hw.ir.graded import GradedNeuron, ProductNeuron

    nodes = {
        "x": nir.Input(np.array([3])),
        "t": nir.Input(np.array([2])),
        "w1": nir.Linear(np.arange(12.0).reshape(4, 3) / 12 - 0.4),
        "h": GradedNeuron(np.array([4]), "clipped_relu", clip=1.0),
        "w2": nir.Linear(np.arange(8.0).reshape(2, 4) / 8 - 0.5),
        "o": GradedNeuron(np.array([2]), "identity"),
        "po": nir.Linear(np.eye(2)),
        "nt": nir.Linear(-np.eye(2)),
        "err": GradedNeuron(np.array([2]), "identity"),
        "hg": nir.Linear(np.eye(4)),
        "fb": nir.Linear(np.ones((4, 2)) * 0.5),
        "p": ProductNeuron(np.array([4]), gate_inputs=("hg",), gate="clipped_relu_derivative", gate_clip=1.0),
        "out": nir.Output(np.array([4])),
    }
    edges = [
        ("x", "w1"), ("w1", "h"), ("h", "w2"), ("w2", "o"), ("o", "po"), ("po", "err"), ("t", "nt"), ("nt", "err"),
        ("err", "fb"), ("fb", "p"), ("h", "hg"), ("hg", "p"), ("p", "out"),
    ]  # fmt: skip
    circuit = neuro_hw.Circuit(nodes, edges)
    circuit.add_plasticity(
        "w2", "dw = -0.01*x0*e*x1", traces={"x1": "activity"}, third_factor={"e": "err"}, t_epoch=5, w_bounds=(-2, 2)
    )
    return circuit


# -- helpers ------------------------------------------------------------------------------------------------------
def _call(fn, *args, **kwargs) -> str:
    """Run an API call: ``"error"`` for a project error, ``"ok"`` when accepted; anything else propagates."""
    try:
        fn(*args, **kwargs)
    except NeuroHWError as err:
        if not str(err):
            raise AssertionError("a project error without a message") from None
        return "error"
    return "ok"


def _load_and_use(path: Path) -> str:
    """Load a circuit; when accepted, also describe, save, reload and simulate it briefly (what a user does next)."""
    try:
        circuit = neuro_hw.load(path)
        circuit.describe()
        copy = neuro_hw.save(circuit, path.with_name(path.stem + "_copy.nir"))
        if neuro_hw.load(copy).hash() != circuit.hash():
            raise AssertionError("a circuit that loads reads back changed after save")
        inputs = {n: np.zeros((3, circuit.size(n))) for n in circuit.input_names}
        neuro_hw.simulate(circuit, inputs, 3, 1e-3, batch=None if inputs else 1)
    except NeuroHWError:
        return "error"
    return "ok"


def _heap_objects(data: bytes) -> list[int]:
    """Offsets of the size fields of the objects in the file's HDF5 global heap collections ("GCOL")."""
    offsets = []
    start = data.find(b"GCOL")
    while start >= 0:
        size = int.from_bytes(data[start + 8 : start + 16], "little")
        j, end = start + 16, start + size
        while j + 16 <= min(end, len(data)):
            index = int.from_bytes(data[j : j + 2], "little")
            obj = int.from_bytes(data[j + 8 : j + 16], "little")
            if index == 0:
                break
            offsets.append(j + 8)
            j += 16 + ((obj + 7) // 8) * 8
        start = data.find(b"GCOL", start + 4)
    return offsets


# -- families -----------------------------------------------------------------------------------------------------
def case_nir_bytes(fx: Fixtures, rng: np.random.Generator) -> str:
    data = bytearray(fx.circuit_path.read_bytes())
    mode = rng.integers(3)
    if mode == 0:  # a few random bytes
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
    elif mode == 1:  # truncation
        data = data[: int(rng.integers(len(data)))]
    else:  # a bit flip in the first 4 KB (superblock, object headers, B-trees)
        k = int(rng.integers(min(len(data), 4096)))
        data[k] ^= 1 << int(rng.integers(8))
    path = fx.root / "bytes.nir"
    path.write_bytes(bytes(data))
    return _load_and_use(path)


def case_nir_heap(fx: Fixtures, rng: np.random.Generator) -> str:
    source = fx.nested_path if rng.random() < 0.3 else fx.circuit_path
    data = bytearray(source.read_bytes())
    offsets = _heap_objects(bytes(data))
    k = offsets[int(rng.integers(len(offsets)))]
    value = int(rng.choice([0, 1, 2, 7, 255, 256, 4095, 2**16, 2**31, 2**40, 2**63, int(rng.integers(0, 512))]))
    data[k : k + 8] = value.to_bytes(8, "little")
    path = fx.root / "heap.nir"
    path.write_bytes(bytes(data))
    return _load_and_use(path)


def _replace(path: Path, name: str, make) -> None:
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        make(f, name)


def case_nir_dataset(fx: Fixtures, rng: np.random.Generator) -> str:
    path = fx.copy(fx.circuit_path, "dataset.nir")
    node, field = [
        ("neurons", "tau"),
        ("neurons", "r"),
        ("neurons", "v_threshold"),
        ("neurons", "v_leak"),
        ("synapses", "weight"),
        ("input", "shape"),
        ("output", "shape"),
    ][int(rng.integers(7))]
    name = f"node/nodes/{node}/{field}"
    choice = int(rng.integers(12))
    huge = int(rng.choice([10**9, 2**31, 2**40]))
    if choice == 0:  # declared huge, tiny on disk (chunked)
        make = lambda f, n: f.create_dataset(n, shape=(huge,), dtype="f8", chunks=(1024,))  # noqa: E731
    elif choice == 1:
        make = lambda f, n: f.create_dataset(n, data=np.full(2, rng.choice([np.nan, np.inf, -np.inf])))  # noqa: E731
    elif choice == 2:
        value = float(rng.choice([1e308, -1e308, 1e200, 1e16]))
        make = lambda f, n: f.create_dataset(n, data=np.full(2 if node != "synapses" else (2, 4), value))  # noqa: E731
    elif choice == 3:
        make = lambda f, n: f.create_dataset(n, data=np.array([b"abc", b"de"]))  # noqa: E731
    elif choice == 4:
        dtype = np.dtype([("a", "f8"), ("b", "i4")])
        make = lambda f, n: f.create_dataset(n, data=np.zeros(2, dtype=dtype))  # noqa: E731
    elif choice == 5:  # wrong size
        make = lambda f, n: f.create_dataset(n, data=np.ones(int(rng.integers(3, 7)) + (node == "synapses") * 9))  # noqa: E731
    elif choice == 6 and field in ("shape",):
        dims = pick(rng, [[2**32, 2**32], [0], [-4], [2**62, 4], [4, 0], [1.5]])
        make = lambda f, n: f.create_dataset(n, data=np.array(dims))  # noqa: E731
    elif choice == 6 or choice == 7:
        if field == "tau":
            make = lambda f, n: f.create_dataset(n, data=np.array([-0.02, 0.0])[: int(rng.integers(1, 3))])  # noqa: E731
        else:
            make = lambda f, n: f.create_dataset(n, shape=(0,), dtype="f8")  # noqa: E731
    elif choice == 8:  # a group where a dataset belongs
        make = lambda f, n: f.create_group(n)  # noqa: E731
    elif choice == 9:  # empty dataspace
        make = lambda f, n: f.create_dataset(n, data=h5py.Empty("f8"))  # noqa: E731
    elif choice == 10:  # deep weight tensor
        make = lambda f, n: f.create_dataset(n, data=np.ones((2, 2, 2, 2)))  # noqa: E731
    else:  # a 2-D chunked monster declared
        make = lambda f, n: f.create_dataset(n, shape=(huge, huge), dtype="f8", chunks=(8, 8))  # noqa: E731
    _replace(path, name, make)
    return _load_and_use(path)


def case_nir_structure(fx: Fixtures, rng: np.random.Generator) -> str:
    path = fx.copy(fx.circuit_path, "structure.nir")
    choice = int(rng.integers(14))
    with h5py.File(path, "a") as f:
        if choice == 0:
            del f["node"]
        elif choice == 1:
            del f["node/edges"]
        elif choice == 2:
            del f["node/edges"]
            f["node/edges"] = np.array([[b"input", b"ghost"], [b"synapses", b"neurons"]], dtype=object)
        elif choice == 3:
            del f["node/edges"]
            f["node/edges"] = np.array([[b"input", b"synapses"]] * 2 + [[b"synapses", b"neurons"]], dtype=object)
        elif choice == 4:
            del f["node/nodes/neurons/type"]
            f["node/nodes/neurons/type"] = rng.choice([b"Foo", b"NIRNode", b"__class__", b"", b"Conv3d"])
        elif choice == 5:
            del f["node/edges"]
            f["node/edges"] = np.zeros((3, 3))
        elif choice == 6:
            del f["node/nodes"]
            f["node/nodes"] = np.zeros(3)
        elif choice == 7:  # a cycle of hard links
            f["node/nodes/neurons/loop"] = f["node/nodes/neurons"]
        elif choice == 8:  # nodes nested deeper than any limit
            g = f["node/nodes/neurons"]
            for k in range(int(rng.integers(40, 80))):
                g = g.create_group(f"g{k}")
        elif choice == 9:  # a Scale <-> Scale loop without delay
            for n in ("s1", "s2"):
                g = f.create_group(f"node/nodes/{n}")
                g["type"] = "Scale"
                g["scale"] = np.ones(2)
            edges = [[b"neurons", b"s1"], [b"s1", b"s2"], [b"s2", b"s1"], [b"s2", b"output"]]
            old = [list(e) for e in f["node/edges"][()]]
            del f["node/edges"]
            f["node/edges"] = np.array(old + edges, dtype=object)
        elif choice == 10:  # a top-level "sub.x" next to a subgraph "sub" with node "x"
            g = f.create_group("node/nodes/sub")
            g["type"] = "NIRGraph"
            g.create_group("nodes/x")
            g["nodes/x/type"] = "Input"
            g["nodes/x/shape"] = np.array([2])
            g["edges"] = np.zeros((0, 2), dtype=h5py.string_dtype())
            h = f.create_group("node/nodes/sub.x")
            h["type"] = "Input"
            h["shape"] = np.array([3])
        elif choice == 11:  # a dangling soft link in a node
            f["node/nodes/neurons/tau_link"] = h5py.SoftLink("/nowhere")
        elif choice == 12:  # every population of size 0
            for n in ("input", "output"):
                del f[f"node/nodes/{n}/shape"]
                f[f"node/nodes/{n}/shape"] = np.array([0])
            for key in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
                del f[f"node/nodes/neurons/{key}"]
                f[f"node/nodes/neurons/{key}"] = np.zeros(0)
            del f["node/nodes/synapses/weight"]
            f["node/nodes/synapses/weight"] = np.zeros((0, 0))
        else:
            f["node/type"][...] = "Linear"
    return _load_and_use(path)


# (JSON path, invalid value) pairs of the plasticity extension of the base circuit
def _ext_targets(ext: dict) -> list[tuple[tuple, list]]:
    p = ("plasticity", "synapses")
    rule = p + ("rules", "dw")
    return [
        ((), [None, [], "x", 3, [1, 2]]),
        (("plasticity",), [None, [], "x", 3]),
        (("nodes",), [None, [], "x", 3]),
        (("metadata",), [None, [], "x", 3]),
        (("unknown",), [1, {}, None]),
        (p, [None, [], "x", 3, {}]),
        (p + ("pre",), [None, 3, [], "", "ghost", {}]),
        (p + ("post",), [None, 3, [], "", "ghost", "input", {}]),
        (p + ("rules",), [None, [], "x", {}, {"dz": {"target": "dz", "terms": []}}]),
        (rule, [None, [], "x", 3, {}]),
        (rule + ("target",), [None, 3, "dz", "dt", []]),
        (rule + ("terms",), [None, "x", {}, [None], [[1]], [{"coefficient": 1}] * 300]),
        (rule + ("terms", 0, "coefficient"), [None, "1", True, math.inf, math.nan, 1e308, [1]]),
        (
            rule + ("terms", 0, "factors"),
            [
                None,
                "x1",
                {},
                [{"symbol": "x9x"}],
                [{"symbol": None}],
                [{"symbol": "x1"}] * 40,
                [{"symbol": "x0", "offset": 1.0}],
            ],
        ),
        (rule + ("terms", 0, "factors", 0, "symbol"), [None, 3, "", "x 1", "sgn", [], "dw"]),
        (rule + ("terms", 0, "factors", 0, "sgn"), [1, "yes", None]),
        (p + ("traces",), [None, [], "x", 3, {"x9": {"impulse": 1, "tau": 1}}]),
        (p + ("traces", "x1"), [None, [], "activity", 3, {"impulse": 1}]),
        (p + ("traces", "x1", "impulse"), [None, "1", True, math.inf, math.nan, 1e308, []]),
        (p + ("traces", "x1", "tau"), [None, "1", True, -1, math.nan, []]),
        (p + ("traces", "x1", "activity"), [1, "yes", None]),
        (p + ("third_factor",), [None, [], "y2", 3, {"y2": None}, {"y2": "ghost"}, {"x1": "input"}, {"y2": 3}]),
        (p + ("t_epoch",), [None, 0, -1, 1.5, True, math.inf, 1e30, 2**40, "2", []]),
        (p + ("w_bounds",), [None, [], [1], [1, 0], [0, 0], [math.nan, 1], "x", [0, 1, 2], [True, 2], [-1e300, 0]]),
        (p + ("extra",), [1]),
    ]


def _set(ext, path: tuple, value):
    if not path:
        return value
    node = ext
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return ext


KEEP = object()  # a change function's answer: the attributes were changed directly, keep the JSON


def _with_extension(fx: Fixtures, name: str, change, source: Path | None = None) -> Path:
    path = fx.copy(source or fx.circuit_path, name)
    with h5py.File(path, "a") as f:
        group = f["neuro_hw"]
        ext = json.loads(group.attrs["extension"])
        ext = change(ext, group)
        if ext is not KEEP:
            group.attrs["extension"] = json.dumps(ext)
    return path


def case_ext_field(fx: Fixtures, rng: np.random.Generator) -> str:
    choice = rng.random()
    if choice < 0.15:  # format / version attributes
        key, values = ("format_version", [1.7, 2.0, 4, 0, -1, "2", [1, 1], b"2", True, 2**40])
        if rng.random() < 0.3:
            key, values = ("format", ["other", 2, b"x"])
        value = values[int(rng.integers(len(values)))]

        def change(ext, group):
            group.attrs[key] = value
            return KEEP

    elif choice < 0.22:  # the JSON text itself
        text = ["{", "[" * 100_000 + "]" * 100_000, "null", '"x"', "1e999", "", "{" * 50_000]
        value = text[int(rng.integers(len(text)))]

        def change(ext, group):
            group.attrs["extension"] = value
            return KEEP

    elif choice < 0.4:  # the graded nodes of the graded circuit
        path, values = pick(rng, GRADED_TARGETS)
        value = pick(rng, values)

        def change(ext, group):
            return _set(ext, path, value)

        return _load_and_use(_with_extension(fx, "ext.nir", change, fx.graded_path))
    else:
        targets = _ext_targets({})
        path, values = targets[int(rng.integers(len(targets)))]
        value = values[int(rng.integers(len(values)))]

        def change(ext, group):
            return _set(ext, path, value)

    return _load_and_use(_with_extension(fx, "ext.nir", change))


GRADED_TARGETS = [
    (("nodes", "h"), [None, [], "x", 3, {}]),
    (("nodes", "h", "type"), [None, 3, "Foo", "ProductNeuron", []]),
    (("nodes", "h", "shape"), [None, [], [0], [-1], [2**40], [4, 0], "ab", 2.5, [True], [5]]),
    (("nodes", "h", "activation"), [None, 3, "tanh", "", []]),
    (("nodes", "h", "clip"), [None, -1, 0, math.nan, "1", [], True]),
    (("nodes", "h", "extra"), [1]),
    (("nodes", "p", "gate_inputs"), [None, "hg", [3], ["ghost"], [], ["hg", "hg"], {}]),
    (("nodes", "p", "gate"), [None, 3, "tanh", []]),
    (("nodes", "p", "gate_clip"), [-1, math.nan, "x", None]),
    (("nodes", "ghost"), [{"type": "GradedNeuron", "shape": [2], "activation": "relu"}]),
    (("plasticity", "w2", "third_factor"), [{"e": "ghost"}, {"e": 3}, {"sgn": "err"}, {}, {"e": "x"}]),
    (("plasticity", "w2", "traces", "x1", "activity"), [1, "yes", None]),
    (("plasticity", "w2", "traces", "y1", "activity"), [True]),
]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def case_ext_random(fx: Fixtures, rng: np.random.Generator) -> str:
    def change(ext, group):
        for _ in range(int(rng.integers(1, 4))):
            paths = list(_paths(ext))
            path = paths[int(rng.integers(len(paths)))]
            if path and rng.random() < 0.2:
                parent = ext
                for key in path[:-1]:
                    parent = parent[key]
                del parent[path[-1]]
            else:
                value = HOSTILE[int(rng.integers(len(HOSTILE)))]
                if rng.random() < 0.3:
                    value = float(rng.normal()) * 10.0 ** int(rng.integers(-300, 300))
                ext = _set(ext, path, value)
        return ext

    return _load_and_use(_with_extension(fx, "extr.nir", change, fx.graded_path if rng.random() < 0.4 else None))


RULE_TOKENS = [
    "x0",
    "y0",
    "x1",
    "x2",
    "y1",
    "y2",
    "y3",
    "w",
    "t",
    "d",
    "u0",
    "u3",
    "u9",
    "u10",
    "e",
    "sgn(",
    "(",
    ")",
    "+",
    "-",
    "*",
    "^",
    "**",
    "=",
    "dw",
    "dt",
    "dd",
    "0",
    "1",
    "2",
    "0.5",
    "1e-3",
    "1e308",
    "1e-320",
    "2^-1074",
    "10",
    "1075",
    "99999",
    " ",
    "@",
    "\u00e9",
    "\x00",
    "1.",
    ".5",
    "e5",
]


def case_rule_random(fx: Fixtures, rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 30))
    text = "dw = " + "".join(RULE_TOKENS[int(k)] for k in rng.integers(len(RULE_TOKENS), size=n))

    def make():
        expr = neuro_hw.parse_rule(text, modulators=["e"])
        # an accepted rule must survive str() -> parse again unchanged, and the dict form too
        again = neuro_hw.parse_rule(str(expr), modulators=["e"])
        if again != expr:
            raise AssertionError(f"rule {text!r} reads back as {again} instead of {expr}")
        from neuro_hw.ir.rules import Expression

        if Expression.from_dict(json.loads(json.dumps(expr.to_dict()))) != expr:
            raise AssertionError(f"rule {text!r} changes in its dict form")

    return _call(make)


def case_rule_bad(fx: Fixtures, rng: np.random.Generator) -> str:
    k = int(rng.integers(1, 400))
    bad = [
        f"dw = 2^{1024 + k}*x1",
        f"dw = 10^{309 + k}*x1",
        f"dw = 0^-{k}*x1",
        f"dw = 2^-{1075 + k}*x1",
        f"dw = 1e-{324 + k}*x1",
        f"dw = 1e{309 + k}*x1",
        "dw = " + "*".join(["x1"] * (33 + k)),
        "dw = " + " + ".join(["x1"] * (257 + k)),
        "dw = " + "x1" * (5000 + k),
        f"dw = 1e-200*1e-{200 + k}*x1",
        f"dw = 1e200*1e{200 + k}*x1",
        "dw = ",
        "dw = x1 +",
        "dx = x1",
        "dw = x9",
        "dw = sgn(x0)",
        "dw = (x0 + 1)",
        "dw = u1*u2*x1",
        "dw = x1 x2",
        "= x1",
        "dw = 1e16*x1",
        f"dw = (x1 + 1e{16 + k % 200})",
        "dw = 2^99999999*x1",
        f"dw = 3^{k + 700}",
        "dw = e*x1",
        "dw = sgn(e)",
    ]
    text = bad[int(rng.integers(len(bad)))]
    return _call(neuro_hw.parse_rule, text)


def case_api(fx: Fixtures, rng: np.random.Generator) -> str:
    c, inp = fx.circuit, fx.inputs
    choice = int(rng.integers(36))
    sim = neuro_hw.simulate
    bad_weights = [
        {"synapses": np.full((2, 4), np.nan)}, {"synapses": np.zeros((3, 3))}, {"synapses": "x"},
        {"nobody": np.zeros((2, 4))}, {"synapses": np.zeros((5, 3, 4))}, {"synapses": np.full((2, 4), 1e300)},
        {"synapses": np.array([["a"] * 4] * 2)}, {"neurons": np.zeros((2, 4))},
    ]  # fmt: skip
    if choice == 34:
        return _call(sim, c, inp, 5, 1e-3, weights=pick(rng, bad_weights))
    if choice == 35:
        return _call(neuro_hw.run, fx.compiled(), inp, 5, weights=pick(rng, bad_weights))
    if choice == 0:
        return _call(sim, c, inp, pick(rng, [True, 0, -3, 1.5, "5", None, 2**70, np.float64(3)]), 1e-3)
    if choice == 1:
        return _call(sim, c, inp, 5, pick(rng, [True, 0, -1e-3, math.nan, math.inf, "1e-3", None]))
    if choice == 2:
        return _call(sim, c, inp, 5, 1e-3, seed=pick(rng, ["x", 2**70, -1, 1.5, True, None]))
    if choice == 3:
        return _call(sim, c, inp, 5, 1e-3, weights_every=pick(rng, [0, -1, 1.5, True, "2"]))
    if choice == 4:
        return _call(sim, c, {"input": np.full((5, 4), pick(rng, [np.nan, np.inf, -np.inf]))}, 5, 1e-3)
    if choice == 5:
        return _call(sim, c, {"input": np.zeros(pick(rng, [(5,), (5, 3), (2, 5, 5), (4, 4)]))}, 5, 1e-3)
    if choice == 6:
        return _call(sim, c, {"input": np.array([["a"] * 4] * 5)}, 5, 1e-3)
    if choice == 7:
        return _call(sim, c, inp, pick(rng, [10**12, 10**9]), 1e-3)
    if choice == 8:
        return _call(sim, c, None, int(rng.integers(10**6, 10**9)), 1e-3, batch=int(rng.integers(100, 1000)))
    if choice == 9:
        return _call(sim, c, inp, 5, 1e-3, record=pick(rng, ["nobody.v", "neurons.q", 3, ["x"]]))
    if choice == 10:
        return _call(sim, c, inp, 5, 1e-3, method=pick(rng, ["rk4", None, 1]))
    if choice == 11:
        return _call(sim, c, inp, 5, 1e-3, batch=pick(rng, [0, -1, True, 1.5, 2**40]))
    if choice == 12:
        return _call(sim, c, inp, 5, 1e-3, synaptic_delay=pick(rng, [2, -1, "1", None]))
    if choice == 13:
        return _call(neuro_hw.run, fx.compiled(), inp, 5, seed=pick(rng, [2**70, "x", -1, 1.5, [1, "x"]]))
    if choice == 14:
        return _call(neuro_hw.run, fx.compiled(), inp, 5, weights_every=pick(rng, [0, -1, 1.5, True]))
    if choice == 15:
        return _call(neuro_hw.run, fx.compiled(), inp, pick(rng, [0, -3, True, 1.5, 10**12]))
    if choice == 16:
        return _call(neuro_hw.compile, c, dt=pick(rng, [0, -1, math.nan, True, "x"]))
    if choice == 17:
        return _call(neuro_hw.compile, c, target=pick(rng, ["nochip", "/nonexistent.toml", 3]))
    if choice == 18:
        return _call(
            neuro_hw.Plasticity.create,
            "a",
            "b",
            "dw = x1",
            t_epoch=[1.5, 0, True, "2", 1e30, math.inf][int(rng.integers(6))],
        )
    if choice == 19:
        bounds = pick(rng, [(1, 0), (), (math.nan, 1), "ab", (0, 1, 2)])
        return _call(neuro_hw.Plasticity.create, "a", "b", "dw = x1", w_bounds=bounds)
    if choice == 20:
        return _call(
            neuro_hw.Plasticity.create,
            "a",
            "b",
            "dw = x1",
            traces={
                pick(rng, ["x9", "x1", "y1"]): [(1e308, 1), (1, -1), "zz", (1,), None, (math.nan, 1)][
                    int(rng.integers(6))
                ]
            },
        )
    if choice == 21:
        value = pick(rng, [1e308, -1e308, 1e20, math.nan, math.inf])
        nodes = dict(c.nodes)
        nodes["synapses"] = nir.Linear(np.full((2, 4), value))
        return _call(neuro_hw.Circuit, nodes, c.edges)
    if choice == 22:
        shape = pick(rng, [[2**32, 2**32], [0], [2**62, 8], [2**25]])
        nodes = {"input": nir.Input(np.array(shape)), "output": nir.Output(np.array(shape))}
        return _call(neuro_hw.Circuit, nodes, [("input", "output")])
    if choice == 23:
        nodes = {
            "input": nir.Input(np.array([2])),
            "a": nir.Scale(np.ones(2)),
            "b": nir.Scale(np.ones(2)),
            "output": nir.Output(np.array([2])),
        }
        return _call(neuro_hw.Circuit, nodes, [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    if choice == 24:
        sub = nir.NIRGraph(
            nodes={"x": nir.Input(np.array([2])), "o": nir.Output(np.array([2]))}, edges=[("x", "o")], type_check=False
        )
        g = nir.NIRGraph(nodes={"sub.x": nir.Input(np.array([3])), "sub": sub}, edges=[], type_check=False)
        return _call(neuro_hw.Circuit.from_nir, g)
    if choice == 25:
        metadata = pick(rng, [{1: 2}, {"a": {(1, 2): 3}}, {"a": object()}, {"a": [{2: 1}]}])
        circuit = neuro_hw.Circuit(c.nodes, c.edges, c.plasticity, metadata)
        return _call(neuro_hw.save, circuit, fx.root / "meta.nir")
    if choice == 26:
        impulse = pick(rng, [1e308, 1e16, -1e300])
        return _call(_fresh(fx).add_plasticity, "synapses", "dw = 0.01*x1*y0", traces={"x1": (impulse, 0.02)})
    if choice == 27:
        return _call(_fresh(fx).add_plasticity, "synapses", "dw = x1*y0", t_epoch=pick(rng, [1.5, 0, True]))
    if choice == 28:
        return _call(neuro_hw.Circuit, {}, [])
    if choice == 29:
        nodes = {
            "input": nir.Input(np.array([2])),
            "d": nir.Delay(np.full(2, pick(rng, [1e5, 2e3]))),
            "output": nir.Output(np.array([2])),
        }
        circuit = neuro_hw.Circuit(nodes, [("input", "d"), ("d", "output")])
        return _call(sim, circuit, {"input": np.zeros((5, 2))}, 5, 1e-3)
    if choice == 30:
        return _call(neuro_hw.parse_rule, pick(rng, [None, 3, b"dw = x1", ["dw = x1"]]))
    if choice == 31:
        return _call(
            _fresh(fx).add_plasticity,
            "synapses",
            pick(rng, [[("x", "x1")], [(1.0, 3)], [None]]),
            pre="input",
            post="neurons",
        )
    if choice == 32:
        from neuro_hw.ir.rules import as_expression

        return _call(as_expression, pick(rng, [[(math.inf, "x1")], [(1e300, "x1")], [("1", None)]]), target="dw")
    nodes = dict(c.nodes)
    nodes["neurons"] = nir.LIF(
        tau=np.full(2, 0.02), r=np.full(2, 1e308), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2)
    )
    return _call(neuro_hw.Circuit, nodes, c.edges)


def pick(rng: np.random.Generator, options: list):
    """One of ``options``, chosen by ``rng``."""
    return options[int(rng.integers(len(options)))]


def _fresh(fx: Fixtures) -> neuro_hw.Circuit:
    return neuro_hw.Circuit(fx.circuit.nodes, fx.circuit.edges)


def _result_with(fx: Fixtures, name: str, change) -> Path:
    path = fx.copy(fx.result_path, name)
    with h5py.File(path, "a") as f:
        meta = json.loads(f.attrs["meta"])
        meta = change(f, meta)
        if meta is not None:
            f.attrs["meta"] = json.dumps(meta)
    return path


def _bad_result_change(rng: np.random.Generator):
    choice = int(rng.integers(16))
    key = ["dt", "steps", "batch", "seed", "backend", "circuit_hash", "target", "versions", "metadata"][
        int(rng.integers(9))
    ]
    bad = {
        "dt": [-1, 0, math.nan, math.inf, True, "1e-3", None],
        "steps": [0, -1, "20", 1.5, True, 19, 21, None],
        "batch": [0, 2, True, "1", None],
        "seed": ["x", 1.5, None, {}, True],
        "backend": [None, 3, []],
        "circuit_hash": [None, 3],
        "target": [None, 3, {}],
        "versions": [None, [], "x", {"a": 3}],
        "metadata": [None, [], "x", 3],
    }

    def change(f, meta):
        if choice < 7:
            meta[key] = bad[key][int(rng.integers(len(bad[key])))]
            return meta
        if choice == 7:
            del meta[key]
            return meta
        if choice == 8:
            meta["extra"] = 1
            return meta
        if choice == 9:
            del f["spikes/neurons"]
            f["spikes/neurons"] = pick(
                rng,
                [
                    np.zeros((1, 20)),
                    np.zeros((1, 19, 2), bool),
                    np.zeros((2, 20, 2), bool),
                    np.array([[["ab", "cd"]] * 20]),
                    np.full((1, 20, 2), np.nan),
                ],
            )
            return meta
        if choice == 10:
            del f["spikes/neurons"]
            f.create_dataset("spikes/neurons", shape=(10**9, 20, 3), dtype=bool, chunks=(1, 20, 3))
            return meta
        if choice == 11:
            k = next(iter(f["weights"]))
            del f["weights"][k]
            f["weights"][k] = pick(rng, [np.zeros(3), np.zeros((1, 22, 2)), np.full((1, 22, 2, 4), np.inf)])
            return meta
        if choice == 12:
            k = next(iter(f["weight_steps"]))
            del f["weight_steps"][k]
            f["weight_steps"][k] = pick(
                rng, [np.arange(3), np.arange(22) * 5, np.arange(22)[::-1].copy(), np.zeros(22) + 0.5]
            )
            return meta
        if choice == 13:
            del f[pick(rng, ["spikes", "states", "weights", "weight_steps"])]
            return meta
        if choice == 14:
            f.attrs[pick(rng, ["format", "format_version"])] = pick(rng, ["x", 99, 1.5, -1])
            return None
        f.attrs["meta"] = pick(rng, ["{", "[]", "null", "[" * 100_000])
        return None

    return change


def case_result_file(fx: Fixtures, rng: np.random.Generator) -> str:
    path = _result_with(fx, "bad_result.h5", _bad_result_change(rng))
    return _call(Result.load, path)


def case_result_bytes(fx: Fixtures, rng: np.random.Generator) -> str:
    data = bytearray(fx.result_path.read_bytes())
    offsets = _heap_objects(bytes(data))
    if offsets and rng.random() < 0.3:
        k = offsets[int(rng.integers(len(offsets)))]
        data[k : k + 8] = int(rng.choice([0, 255, 2**40, int(rng.integers(512))])).to_bytes(8, "little")
    else:
        for _ in range(int(rng.integers(1, 6))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
    path = fx.root / "bytes_result.h5"
    path.write_bytes(bytes(data))
    try:
        loaded = Result.load(path)
        loaded.summary()
    except NeuroHWError:
        return "error"
    return "ok"


def case_golden(fx: Fixtures, rng: np.random.Generator) -> str:
    from neuro_hw.testing.golden import check_golden

    choice = int(rng.integers(4))
    if choice == 0:  # a corrupt golden file
        path = _result_with(fx, "golden.h5", _bad_result_change(rng))
    elif choice == 1:  # a golden missing a population's spikes / a state / weights
        group = pick(rng, ["spikes", "states", "weights"])

        def change(f, meta):
            key = next(iter(f[group]))
            del f[group][key]
            if group == "weights":
                del f["weight_steps"][key]
            return meta

        path = _result_with(fx, "golden.h5", change)
    elif choice == 2:  # a golden covering fewer steps / another batch
        short = neuro_hw.simulate(fx.circuit, fx.inputs, STEPS - int(rng.integers(1, 10)), 1e-3, record="all")
        path = short.save(fx.root / "golden.h5")
    else:  # a golden of another run (different weights)
        nodes = dict(fx.circuit.nodes)
        nodes["synapses"] = nir.Linear(np.asarray(nodes["synapses"].weight) * 1.5)
        other = neuro_hw.Circuit(nodes, fx.circuit.edges)
        other_result = neuro_hw.simulate(other, fx.inputs, STEPS, 1e-3, record="all")
        other_result.circuit_hash = fx.result.circuit_hash  # pretends to be this circuit's golden
        path = other_result.save(fx.root / "golden.h5")
    try:
        check_golden(fx.result, path)
    except (NeuroHWError, AssertionError):
        return "error"
    return "ok"


def run_cli(argv: list[str]) -> str:
    """Run the CLI in this process; ``error`` = exit status 2 with one paragraph on stderr and no traceback."""
    from neuro_hw.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage error
            code = exc.code
    text = err.getvalue()
    if "Traceback" in text or code not in (0, 1, 2):
        raise AssertionError(f"CLI {argv} exited with {code} and printed: {text[-500:]}")
    if code == 2:
        if not text.strip() or text.strip().count("\n\n"):
            raise AssertionError(f"CLI {argv} refused without one clear paragraph: {text!r}")
        return "error"
    return "ok"


def case_cli(fx: Fixtures, rng: np.random.Generator) -> str:
    root = fx.root
    c, inp = str(fx.circuit_path), f"input={root / 'input.npy'}"
    fifo = root / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    (root / "text.nir").write_text("not hdf5")
    bad_circuits = [str(root / "missing.nir"), str(root), str(fifo), str(root / "text.nir"), str(fx.result_path)]
    bad = [
        ["info", bad_circuits[int(rng.integers(len(bad_circuits)))]],
        ["simulate", c, "--steps", pick(rng, ["-3", "0", "x", "1e12", "10000000000000"]), "--dt", "1e-3"],
        ["simulate", c, "--steps", "5", "--dt", pick(rng, ["0", "-1", "nan", "inf", "x"]), "--input", inp],
        [
            "simulate",
            c,
            "--steps",
            "5",
            "--dt",
            "1e-3",
            "--input",
            [
                "input",
                "=x",
                f"nobody={root / 'input.npy'}",
                f"input={root / 'missing.npy'}",
                f"input={fx.result_path}",
                f"input={fifo}",
                f"input={root}",
            ][int(rng.integers(5))],
        ],
        [
            "simulate",
            c,
            "--steps",
            "5",
            "--dt",
            "1e-3",
            "--input",
            inp,
            "--out",
            [str(root), str(fx.circuit_path / "x"), str(fifo)][int(rng.integers(3))],
        ],
        ["simulate", c, "--steps", "5", "--dt", "1e-3", "--input", inp, "--seed", pick(rng, ["-1", str(2**70)])],
        [
            "simulate",
            c,
            "--steps",
            "5",
            "--dt",
            "1e-3",
            "--input",
            inp,
            "--record",
            ["nobody.v", "neurons.zz"][int(rng.integers(2))],
        ],
        [
            "compile",
            c,
            "--report",
            [str(root / "missing_dir" / "r.json"), str(root), str(fx.circuit_path / "r.json")][int(rng.integers(3))],
        ],
        ["compile", c, "--dt", pick(rng, ["0", "-1", "nan"])],
        ["compile", c, "--target", pick(rng, ["nochip", str(root / "missing.toml"), str(fx.circuit_path)])],
        ["compile", c, "--input-range", pick(rng, ["x", "input=abc", "=3"])],
        ["check", c, "--steps", pick(rng, ["-3", "0"]), "--backends", "emulator"],
        ["check", c, "--steps", "5", "--rate", pick(rng, ["-0.5", "2", "nan"]), "--backends", "emulator"],
        ["check", c, "--steps", "5", "--seed", pick(rng, ["-1", str(2**40)]), "--backends", "emulator"],
        ["check", bad_circuits[int(rng.integers(len(bad_circuits)))], "--steps", "5", "--backends", "emulator"],
        ["sweep", pick(rng, [str(root / "missing.toml"), str(fx.circuit_path), str(root)])],
    ]
    argv = bad[int(rng.integers(len(bad)))]
    before = set(os.listdir(root)) | set(os.listdir("."))
    outcome = run_cli(argv)
    leftovers = sorted(n for n in (set(os.listdir(root)) | set(os.listdir("."))) - before if n.endswith(".tmp"))
    if leftovers:
        raise AssertionError(f"CLI {argv} left temporary files {leftovers}")
    return outcome


def case_paths(fx: Fixtures, rng: np.random.Generator) -> str:
    root = fx.root
    fifo = root / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    targets = [root, root / "missing" / "x.nir", fx.circuit_path / "x.nir", fifo]
    target = targets[int(rng.integers(len(targets)))]
    choice = int(rng.integers(4))
    before = set(os.listdir(root))
    if choice == 0:
        outcome = _call(neuro_hw.save, fx.circuit, target)
    elif choice == 1:
        target = pick(rng, [root, fx.circuit_path / "x.h5", fifo])
        outcome = _call(fx.result.save, target)
    elif choice == 2:
        outcome = _call(neuro_hw.load, pick(rng, [fifo, root, root / "missing.nir", Path("/dev/null")]))
    else:
        outcome = _call(Result.load, pick(rng, [fifo, root, root / "missing.h5", Path("/dev/zero")]))
    leftovers = sorted(n for n in set(os.listdir(root)) - before if n.endswith(".tmp"))
    if leftovers:
        raise AssertionError(f"left temporary files {leftovers}")
    return outcome


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}
assert set(CASES) == set(FAMILIES), sorted(set(CASES) ^ set(FAMILIES))


def run_case(fx: Fixtures, family: str, seed: int) -> str:
    """Build and run case ``(family, seed)``: ``"error"`` or ``"ok"``; other exceptions propagate (crashes)."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    return CASES[family](fx, rng)
