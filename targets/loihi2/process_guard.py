"""Run a Python module in its own process group and never leave processes behind.

Lava starts one OS process per Lava process (plus a shared-memory manager and runtime services),
forked from whatever process calls ``run()``.  If that caller dies or is interrupted, the workers
stay blocked on semaphores forever and keep their shared-memory segments alive
(``docs/lava-semantics.md`` §9 #3-4).  This module contains the host-side guard used by
the Lava backend:

* :func:`run_guarded` starts ``python -m <module> <workdir>`` with ``start_new_session=True``, so the
  child and everything it forks live in a fresh process group (pgid = child pid).  Whatever
  happens in the parent -- normal return, exception, ``KeyboardInterrupt``, timeout -- the
  ``finally`` clause SIGKILLs the whole group **before** the child is reaped (so its pid, and with
  it the pgid, cannot have been reused), reaps the child and unlinks every POSIX shared-memory
  segment the child recorded in ``<workdir>/shm_names.txt``.
* :func:`install_child_guards` is called by the child: it records Lava's shared-memory segments,
  asks the kernel to send it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), and turns SIGTERM
  into "unlink my segments (and, if the parent is gone, the work directory), then SIGKILL my whole
  process group".
* :func:`reap_group` is that ``finally`` clause on its own (also used by the persistent session of
  :mod:`.lava_session`, which keeps its worker alive between commands).
* :func:`group_members` lists live processes of a process group (used by tests).

The guard imposes no time limit unless the caller passes ``timeout``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SHM_NAMES_FILE = "shm_names.txt"
LOG_FILE = "worker.log"


@dataclass
class GuardedRun:
    """Outcome of :func:`run_guarded`.

    Attributes
    ----------
    pid:
        Pid of the child, which is also the process-group id of everything it started.
    returncode:
        Exit status as reported by :class:`subprocess.Popen` (negative = killed by that signal).
    timed_out:
        True when the child was killed because ``timeout`` expired.
    aborted:
        True when the child was killed because it reported an error in ``error_dir`` and did not
        exit within the grace period.
    log:
        Combined stdout/stderr of the child (and of the Lava workers it forked).
    seconds:
        Wall-clock time from start to exit.
    """

    pid: int
    returncode: int
    timed_out: bool
    aborted: bool
    log: str
    seconds: float


def exited_without_reaping(pid: int, block: bool) -> bool:
    """True if ``pid`` has exited; the zombie is left in place (``WNOWAIT``) so its pid stays reserved."""
    flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
    try:
        info = os.waitid(os.P_PID, pid, flags)
    except ChildProcessError:
        return True
    return info is not None


_exited_without_reaping = exited_without_reaping  # former private name


def _state(pid: int) -> str | None:
    """Process state letter from ``/proc/<pid>/stat`` (``None`` if there is no such process)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def _has_files(directory: str | os.PathLike) -> bool:
    try:
        with os.scandir(directory) as it:
            return any(True for _ in it)
    except FileNotFoundError:
        return False


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to every process of group ``pgid``; a group that no longer exists is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def unlink_recorded_shm(workdir: str | os.PathLike) -> list[str]:
    """Unlink the POSIX shared-memory segments listed in ``<workdir>/shm_names.txt``.

    Returns the names that still existed (i.e. had leaked) and were removed.
    """
    path = Path(workdir) / SHM_NAMES_FILE
    removed: list[str] = []
    if not path.exists():
        return removed
    for name in path.read_text().split():
        name = name.lstrip("/")
        if not name or "/" in name:
            continue
        seg = Path("/dev/shm") / name
        try:
            seg.unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError:
            pass
    return removed


def _process_table() -> list[tuple[int, str, int, int]]:
    """``(pid, state, ppid, pgrp)`` of every process, from ``/proc/<pid>/stat`` (Linux)."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces/parentheses: split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        table.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return table


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes whose process group is ``pgid`` (Linux ``/proc``)."""
    return [pid for pid, state, _, pgrp in _process_table() if pgrp == pgid and state != "Z"]


def child_pids(pid: int | None = None) -> list[int]:
    """Pids of the live direct children of ``pid`` (default: this process), from ``/proc``."""
    pid = os.getpid() if pid is None else pid
    return [child for child, state, ppid, _ in _process_table() if ppid == pid and state != "Z"]


def reap_group(proc: subprocess.Popen, workdir: str | os.PathLike | None = None) -> int:
    """SIGKILL the process group led by ``proc`` (started with ``start_new_session=True``), reap ``proc``.

    The group is killed **before** ``proc`` is reaped: until then its pid -- the group id -- cannot have
    been reused.  Lava workers that were mid-exit may hold the group for a moment, so the kill is repeated
    until :func:`group_members` is empty (for at most about a second).  Then the shared-memory segments
    recorded in ``workdir`` are unlinked.  Call it once per process: once ``proc`` is reaped and its
    group is empty, the pid may be reused.  Returns ``proc``'s exit status.
    """
    kill_group(proc.pid)
    returncode = proc.wait()
    for _ in range(100):
        if not group_members(proc.pid):
            break
        kill_group(proc.pid)
        time.sleep(0.01)
    if workdir is not None:
        unlink_recorded_shm(workdir)
    return returncode


