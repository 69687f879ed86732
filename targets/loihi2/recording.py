"""Cheap per-step recording of Lava state: process-model subclasses that write into ``np.memmap`` files.

Monitors cost about 0.5-1.4 ms/step plus 30-50 µs per value read back (``docs/lava-semantics.md`` §6, §8);
these subclasses of Lava's own models instead copy their state into memory-mapped files (in
``/dev/shm`` when available) at the end of every step, which costs a few µs per step and is read
back by the host with one ``np.fromfile``-speed copy.

Every recording model receives its recording plan through the process keyword ``nh_rec`` (which
Lava stores in ``proc_params``)::

    {"label": "pop",                       # node name, for error messages
     "error_dir": "/dev/shm/.../errors",   # where a traceback is written if the model raises
     "arrays": {key: {"path": str, "dtype": str, "offset": int, "shape": [...]}},
     "rows": [-1, 0, 1, ...],              # plastic connections: memmap row of the weights after
                                           # step k (index k = 1..T; -1 = not sampled)
     "ring": C}                            # optional (persistent sessions): ring-buffer rows, see below

What is recorded, and when (``time_step`` k is 1-based, row k-1 holds the end of step k):

* LIF (:class:`RecLifFixed`, :class:`RecLifFloat`): ``s`` (spike sent this step), ``u``, ``v``
  (after the reset), written at the end of ``run_spk`` -- the LIF has no later phase.
* Dense / DelayDense (:class:`RecDenseFixed` ...): ``w`` once, at the end of the first ``run_spk``,
  i.e. the weights after Lava's one-time clip/LSB truncation (the *effective* weights).
* LearningDense (:class:`RecLearningDenseFixed`, :class:`RecLearningDenseFloat`) and LearningSparse
  (:class:`RecLearningSparseFixed`, with :class:`_SparseCorrections`; its variables recorded dense):

  - ``w``/``t``/``d`` (weights, tag_1, tag_2), row 0: the values at the end of the first
    ``run_spk``, i.e. after Lava's first-step LSB truncation of the weights and before any
    learning (the effective initial values);
  - ``w``/``t``/``d`` row ``rows[k]`` and the traces ``x1 x2 y1 y2 y3`` row k-1: the values at the
    end of ``run_spk`` of step k and again -- overwriting the same rows -- at the end of
    ``run_lrn`` when the learning phase runs that step (``time_step % t_epoch == 0``).  So they
    hold exactly what ``Var.get()`` would return after k steps.

Ring-buffer rows (``"ring": C`` in the plan, used by :mod:`.lava_session`): the per-step arrays have
``C`` rows and step k goes to row ``(k-1) % C``; the plastic ``w``/``t``/``d`` arrays have ``C + 1``
rows, row 0 holding the effective initial values (written at step 1 as above) and the values after
step k going to row ``1 + (k-1) % C`` (``rows`` is ignored).  The reader must collect a row before
it is overwritten, i.e. at least every ``C`` steps.

Any exception inside ``run_spk``/``run_lrn`` is also written, with its traceback, to
``error_dir/<label>.<pid>.txt`` before it propagates (Lava itself only reports
``RuntimeError('N Exception(s) occurred...')`` to the caller).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.dense.models import (
    PyDelayDenseModelBitAcc,
    PyDelayDenseModelFloat,
    PyDenseModelBitAcc,
    PyDenseModelFloat,
    PyLearningDenseModelBitApproximate,
    PyLearningDenseModelFloat,
)
from lava.proc.dense.process import DelayDense, Dense, LearningDense
from lava.proc.graded.models import PyGradedReluVecModelFixed, PyGradedVecModelFixed
from lava.proc.graded.process import GradedReluVec, GradedVec
from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat
from lava.proc.lif.process import LIF
from lava.proc.prodneuron.models import PyProdNeuronModelFixed
from lava.proc.prodneuron.process import ProdNeuron
from lava.proc.sparse.models import PyLearningSparseModelBitApproximate
from lava.proc.sparse.process import LearningSparse
from lava.utils.weightutils import SignMode
from scipy.sparse import csr_matrix

from .graded_process import GradedNeuron, PyGradedNeuronModelFixed

REC_KEY = "nh_rec"
SYNAPSE_VARS = {"w": "weights", "t": "tag_1", "d": "tag_2"}
TRACE_VARS = ("x1", "x2", "y1", "y2", "y3")


class _Recorder:
    """Mixin: lazily opens the memmaps described by ``proc_params['nh_rec']`` and reports errors."""

    _nh_mm: dict[str, np.memmap] | None = None

    def _nh_spec(self) -> dict[str, Any]:
        return self.proc_params.get(REC_KEY) or {}  # type: ignore[attr-defined]

    def _nh_arrays(self) -> dict[str, np.memmap]:
        if self._nh_mm is None:
            arrays = {}
            for key, a in self._nh_spec().get("arrays", {}).items():
                arrays[key] = np.memmap(
                    a["path"], dtype=np.dtype(a["dtype"]), mode="r+", offset=int(a["offset"]), shape=tuple(a["shape"])
                )
            self._nh_mm = arrays
        return self._nh_mm

    def _nh_report_error(self) -> None:
        spec = self._nh_spec()
        error_dir = spec.get("error_dir")
        if not error_dir:
            return
        try:
            os.makedirs(error_dir, exist_ok=True)
            label = spec.get("label", type(self).__name__)
            path = os.path.join(error_dir, f"{label}.{os.getpid()}.txt")
            with open(path, "w") as f:
                f.write(
                    f"{type(self).__name__} for {label!r} at time_step {getattr(self, 'time_step', '?')}:\n"
                    + traceback.format_exc()
                )
        except OSError:
            pass

    def _nh_step_row(self, k: int) -> int:
        """Row of the per-step arrays for time step ``k`` (1-based): ``k-1``, or ``(k-1) % C`` in ring mode."""
        ring = self._nh_spec().get("ring")
        return (k - 1) % int(ring) if ring else k - 1

    @contextlib.contextmanager
    def _nh_reporting(self) -> Iterator[None]:
        """Run the block; if it raises, write the traceback (:meth:`_nh_report_error`) and re-raise."""
        try:
            yield
        except Exception:
            self._nh_report_error()
            raise

    def _nh_put(self, key: str, row: int, value: np.ndarray) -> None:
        arrays = self._nh_arrays()
        if key in arrays and 0 <= row < arrays[key].shape[0]:
            arrays[key][row] = value.toarray() if isinstance(value, csr_matrix) else value


# --------------------------------------------------------------------------------------------------
# LIF
# --------------------------------------------------------------------------------------------------
class _LifRecording(_Recorder):
    def run_spk(self) -> None:
        with self._nh_reporting():
            super().run_spk()  # type: ignore[misc]
            k = self._nh_step_row(self.time_step)  # type: ignore[attr-defined]
            self._nh_put("s", k, self.s_out_buff)  # type: ignore[attr-defined]
            self._nh_put("u", k, self.u)  # type: ignore[attr-defined]
            self._nh_put("v", k, self.v)  # type: ignore[attr-defined]


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecLifFixed(_LifRecording, PyLifModelBitAcc):
    """``PyLifModelBitAcc`` that records ``s``, ``u``, ``v`` at the end of every step."""


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class RecLifFloat(_LifRecording, PyLifModelFloat):
    """``PyLifModelFloat`` that records ``s``, ``u``, ``v`` at the end of every step."""


# --------------------------------------------------------------------------------------------------
# graded neurons: the payload each step sends (captured from the s_out port, so Lava's own arithmetic runs)
# --------------------------------------------------------------------------------------------------
class _GradedRecording(_Recorder):
    def run_spk(self) -> None:
        with self._nh_reporting():
            port = self.s_out  # type: ignore[attr-defined]
            sent: list[np.ndarray] = []
            original = port.send

            def capture(data: np.ndarray) -> None:
                sent.append(np.array(data, copy=True))
                original(data)

            port.send = capture
            try:
                super().run_spk()  # type: ignore[misc]
            finally:
                del port.send  # the class method again
            self._nh_put("y", self._nh_step_row(self.time_step), sent[0])  # type: ignore[attr-defined]


@implements(proc=GradedVec, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecGradedVecFixed(_GradedRecording, PyGradedVecModelFixed):
    """``PyGradedVecModelFixed`` that records its output every step."""


@implements(proc=GradedReluVec, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecGradedReluVecFixed(_GradedRecording, PyGradedReluVecModelFixed):
    """``PyGradedReluVecModelFixed`` that records its output every step."""


@implements(proc=ProdNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecProdNeuronFixed(_GradedRecording, PyProdNeuronModelFixed):
    """``PyProdNeuronModelFixed`` that records its output every step."""


@implements(proc=GradedNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecGradedNeuronFixed(_GradedRecording, PyGradedNeuronModelFixed):
    """The custom graded neuron, recording its output every step."""


# --------------------------------------------------------------------------------------------------
# static connections
# --------------------------------------------------------------------------------------------------
class _StaticRecording(_Recorder):
    def run_spk(self) -> None:
        with self._nh_reporting():
            super().run_spk()  # type: ignore[misc]
            if self.time_step == 1:  # type: ignore[attr-defined]
                self._nh_put("w", 0, self.weights)  # type: ignore[attr-defined]


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecDenseFixed(_StaticRecording, PyDenseModelBitAcc):
    """``PyDenseModelBitAcc`` that records its effective (clipped, truncated) weights once."""


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class RecDenseFloat(_StaticRecording, PyDenseModelFloat):
    """``PyDenseModelFloat`` that records its weights once."""


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecDelayDenseFixed(_StaticRecording, PyDelayDenseModelBitAcc):
    """``PyDelayDenseModelBitAcc`` that records its effective weights once."""


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class RecDelayDenseFloat(_StaticRecording, PyDelayDenseModelFloat):
    """``PyDelayDenseModelFloat`` that records its weights once."""


# --------------------------------------------------------------------------------------------------
# plastic connections
# --------------------------------------------------------------------------------------------------
class _LearningRecording(_Recorder):
    def _nh_snapshot(self) -> None:
        k = self.time_step  # type: ignore[attr-defined]
        spec = self._nh_spec()
        ring = spec.get("ring")
        if ring:
            row = 1 + (k - 1) % int(ring)
        else:
            rows = spec.get("rows")
            row = rows[k] if rows is not None and k < len(rows) else -1
        if row >= 0:
            for key, var in SYNAPSE_VARS.items():
                self._nh_put(key, row, getattr(self, var))
        step_row = self._nh_step_row(k)
        for key in TRACE_VARS:
            self._nh_put(key, step_row, getattr(self, key))

    def run_spk(self) -> None:
        with self._nh_reporting():
            super().run_spk()  # type: ignore[misc]
            if self.time_step == 1:  # type: ignore[attr-defined]
                for key, var in SYNAPSE_VARS.items():
                    self._nh_put(key, 0, getattr(self, var))
            self._nh_snapshot()

    def run_lrn(self) -> None:
        with self._nh_reporting():
            super().run_lrn()  # type: ignore[misc]
            self._nh_snapshot()


@implements(proc=LearningDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecLearningDenseFixed(_LearningRecording, PyLearningDenseModelBitApproximate):
    """``PyLearningDenseModelBitApproximate`` that records weights, tags and traces every step."""


@implements(proc=LearningDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class RecLearningDenseFloat(_LearningRecording, PyLearningDenseModelFloat):
    """``PyLearningDenseModelFloat`` that records weights, tags and traces every step."""


class _SparseCorrections:
    """Three corrections to Lava 0.10's ``PyLearningSparseModelBitApproximate``, so that a ``LearningSparse`` is
    ``LearningDense`` restricted to its stored synapses (what the chip's sparse synapses are), measured:

    * its first step's LSB truncation calls ``eliminate_zeros()``: a stored synapse whose weight is (or truncates
      to) 0 disappeared for good and never learned -- here the truncation is Lava's arithmetic on the stored
      values, keeping every stored synapse;
    * a rule with a ``w``, ``t`` or ``d`` factor made the fixed-point applier multiply dense arrays by csr
      matrices (``np.clip`` of a csr matrix; the process raised and Lava hung) -- here the applier reads dense
      copies of the synaptic variables (the accumulator and what is written back stay Lava's csr code);
    * an excitatory or inhibitory connection raised in the accumulator's sign saturation (``np.maximum(0, csr)``:
      "NotImplementedError: >= and <= don't work with 0") -- here it saturates the stored values.

    Everything else (traces, products, stochastic rounding, the random streams) is Lava's own code.
    ``tests/circuits/test_heterosynaptic_mask_lava.py`` pins the stock model's behaviour (absent synapses stay 0,
    stored ones equal LearningDense's, an initial zero is dropped); ``tests/emulator/test_masked_learning_vs_lava.py``
    that the corrected model equals the emulator (LearningDense's arithmetic, masked) value for value."""

    def run_spk(self) -> None:
        if not self.weights_set:  # type: ignore[has-type]
            weights = self.weights.copy().astype(np.int32)  # type: ignore[has-type]
            inhibitory = self.sign_mode == SignMode.INHIBITORY  # type: ignore[attr-defined]
            if inhibitory:
                weights = -weights
            mixed = int(self.sign_mode == SignMode.MIXED)  # type: ignore[attr-defined]
            drop = 8 - self.num_weight_bits + mixed  # type: ignore[attr-defined]
            weights.data = (weights.data >> drop) << drop  # Lava's truncate_weights, without eliminate_zeros
            self.weights = -weights if inhibitory else weights
            self.weights_set = True
        super().run_spk()  # type: ignore[misc]

    def _extract_applier_args(self, x_traces_history: np.ndarray, y_traces_history: np.ndarray) -> dict:
        args = super()._extract_applier_args(x_traces_history, y_traces_history)  # type: ignore[misc]
        for key in ("weights", "tag_1", "tag_2"):
            if isinstance(args[key], csr_matrix):
                args[key] = args[key].toarray()
        return args

    def _saturate_synaptic_variable_accumulator(self, syn_var_name: str, syn_var_values):  # type: ignore[no-untyped-def]
        if syn_var_name == "weights" and isinstance(syn_var_values, csr_matrix):
            if self.sign_mode == SignMode.EXCITATORY:  # type: ignore[attr-defined]
                syn_var_values.data = np.maximum(0, syn_var_values.data)
            elif self.sign_mode == SignMode.INHIBITORY:  # type: ignore[attr-defined]
                syn_var_values.data = np.minimum(0, syn_var_values.data)
            return syn_var_values
        return super()._saturate_synaptic_variable_accumulator(syn_var_name, syn_var_values)  # type: ignore[misc]


@implements(proc=LearningSparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecLearningSparseFixed(_LearningRecording, _SparseCorrections, PyLearningSparseModelBitApproximate):
    """``PyLearningSparseModelBitApproximate`` with :class:`_SparseCorrections`, recording weights, tags (dense, 0
    on the synapses that are not stored) and traces every step."""


def recording_model_map(select_tag: str) -> dict[type, type]:
    """``exception_proc_model_map`` for ``Loihi2SimCfg``: our recording models for ``select_tag``."""
    from lava.proc.conv.process import Conv

    from .conv_process import RecConvFixed, RecConvFloat  # imports this module

    if select_tag == "fixed_pt":
        return {
            Conv: RecConvFixed,
            LIF: RecLifFixed,
            Dense: RecDenseFixed,
            DelayDense: RecDelayDenseFixed,
            LearningDense: RecLearningDenseFixed,
            LearningSparse: RecLearningSparseFixed,
            GradedVec: RecGradedVecFixed,
            GradedReluVec: RecGradedReluVecFixed,
            ProdNeuron: RecProdNeuronFixed,
            GradedNeuron: RecGradedNeuronFixed,
        }
    if select_tag == "floating_pt":
        return {
            Conv: RecConvFloat,
            LIF: RecLifFloat,
            Dense: RecDenseFloat,
            DelayDense: RecDelayDenseFloat,
            LearningDense: RecLearningDenseFloat,
        }
    raise ValueError(f"select_tag must be 'fixed_pt' or 'floating_pt', got {select_tag!r}")
