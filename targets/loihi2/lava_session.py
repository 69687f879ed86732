"""A persistent Lava run driven chunk by chunk: closed-loop host I/O on ``Loihi2SimCfg(select_tag="fixed_pt")``.

``LavaSession(program, seed=s).step(payloads, steps)`` advances one long single-trial Lava run by
``steps`` steps with the given integer payloads and returns a :class:`~neuro_hw.result.Result` for just
those steps, in the format and with the values of :class:`neuro_hw.emulator.EmulatorSession` (which is
bit-exact with Lava): a chunked run equals one long run of :func:`.lava_backend.run_program_lava`.
Unlike the emulator session it does not re-run history: the Lava network is built and compiled once
(about 1 s per connected component) and each chunk costs only its own steps plus roughly 10 ms per run
command.

Design
------
* **One long-lived worker** (``python -m neuro_hw.targets.loihi2.lava_session_worker <workdir> <cmd_fd>
  <reply_fd>``) is started in ``__init__`` with ``start_new_session=True`` (its own process group; pgid =
  its pid) and calls :func:`.process_guard.install_child_guards` (it dies with this process).  It builds
  the network ONCE: one Lava network (and runtime) per connected component of the program
  (:func:`.lowering.components`; components cannot interact, so this is exact), with the one-shot
  backend's processes (:func:`.lowering.build_component`) except for the inputs, which are
  :class:`~.lava_session_worker.ChunkSource` processes instead of ``RingBuffer``.  It calls
  ``create_runtime`` once per component and then serves commands.
* **Inputs**: each input ``name`` has a ``(C, n)`` int32 file (``C = capacity``); the ``ChunkSource``
  model sends row ``(k - 1) % C`` at step ``k`` (as ``RingBuffer`` sends column ``(k - 1) % T``).  The
  session writes the payloads of steps ``k`` into rows ``(k - 1) % C`` *before* sending the run
  command.  A chunk longer than ``C`` is split into several run commands of at most ``C`` steps.
* **Recording**: the one-shot backend's recording models (:mod:`.recording`) in ring-buffer mode
  (``"ring": C``): per-step arrays (spikes, ``u``, ``v``, traces) have ``C`` rows, step ``k`` in row
  ``(k - 1) % C``; plastic ``w``/``t``/``d`` have ``C + 1`` rows, row 0 the effective initial values,
  the values after step ``k`` in row ``1 + (k - 1) % C``; static weights one row (written at step 1).
  After each run command the session copies the rows of that command's steps (at most ``C``, so none
  has been overwritten).  All files live in a private work directory (``/dev/shm`` when available).

Protocol
--------
JSON lines over two dedicated pipes (fds passed to the worker, never stdout/stderr: the worker's and
Lava's output go to ``<workdir>/worker.log``; the Lava processes close the pipe ends right after they
are forked, so EOF on the reply pipe means the worker is gone)::

    worker -> session   {"status": "ready", "pid": P, "timings": {...}}        once, after create_runtime
    session -> worker   {"cmd": "run", "steps": N}                            N <= C
    worker -> session   {"status": "done", "time_step": t, "run_s": s}        t = steps run so far
    session -> worker   {"cmd": "stop"}
    worker -> session   {"status": "stopped", "time_step": t}                 then the worker exits 0
    worker -> session   {"status": "error"}                                   after writing error.json

Timing semantics
----------------
Steps are numbered from 1 over the whole session, like Lava's ``time_step`` (which every process model
keeps across ``run`` calls; the runtime service runs each call's steps with the full Loihi phase
sequence, including the learning phase of its last step).  The ``j``-th call ``step(payloads, n)``
after ``m`` steps runs steps ``m+1 .. m+n``: ``payloads[name][i]`` is sent by the input at step
``m+1+i`` (exactly like column ``m+i`` of the one-shot backend's ``RingBuffer``), and the returned
Result has ``steps = n``, ``metadata["first_step"] = m + 1`` and

* ``spikes[pop][0, i]``, ``states[...][0, i]``: the values at the end of step ``m+1+i``;
* plastic ``weights["conn.w"|".t"|".d"][0, i]`` with ``weight_steps = [m+1, ..., m+n]``: the values at the
  end of step ``m+1+i`` (after its learning phase), i.e. what ``Var.get()`` would return then; the
  initial values (step 0) are never returned, as in ``EmulatorSession``;
* static ``weights["conn.w"]``: ``(1, 1, n_target, n_source)`` effective weights, ``weight_steps = [0]``,
  in every chunk.

Concatenating the chunks therefore gives the one-shot Result (plastic weights without index 0).

Robustness
----------
:meth:`LavaSession.close` is idempotent: it sends ``stop`` and waits (``stop_timeout``), then ALWAYS,
in a ``finally``, SIGKILLs the worker's whole process group (:func:`.process_guard.reap_group`), unlinks
Lava's shared memory and removes the work directory.  ``__exit__`` calls it; a ``weakref.finalize``
does the kill/cleanup part when the session is garbage-collected or at interpreter exit.  If the worker
dies, a process model raises (the recording and source models write their tracebacks to
``<workdir>/errors``; Lava may then block, so after ``error_grace`` seconds the group is killed), or a
step exceeds ``timeout``, :meth:`LavaSession.step` closes the session and raises
:class:`.lava_backend.LavaRunError` with the models' tracebacks.  ``step`` after ``close`` raises
:class:`~neuro_hw.errors.InputError`.  The worker is also killed when this process dies (Linux
``PR_SET_PDEATHSIG``; note that it fires when the *thread* that created the session exits, so create
sessions in a thread that outlives them).

Limits: single trial (``B = 1``), ``fixed_pt`` only, CPU simulation only (no ``Loihi2HwCfg``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import select
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuro_hw.compiler.payloads import normalize_payloads
from neuro_hw.compiler.program import Program, learning_rng_seed
from neuro_hw.errors import InputError
from neuro_hw.result import Result

from .lowering import check_lowerable, components
from .process_guard import LOG_FILE, GuardedRun, exited_without_reaping, reap_group
from .recording_plan import pack_recordings, plan_arrays
from .worker_protocol import SPEC_FILE, LavaRunError, raise_worker_failure, workdir_root, worker_env

__all__ = ["LavaSession"]

SELECT_TAG = "fixed_pt"
_WORKER_MODULE = f"{__package__}.lava_session_worker" if __package__ else "lava_session_worker"


class _Worker:
    """The worker process, its pipes and work directory; :meth:`cleanup` runs at most once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.cmd_fd: int | None = None
        self.reply_fd: int | None = None
        self.returncode: int | None = None
        self.buffer = b""  # bytes received from the reply pipe that do not yet form a whole line
        self.reaped = False

    def kill(self) -> int | None:
        """SIGKILL the whole process group, reap the worker, unlink Lava's shared memory (once)."""
        if self.proc is not None and not self.reaped:
            self.reaped = True
            self.returncode = reap_group(self.proc, self.workdir)
        return self.returncode

    def cleanup(self) -> None:
        """:meth:`kill`, close the pipes and remove the work directory (the finalizer of the session)."""
        try:
            self.kill()
        finally:
            for fd in (self.cmd_fd, self.reply_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.cmd_fd = self.reply_fd = None
            shutil.rmtree(self.workdir, ignore_errors=True)


class _WorkerFailed(Exception):
    """The worker died, reported an error, or a deadline passed (turned into LavaRunError)."""

    def __init__(self, timed_out: bool = False, aborted: bool = False) -> None:
        super().__init__("worker failed")
        self.timed_out = timed_out
        self.aborted = aborted


class LavaSession:
    """A single-trial Lava run stepped chunk by chunk (see the module docstring for design and timing).

    Parameters
    ----------
    program:
        The compiled circuit (validated like :func:`.lava_backend.run_program_lava`).
    seed:
        Seed of the (single) trial: an int, or a sequence of one int.  The i-th plastic connection gets
        ``rng_seed = learning_rng_seed(seed, i)``, as in the one-shot backend.
    capacity:
        Rows ``C`` of the input and recording ring buffers: the most steps one run command can cover.
        Longer chunks are split; memory is about ``C * (sum of n) * 4`` bytes plus ``(C + 1)`` weight
        matrices per plastic variable.
    timeout:
        Wall-clock limit in seconds for each :meth:`step` call (``None`` = none); on expiry the
        session is closed and :class:`LavaRunError` raised.
    start_timeout:
        Limit for starting the worker, building and compiling the network (``None`` = none).
    stop_timeout:
        How long :meth:`close` waits for a graceful ``stop`` before killing the group anyway.
    error_grace:
        Seconds the worker gets to report a process-model exception itself before its group is killed
        (Lava can block forever after a model raised).
    """

    def __init__(
        self,
        program: Program,
        *,
        seed: int | Sequence[int] = 0,
        capacity: int = 1024,
        timeout: float | None = None,
        start_timeout: float | None = None,
        stop_timeout: float = 10.0,
        error_grace: float = 2.0,
    ) -> None:
        self._closed = True  # until set up: close() and the finalizer are safe at any point
        self._worker: _Worker | None = None
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise InputError(f"capacity must be a positive integer, got {capacity!r}", field="capacity")
        check_lowerable(program, SELECT_TAG)
        self.program = program
        self.seed = self._single_seed(program, seed)
        self.capacity = int(capacity)
        self.timeout = timeout
        self.stop_timeout = stop_timeout
        self.error_grace = error_grace
        self.done = 0
        self.worker_pid: int | None = None
        self.timings: dict[str, Any] = {}
        self._op_started = time.monotonic()  # start of the current step (or of the start-up), for messages
        plastic = [name for name, c in program.connections.items() if c.learning is not None]
        self.learning_seeds = {name: [learning_rng_seed(self.seed, i)] for i, name in enumerate(plastic)}
        self._plan = plan_arrays(program, self.capacity, 1, False, self.capacity + 1)
        self._static = {f"{name}.w" for name, c in program.connections.items() if c.learning is None}
        self._sampled = {f"{name}.{k}" for name in plastic for k in ("w", "t", "d")}
        self._rec: dict[str, np.memmap] = {}
        self._src: dict[str, np.memmap] = {}
        self._closed = False
        if not components(program):  # no population: nothing to run, every chunk is empty
            return
        workdir = Path(tempfile.mkdtemp(prefix="neuro_hw_lava_session_", dir=workdir_root()))
        self._worker = _Worker(workdir)
        self._finalizer = weakref.finalize(self, self._worker.cleanup)
        try:
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- public API ------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def workdir(self) -> Path | None:
        """The private work directory (removed by :meth:`close`); ``None`` for a program without populations."""
        return None if self._worker is None else self._worker.workdir

    def step(self, payloads: Mapping[str, np.ndarray] | None, steps: int) -> Result:
        """Run ``steps`` more steps with integer payloads ``(steps, n)`` (or ``(1, steps, n)``) per input.

        Returns the Result of just these steps (see the module docstring).  Raises
        :class:`~neuro_hw.errors.InputError` for bad payloads (the session stays usable) or a closed
        session, and :class:`LavaRunError` if Lava fails (the session is then closed).
        """
        if self._closed:
            raise InputError("the Lava session is closed", field="session")
        arrays, seeds, steps = normalize_payloads(self.program, payloads, steps, self.seed)
        if len(seeds) != 1:
            raise InputError(
                f"a Lava session runs a single trial; the payloads have a batch of {len(seeds)}", field="inputs"
            )
        start = self.done
        out = {
            key: np.zeros([1, 1 if key in self._static else steps, *a["shape"][2:]], dtype=a["dtype"])
            for key, a in self._plan.items()
        }
        t0 = time.perf_counter()
        self._op_started = time.monotonic()
        if self._worker is not None:
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            try:
                pos = 0
                while pos < steps:
                    n = min(self.capacity, steps - pos)
                    rows = np.arange(start + pos, start + pos + n) % self.capacity
                    for name, arr in arrays.items():
                        self._src[name][rows] = arr[0, pos : pos + n]
                    self._command({"cmd": "run", "steps": n}, deadline, expect="done")
                    for key, mm in self._rec.items():
                        if key in self._static:
                            out[key][0] = mm[0]
                        elif key in self._sampled:  # plastic w/t/d: row 0 holds the initial values
                            out[key][0, pos : pos + n] = mm[rows + 1]
                        else:
                            out[key][0, pos : pos + n] = mm[rows]
                    pos += n
                    self.done += n
            except BaseException:
                self.close()
                raise
        return self._result(out, start, steps, time.perf_counter() - t0)

    def close(self) -> None:
        """Stop the worker gracefully if it is healthy, then always kill its group and remove the work directory."""
        if self._closed:
            return
        self._closed = True
        try:
            worker = self._worker
            if worker is not None and worker.proc is not None and not worker.reaped:
                try:
                    self._command({"cmd": "stop"}, time.monotonic() + self.stop_timeout, expect="stopped")
                    deadline = time.monotonic() + 1.0
                    while not exited_without_reaping(worker.proc.pid, block=False) and time.monotonic() < deadline:
                        time.sleep(0.005)
                except Exception:  # not healthy after all: the group is killed below anyway
                    pass
        finally:
            self._rec.clear()
            self._src.clear()
            if self._worker is not None:
                self._finalizer()

    def __enter__(self) -> LavaSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------------
    @staticmethod
    def _single_seed(program: Program, seed: int | Sequence[int]) -> int:
        """Validate ``seed`` like the backends (:func:`normalize_payloads`) and require a single trial."""
        dummy = {name: np.zeros((1, spec.n), dtype=bool) for name, spec in program.inputs.items()}
        _, seeds, _ = normalize_payloads(program, dummy, 1, seed)
        if len(seeds) != 1:
            raise InputError(f"a Lava session runs a single trial; got {len(seeds)} seeds", field="seed")
        return seeds[0]

    def _start(self, start_timeout: float | None) -> None:
        worker = self._worker
        assert worker is not None
        workdir = worker.workdir
        for i, a in enumerate(self._plan.values()):
            a["path"] = str(workdir / f"rec.{i}.bin")
            self._create_file(a["path"], a["shape"], a["dtype"])
        sources = {}
        for i, (name, spec) in enumerate(self.program.inputs.items()):
            path = str(workdir / f"input.{i}.bin")
            sources[name] = {"path": path, "shape": [self.capacity, spec.n]}
            self._create_file(path, sources[name]["shape"], "int32")
        spec = {
            "workdir": str(workdir),
            "program": dataclasses.replace(self.program, report=None, metadata={}),
            "select_tag": SELECT_TAG,
            "arrays": self._plan,
            "ring": self.capacity,
            "sources": sources,
            "learning_seeds": self.learning_seeds,
            "float_exp": {},
            "parent_pid": os.getpid(),
        }
        with open(workdir / SPEC_FILE, "wb") as f:
            pickle.dump(spec, f, protocol=pickle.HIGHEST_PROTOCOL)
        for name, src in sources.items():
            self._src[name] = np.memmap(src["path"], dtype=np.int32, mode="r+", shape=tuple(src["shape"]))
        for key, a in self._plan.items():
            self._rec[key] = np.memmap(a["path"], dtype=np.dtype(a["dtype"]), mode="r", shape=tuple(a["shape"][1:]))

        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        worker.cmd_fd, worker.reply_fd = cmd_w, reply_r
        try:
            with open(workdir / LOG_FILE, "wb") as log:
                worker.proc = subprocess.Popen(
                    [sys.executable, "-m", _WORKER_MODULE, str(workdir), str(cmd_r), str(reply_w)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(cmd_r, reply_w),
                    start_new_session=True,
                    env=worker_env(),
                )
        finally:
            os.close(cmd_r)
            os.close(reply_w)
        self.worker_pid = worker.proc.pid
        t0 = time.perf_counter()
        self._op_started = time.monotonic()
        deadline = None if start_timeout is None else time.monotonic() + start_timeout
        reply = self._wait_reply(deadline, expect="ready")
        self.timings = {"start_s": time.perf_counter() - t0, **reply.get("timings", {})}

    @staticmethod
    def _create_file(path: str, shape: Sequence[int], dtype: str) -> None:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        with open(path, "wb") as f:
            f.truncate(nbytes)  # zero-filled

    def _command(self, message: dict[str, Any], deadline: float | None, expect: str) -> dict[str, Any]:
        """Send ``message`` and wait for the reply ``{"status": expect}`` (LavaRunError on failure)."""
        worker = self._worker
        assert worker is not None and worker.cmd_fd is not None
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(worker.cmd_fd, data) :]
        except OSError:  # BrokenPipeError: the worker is gone
            if message.get("cmd") == "stop":
                raise
            self._fail(_WorkerFailed())
        return self._wait_reply(deadline, expect)

    def _wait_reply(self, deadline: float | None, expect: str) -> dict[str, Any]:
        """The worker's next message; on EOF, an error report, worker death or the deadline: :meth:`_fail`."""
        try:
            return self._read_reply(deadline, expect)
        except _WorkerFailed as failure:
            if expect == "stopped":
                raise
            self._fail(failure)
            raise AssertionError("unreachable") from None

    def _read_reply(self, deadline: float | None, expect: str) -> dict[str, Any]:
        worker = self._worker
        assert worker is not None and worker.proc is not None and worker.reply_fd is not None
        errors = worker.workdir / "errors"
        error_seen: float | None = None
        while True:
            if b"\n" in worker.buffer:
                line, worker.buffer = worker.buffer.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    raise _WorkerFailed() from None
                if not isinstance(reply, dict) or reply.get("status") != expect:
                    raise _WorkerFailed()  # "error" (error.json written) or out of protocol
                return reply
            now = time.monotonic()
            wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - now))
            ready, _, _ = select.select([worker.reply_fd], [], [], wait)
            if ready:
                chunk = os.read(worker.reply_fd, 65536)
                if not chunk:  # EOF: the worker (the only writer left) has exited
                    raise _WorkerFailed()
                worker.buffer += chunk
                continue
            if exited_without_reaping(worker.proc.pid, block=False):
                raise _WorkerFailed()
            now = time.monotonic()
            if error_seen is None:
                if errors.is_dir() and any(errors.iterdir()):
                    error_seen = now
            elif now - error_seen >= self.error_grace:
                raise _WorkerFailed(aborted=True)
            if deadline is not None and now >= deadline:
                raise _WorkerFailed(timed_out=True)

    def _fail(self, failure: _WorkerFailed) -> None:
        """Kill the worker's group, raise LavaRunError from what it left in the work directory, close."""
        worker = self._worker
        assert worker is not None and worker.proc is not None
        try:
            returncode = worker.kill()
            log_path = worker.workdir / LOG_FILE
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            run = GuardedRun(
                pid=worker.proc.pid,
                returncode=-1 if returncode is None else returncode,
                timed_out=failure.timed_out,
                aborted=failure.aborted,
                log=log,
                seconds=time.monotonic() - self._op_started,
            )
            raise_worker_failure(worker.workdir, run)
            raise LavaRunError("Lava session worker failed", log=log, worker_pid=worker.proc.pid)
        finally:
            self.close()

    def _result(self, out: dict[str, np.ndarray], start: int, steps: int, seconds: float) -> Result:
        """Pack the copied rows like :func:`.lava_backend.run_program_lava` (single trial, steps start+1..)."""
        program = self.program
        sampled = np.arange(start + 1, start + steps + 1, dtype=np.int64)
        spikes, states, weights, wsteps = pack_recordings(program, out, 1, steps, sampled)
        meta = {
            "select_tag": SELECT_TAG,
            "seeds": [self.seed],
            "learning_rng_seeds": self.learning_seeds,
            "worker_pid": self.worker_pid,
            "capacity": self.capacity,
            "session_timings": self.timings,
            "step_s": seconds,
            "record_time": "end of step (after the learning phase of that step)",
        }
        return Result(
            spikes=spikes,
            states=states,
            weights=weights,
            weight_steps=wsteps,
            dt=float(program.dt),
            steps=steps,
            batch=1,
            backend="lava",
            circuit_hash=program.circuit_hash,
            seed=self.seed,
            target=program.target,
            metadata={"lava": meta, "first_step": start + 1},
        )