def run_guarded(
    module: str,
    workdir: str | os.PathLike,
    *,
    timeout: float | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    error_dir: str | os.PathLike | None = None,
    error_grace: float = 2.0,
) -> GuardedRun:
    """Run ``python -m module workdir`` in a new session; kill its whole process group at the end.

    Parameters
    ----------
    module:
        Importable module name with a ``__main__`` entry.
    workdir:
        Directory shared with the child (spec in, results/log/shm list out).
    timeout:
        Seconds after which the child and its group are killed (``None`` = wait forever).
    extra_args:
        Further command-line arguments.
    env:
        Environment of the child (default: inherited).
    error_dir:
        A directory in which the child's code reports fatal errors by creating files.  Once a file
        appears there, the child gets ``error_grace`` seconds to finish on its own; then its group is
        killed (``GuardedRun.aborted``).  Needed because a Lava process model that raises before
        sending on its ports leaves the other Lava processes -- and ``run()`` -- blocked forever.
    error_grace:
        Seconds granted after an error report (see ``error_dir``).

    Returns
    -------
    GuardedRun
        Always returned for a finished or timed-out child; exceptions in the parent (e.g.
        ``KeyboardInterrupt``) propagate after the group has been killed and cleaned up.
    """
    workdir = Path(workdir)
    log_path = workdir / LOG_FILE
    t0 = time.perf_counter()
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(workdir), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    aborted = False
    try:
        if timeout is None and error_dir is None:
            exited_without_reaping(proc.pid, block=True)
        else:
            deadline = None if timeout is None else t0 + timeout
            error_seen_at: float | None = None
            while not exited_without_reaping(proc.pid, block=False):
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    timed_out = True
                    break
                if error_dir is not None:
                    if error_seen_at is None:
                        if _has_files(error_dir):
                            error_seen_at = now
                    elif now - error_seen_at >= error_grace:
                        aborted = True
                        break
                time.sleep(0.005)
    finally:
        returncode = reap_group(proc, workdir)
    seconds = time.perf_counter() - t0
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return GuardedRun(
        pid=proc.pid, returncode=returncode, timed_out=timed_out, aborted=aborted, log=log_text, seconds=seconds
    )


# --------------------------------------------------------------------------------------------------
# child side
# --------------------------------------------------------------------------------------------------
def _record_shm_creation(workdir: Path) -> None:
    """Patch Lava's SharedMemoryManager so every created segment name is appended to a file."""
    from lava.magma.runtime.message_infrastructure import shared_memory_manager as smm_mod

    names_path = workdir / SHM_NAMES_FILE
    original = smm_mod.SharedMemoryManager.create_shared_memory
    if getattr(original, "_neuro_hw_recording", False):
        return

    def create_shared_memory(self, size: int):  # type: ignore[no-untyped-def]
        handle = original(self, size)
        with open(names_path, "a") as f:
            f.write(handle.name + "\n")
        return handle

    create_shared_memory._neuro_hw_recording = True  # type: ignore[attr-defined]
    smm_mod.SharedMemoryManager.create_shared_memory = create_shared_memory  # type: ignore[method-assign]


def hard_exit_group(workdir: str | os.PathLike) -> None:
    """Unlink the recorded shared memory, then SIGKILL this process's whole group (incl. itself)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # best effort before dying
        pass
    unlink_recorded_shm(workdir)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def install_child_guards(workdir: str | os.PathLike, parent_pid: int) -> None:
    """Child-side protection: shm bookkeeping, die with the parent, SIGTERM kills the whole group.

    Must be called in the child before Lava creates any process.
    """
    workdir = Path(workdir)
    _record_shm_creation(workdir)

    def orphaned_exit() -> None:
        # the parent is gone and will not read or delete the work directory: remove it too
        unlink_recorded_shm(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        hard_exit_group(workdir)

    def parent_gone(wait: float) -> bool:
        # PR_SET_PDEATHSIG fires when the parent *thread* exits, which can be visible before the
        # parent process is reparented away: poll briefly for the reparenting or the zombie.
        deadline = time.monotonic() + wait
        while True:
            if os.getppid() != parent_pid or _state(parent_pid) in ("Z", "X", None):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    me = os.getpid()

    def on_term(signum, frame):  # type: ignore[no-untyped-def]
        # (the handler is inherited by Lava's forked workers; only the worker itself has our parent)
        if os.getpid() == me and parent_gone(wait=1.0):
            orphaned_exit()
        hard_exit_group(workdir)

    signal.signal(signal.SIGTERM, on_term)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # parent already gone before the death signal was armed
        orphaned_exit()
