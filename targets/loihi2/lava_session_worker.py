"""Child-process side of :class:`~neuro_hw.targets.loihi2.lava_session.LavaSession`.

``python -m neuro_hw.targets.loihi2.lava_session_worker <workdir> <cmd_fd> <reply_fd>`` is started by the
session in its own process group (``start_new_session=True``).  It reads ``<workdir>/spec.pkl``, calls
:func:`~neuro_hw.targets.loihi2.process_guard.install_child_guards`, builds the Lava network of every
connected component of the program ONCE (single trial; inputs are :class:`ChunkSource` processes, the
neurons and connections those of :func:`~neuro_hw.targets.loihi2.lava_worker.build_component` with the
ring-buffer recording models of :mod:`.recording`), calls ``create_runtime`` on each component's root,
and then serves the parent's commands (protocol in :mod:`.lava_session`):

* ``{"cmd": "run", "steps": N}`` -> ``root.run(condition=RunSteps(num_steps=N))`` for every component
  (Lava continues ``time_step`` across runs), then ``{"status": "done", "time_step": t}``;
* ``{"cmd": "stop"}`` -> ``root.stop()`` for every component, ``{"status": "stopped"}``, exit 0.

The protocol runs over two dedicated pipes whose fd numbers are passed on the command line, never over
stdout/stderr (those go to ``<workdir>/worker.log``, together with whatever Lava prints).  The Lava
processes forked by ``create_runtime`` close both pipe ends right after the fork, so the parent sees
EOF as soon as the worker itself is gone.  On any failure the worker writes ``<workdir>/error.json``
(:func:`~neuro_hw.targets.loihi2.lava_worker.write_error`, with the tracebacks of the Lava process
models that raised), replies ``{"status": "error"}`` if it still can, unlinks Lava's shared memory and
SIGKILLs its whole process group.  EOF on the command pipe (the parent went away) does the same.

This module also defines :class:`ChunkSource`, the input process that replaces the one-shot backend's
``RingBuffer``: its model sends, at step ``k``, row ``(k - 1) % C`` of a ``(C, n)`` int32 file that the
parent fills before each run command.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from .lowering import build_component, components
from .process_guard import hard_exit_group, install_child_guards
from .recording import REC_KEY, _Recorder, recording_model_map
from .worker_protocol import SPEC_FILE, ModelError, collect_model_errors, write_error

# --------------------------------------------------------------------------------------------------
# the chunk source
# --------------------------------------------------------------------------------------------------


class ChunkSource(AbstractProcess):
    """Sends, at step ``k``, row ``(k - 1) % C`` of a ``(C, n)`` int32 memory-mapped file.

    ``nh_rec`` is a plan in the format of :mod:`.recording` with one array ``"data"`` (the file, shape
    ``[C, n]``); ``label``/``error_dir`` serve the error report if the model raises.
    """

    def __init__(self, *, shape: tuple[int, ...], nh_rec: dict[str, Any], name: str | None = None) -> None:
        super().__init__(shape=shape, nh_rec=nh_rec, name=name)
        self.s_out = OutPort(shape=shape)


@implements(proc=ChunkSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyChunkSourceFixed(_Recorder, PyLoihiProcessModel):
    """Fixed-point model of :class:`ChunkSource` (int32 payloads, like ``lava.proc.io.source.PySendModelFixed``)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        with self._nh_reporting():
            data = self._nh_arrays()["data"]
            self.s_out.send(np.array(data[(self.time_step - 1) % data.shape[0]], dtype=np.int32))


def make_chunk_source(spec: dict[str, Any], name: str, trial: int) -> ChunkSource:
    """``make_input`` hook of :func:`~.lava_worker.build_component`: the :class:`ChunkSource` of input ``name``."""
    src = spec["sources"][name]
    rec = {
        "label": name,
        "error_dir": str(Path(spec["workdir"]) / "errors"),
        "arrays": {"data": {"path": src["path"], "dtype": "int32", "offset": 0, "shape": list(src["shape"])}},
    }
    return ChunkSource(shape=(int(src["shape"][1]),), **{REC_KEY: rec}, name=name)


