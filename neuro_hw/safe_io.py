"""File safety shared by every reader and writer: regular files only, reads that cannot hang or exhaust memory,
and output paths checked before anything is written.

**Why a child process.**  A single changed byte in an HDF5 file (e.g. the size of a global-heap object, where
variable-length strings such as NIR's edge list live) can make the HDF5 C library loop forever or crash; a loop
inside C code cannot be interrupted from Python (signals are handled only between bytecodes) and checking the
HDF5 structure ourselves would mean re-implementing the format.  So :func:`guarded_read` first runs the whole
reader in a forked child with a wall-clock limit, a CPU-time limit and an address-space limit
(:data:`~neuro_hw.limits.READ_TIMEOUT_S`, :data:`~neuro_hw.limits.READ_MEMORY_BYTES`); only when the child
finished does the calling process read the file itself (the same deterministic library on the same bytes then
terminates too).  A child that times out is killed and the file is refused as corrupt; a child killed by a
signal (a crash inside HDF5) or out of memory is refused likewise; an error the reader raised in the child is
raised again in the caller with its file, node and field.  Cost: one ``fork`` + one extra read, about twice an
unguarded read (docs/limits.md).  On platforms without ``fork`` (or with ``NEURO_HW_UNGUARDED_READ=1``) the file
is read directly.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from neuro_hw import limits
from neuro_hw.errors import CircuitFileError, NeuroHWError

try:  # imported here, not in the forked child: another thread may hold the import lock at fork time
    import resource
except ImportError:  # pragma: no cover - no fork there either
    resource = None

T = TypeVar("T")


def check_readable_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Refuse a missing path, a directory, a FIFO, a device or a socket (reading one blocks or never ends)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        reason = "no such file" if what == "circuit file" else f"no such {what}"
        raise CircuitFileError(reason, file=str(path)) from None
    except OSError as err:
        raise CircuitFileError(f"cannot access the {what} ({err.strerror or err})", file=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise CircuitFileError(f"is a directory, not a {what}", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise CircuitFileError(f"is {kind}, not a regular {what} (reading it could block forever)", file=str(path))
    if not os.access(path, os.R_OK):
        raise CircuitFileError(f"the {what} is not readable (permission denied)", file=str(path))
    return path


def check_output_path(path: str | os.PathLike, what: str = "file", *, make_parents: bool = False) -> Path:
    """Check that ``path`` can be written atomically (temporary file in the same folder, then rename).

    Refuses a path that is a directory, whose folder is missing (unless ``make_parents``) or is not a folder,
    or is not writable -- before anything is computed or written.
    """
    path = Path(path)
    if path.is_dir():
        raise CircuitFileError(f"is a directory; give a {what} name inside it", file=str(path))
    parent = path.parent
    if make_parents and not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CircuitFileError(f"cannot create the folder ({err.strerror or err})", file=str(path)) from None
    if not parent.exists():
        raise CircuitFileError(f"the folder to write the {what} into does not exist", file=str(path))
    if not parent.is_dir():
        raise CircuitFileError(f"'{parent}' is not a folder", file=str(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CircuitFileError("the folder is not writable (permission denied)", file=str(path))
    if path.exists() and not path.is_file():
        raise CircuitFileError(f"exists and is not a regular file; refusing to replace it with a {what}",
                               file=str(path))  # fmt: skip
    return path


def check_json_keys(value, file: str, where: str = "metadata") -> None:
    """Metadata must survive a JSON round trip unchanged: string keys only (``{1: 2}`` would read back as
    ``{"1": 2}``); call after ``json.dumps`` succeeded (which refuses cycles)."""
    from neuro_hw.errors import ValidationError

    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"metadata keys must be strings (JSON turns {key!r} into {str(key)!r}); "
                                      f"found {key!r} in {where}", file=file, field="metadata")  # fmt: skip
            check_json_keys(item, file, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json_keys(item, file, f"{where}[{i}]")


def _timeout_for(path: Path) -> float:
    try:
        mb = os.stat(path).st_size / 1e6
    except OSError:
        mb = 0.0
    return limits.READ_TIMEOUT_S + limits.READ_SECONDS_PER_MB * mb


def _vm_bytes() -> int:
    """Current address-space size of this process (Linux ``/proc``), or 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child(write_fd: int, reader: Callable[[Path], object], path: Path, seconds: float) -> None:  # pragma: no cover
    """Body of the forked child: run ``reader`` under limits, report the outcome on ``write_fd``, ``_exit``."""
    status = 0
    try:
        cpu = int(seconds) + 2  # the parent kills on wall time; this stops an orphan that loops in C
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        vm = _vm_bytes()
        if vm:
            cap = vm + limits.READ_MEMORY_BYTES
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard == resource.RLIM_INFINITY or cap < hard:
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        try:
            value = reader(path)
            try:
                outcome: tuple = ("ok", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception:  # noqa: BLE001 - not picklable: the parent reads again
                outcome = ("ok",)
        except NeuroHWError as err:
            outcome = ("error", type(err).__name__, err.reason, err.file, err.node, err.field)
        except MemoryError:
            outcome = ("memory",)
        except RecursionError:
            outcome = ("recursion",)
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which reads again to raise it
            outcome = ("exception", type(err).__name__, str(err)[:500])
        data = pickle.dumps(outcome)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # noqa: BLE001
        status = 3
    finally:
        os._exit(status)


#: Files this process wrote (``save``, ``Result.save``), by real path -> fingerprint when written.
_WRITTEN: dict[str, tuple] = {}


def _fingerprint(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def trust_written_file(path: str | os.PathLike) -> None:
    """Record that this process has just written ``path`` with h5py (after the rename): reading it back unchanged
    needs no guard.  Any later change of the file (its size, mtime or ctime, to the nanosecond) voids this."""
    if len(_WRITTEN) > 10_000:
        _WRITTEN.clear()
    _WRITTEN[os.path.realpath(path)] = _fingerprint(Path(path))


def guarded_read(path: str | os.PathLike, reader: Callable[[Path], T], what: str = "file") -> T:
    """``reader(path)``, after a trial run of it in a child process proved that it terminates (module doc).

    A file this process wrote itself and that has not changed since (:func:`trust_written_file`) is read directly:
    the guard costs a ``fork`` (10-20 ms, more in a large process), which save/load round trips need not pay."""
    path = check_readable_file(path, what)
    if not hasattr(os, "fork") or os.environ.get("NEURO_HW_UNGUARDED_READ") == "1":
        return reader(path)
    known = _WRITTEN.get(os.path.realpath(path))
    if known is not None and known == _fingerprint(path):
        return reader(path)
    seconds = _timeout_for(path)
    try:
        import h5py._objects

        phil = h5py._objects.phil  # no other thread may hold h5py's lock while we fork (the child would deadlock)
    except (ImportError, AttributeError):  # pragma: no cover
        phil = None
    read_fd, write_fd = os.pipe()
    try:
        if phil is not None:
            with phil:
                pid = os.fork()
        else:  # pragma: no cover
            pid = os.fork()
    except OSError:  # pragma: no cover - cannot fork (process limit): read directly
        os.close(read_fd)
        os.close(write_fd)
        return reader(path)
    if pid == 0:  # pragma: no cover - child
        os.close(read_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _child(write_fd, reader, path, seconds)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + seconds
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover
                pass
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise CircuitFileError(
            f"reading did not finish within {seconds:.0f} s (the HDF5 library loops on this file: it is corrupt; "
            f"limit {limits.limit_name('READ_TIMEOUT_S')})",
            file=str(path),
        )
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        reason = (
            "reading needed more than the CPU time limit"
            if sig == getattr(signal, "SIGXCPU", -1)
            else f"the HDF5 library crashed (signal {signal.Signals(sig).name}) reading it: the file is corrupt"
        )
        raise CircuitFileError(reason, file=str(path))
    try:
        outcome = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - the child died before reporting
        raise CircuitFileError(f"the reader process failed (exit status {status}): the file is corrupt",
                               file=str(path)) from None  # fmt: skip
    kind = outcome[0]
    if kind == "error":
        import neuro_hw.errors as errors

        cls = getattr(errors, outcome[1], None)
        if not (isinstance(cls, type) and issubclass(cls, NeuroHWError)):
            cls = CircuitFileError
        _, _, reason, file, node, field = outcome
        try:
            err = cls(reason, file=file, node=node, field=field)
        except TypeError:  # an error class with another signature (RuleSyntaxError): its base class
            err = next(c for c in cls.__mro__ if c.__init__ is NeuroHWError.__init__)(
                reason, file=file, node=node, field=field
            )
        raise err
    if kind == "memory":
        raise CircuitFileError(
            f"reading needs more memory than allowed ({limits.limit_name('READ_MEMORY_BYTES')}); the file is "
            "corrupt or its datasets are larger than the limits",
            file=str(path),
        )
    if kind == "recursion":
        raise CircuitFileError("the file's structure is nested too deeply (a cycle of links?)", file=str(path))
    if kind == "ok" and len(outcome) == 2:
        return pickle.loads(outcome[1])
    # an unexpected exception (or an unpicklable value): read here, which raises the same exception for the caller
    return reader(path)
