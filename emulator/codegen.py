"""Load generated numba source as a module whose compiled functions numba caches on disk.

numba's on-disk cache (``cache=True``) keys a function by its source file, so generated code must live
in a real file: :func:`load_generated` writes the source once per distinct text into
``$NEURO_HW_CACHE/kernels`` (or ``~/.cache/neuro_hw/kernels``, else a per-user temporary directory) as
``<prefix>_<sha256>.py`` and imports it.  A second process (or run) with the same source finds the file
unchanged and numba reuses its compiled functions instead of compiling them again.  :func:`compile_lock` lets
one process compile a module's functions while the others wait and then load them (Dask workers, pytest-xdist
workers and a demo's processes need the same kernels at the same time; compiling is single-threaded and takes
tens of seconds for a large circuit).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

_loaded: dict[str, ModuleType] = {}


def cache_dir() -> Path:
    """The writable directory for generated kernel modules (created if needed)."""
    candidates = [os.environ.get("NEURO_HW_CACHE"), str(Path.home() / ".cache" / "neuro_hw")]
    for c in candidates:
        if not c:
            continue
        path = Path(c) / "kernels"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    path = Path(tempfile.gettempdir()) / f"neuro_hw_kernels_{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_generated(source: str, prefix: str) -> ModuleType:
    """The module of ``source``, written to :func:`cache_dir` as ``<prefix>_<hash>.py``; imported once per process."""
    key = f"{prefix}_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    if key in _loaded:
        return _loaded[key]
    path = cache_dir() / f"{key}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        try:  # created once, atomically: a rewrite would change the file's time stamp, which numba's cache of
            os.link(tmp, path)  # the module is keyed on, so a process loading it would compile it again
        except FileExistsError:
            if path.read_text() != source:  # not what another process wrote: a damaged entry
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    name = f"neuro_hw_generated_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[key] = module
    return module


@contextlib.contextmanager
def compile_lock(module: ModuleType) -> Iterator[None]:
    """Hold an exclusive lock on ``module``'s cache entry (``<file>.lock``, ``flock``) while the first call of its
    functions compiles them (or loads them from numba's disk cache): another process that needs the same kernel
    waits here and then finds it compiled.  Released when the process dies, so a killed compile blocks nobody."""
    path = Path(module.__file__ or "").with_suffix(".lock")
    try:  # read-only is enough for flock (a cache shared by several users may hold another user's lock file)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:  # no lock file possible here: compile without coordinating
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def recursion_headroom(limit: int = 50_000) -> Iterator[None]:
    """Python's recursion limit raised to ``limit`` while a generated function compiles (restored afterwards).

    numba's SSA pass recurses deeper the larger the function; the step kernels of the seed circuits (24-25
    populations, 36-44 connections) compile within the default limit of 1000 since they call their kernels instead
    of inlining them (measured), but a generated function keeps growing with the circuit's nodes."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