# --------------------------------------------------------------------------------------------------
# the pipe protocol (raw fds: nothing buffered that a forked Lava process could flush or close)
# --------------------------------------------------------------------------------------------------
class _LineReader:
    """Reads newline-terminated JSON messages from a raw fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self) -> dict[str, Any] | None:
        """The next message, or ``None`` at EOF."""
        while b"\n" not in self.buffer:
            data = os.read(self.fd, 65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _close_in_forked_child(fds: tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------------
class _Network:
    """The Lava runtimes of all components of the program (one single-trial network each)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from lava.magma.core.run_configs import Loihi2SimCfg

        self.workdir = Path(spec["workdir"])
        self.roots: list[Any] = []
        self.time_step = 0
        t0 = time.perf_counter()
        model_map = {**recording_model_map(spec["select_tag"]), ChunkSource: PyChunkSourceFixed}
        for comp in components(spec["program"]):
            procs = build_component(spec, comp, 0, make_input=make_chunk_source)
            self.roots.append(procs[comp["neurons"][0]])
        t1 = time.perf_counter()
        for root in self.roots:
            cfg = Loihi2SimCfg(select_tag=spec["select_tag"], exception_proc_model_map=model_map)
            self._guarded(root.create_runtime, run_cfg=cfg)
        self.timings = {"build_s": t1 - t0, "compile_init_s": time.perf_counter() - t1}

    def _guarded(self, call: Any, *args: Any, **kwargs: Any) -> None:
        """Call a Lava method; an exception that comes from process models carries their tracebacks."""
        try:
            call(*args, **kwargs)
        except Exception as err:
            model_tbs = []
            for root in self.roots:
                model_tbs = collect_model_errors(root, self.workdir)
                if model_tbs:
                    break
            if model_tbs:
                raise ModelError(str(err), model_tbs) from err
            raise

    def run(self, steps: int) -> None:
        from lava.magma.core.run_conditions import RunSteps

        for root in self.roots:
            self._guarded(root.run, condition=RunSteps(num_steps=steps))
        self.time_step += steps

    def stop(self) -> None:
        for root in self.roots:
            root.stop()


def serve(spec: dict[str, Any], cmd_fd: int, reply_fd: int) -> int:
    """Build the network, reply ``ready``, then serve commands until ``stop`` (returns 0) or EOF (returns 1)."""
    network = _Network(spec)
    _send(reply_fd, {"status": "ready", "pid": os.getpid(), "timings": network.timings})
    reader = _LineReader(cmd_fd)
    while True:
        message = reader.read()
        if message is None:  # the parent closed the pipe without "stop": it is gone or gave up
            return 1
        cmd = message.get("cmd")
        if cmd == "run":
            t0 = time.perf_counter()
            network.run(int(message["steps"]))
            _send(reply_fd, {"status": "done", "time_step": network.time_step, "run_s": time.perf_counter() - t0})
        elif cmd == "stop":
            network.stop()
            _send(reply_fd, {"status": "stopped", "time_step": network.time_step})
            return 0
        else:
            raise ValueError(f"unknown command {message!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ...lava_session_worker <workdir> <cmd_fd> <reply_fd>``."""
    argv = sys.argv[1:] if argv is None else argv
    workdir = Path(argv[0])
    cmd_fd, reply_fd = int(argv[1]), int(argv[2])
    with open(workdir / SPEC_FILE, "rb") as f:
        spec = pickle.load(f)
    install_child_guards(workdir, int(spec["parent_pid"]))
    # Lava's model search re-executes every module of this directory by its bare file name, which fails
    # for modules with relative imports (harmless: ChunkSource's model is found in its own module)
    warnings.filterwarnings("ignore", message=r"Cannot import module .* for Process 'ChunkSource'")
    os.register_at_fork(after_in_child=lambda: _close_in_forked_child((cmd_fd, reply_fd)))
    try:
        status = serve(spec, cmd_fd, reply_fd)
    except BaseException as err:  # noqa: B036 - report everything, then kill the group
        write_error(workdir, err)
        try:
            _send(reply_fd, {"status": "error"})
        except OSError:
            pass
        hard_exit_group(workdir)
        return 1
    if status != 0:
        hard_exit_group(workdir)
    return status


if __name__ == "__main__":
    # Run the copy of this module imported under its package name, so that Lava finds ChunkSource's
    # model in ``sys.modules[ChunkSource.__module__]`` (not in ``__main__``).
    sys.exit(importlib.import_module(f"{__package__}.lava_session_worker").main())
