"""Convolution connections on Lava: ``lava.proc.conv`` ``Conv`` processes, their wiring and their recording.

A Program connection with a geometry that :func:`~neuro_hw.compiler.conv_weights.lava_conv_reason` accepts becomes
one ``Conv`` (the others stay Dense / DelayDense with the unrolled matrix, :mod:`.lowering`)::

    Conv(weight = K_lava, input_shape = (W, H, C_in), padding, stride, dilation (as (x, y) = (w, h) pairs),
         groups, num_message_bits, weight_exp = 0)
    K_lava  = lava_kernel(K_eff) << weight_exp      fixed_pt (K_eff: clip + LSB truncation of the kernel,
                                                    exactly what a Dense does to the unrolled matrix)
            = lava_kernel(K_int) * 2**(weight_exp - e_p)    floating_pt (the float unit of :mod:`.lowering`)

Lava's Conv works on ``(W, H, C)`` tensors (x first, channels last) and really convolves; our populations are
flat C-ordered ``(C, H, W)`` vectors.  So the source's ``s_out`` is connected through the virtual ports
``reshape((C, H, W)).transpose((2, 1, 0))`` and the Conv's ``a_out`` through ``transpose((2, 1, 0)).reshape((n,))``
(Lava applies these transforms on the receiving side; no process is added), and the kernel is transposed and
flipped (:func:`~neuro_hw.compiler.conv_weights.lava_kernel`).

Recording: like a Dense (:mod:`.recording`), a Conv records ``w`` once, at the end of step 1: the unrolled
``(n_target, n_source)`` matrix of the kernel Lava holds (``K_lava >> weight_exp`` under fixed_pt, back in the
Program's weight units), built from the process's own ``weight`` Var, so a wrong transposition shows there too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat
from lava.proc.conv.process import Conv
from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

from neuro_hw.compiler.conv_weights import kernel_from_lava, lava_kernel
from neuro_hw.ir.conv import ConvGeometry

from .recording import _Recorder
from .recording_plan import process_recording

CONV_KEY = "nh_conv"


def _pair_xy(value: tuple[int, int]) -> tuple[int, int]:
    """An ``(h, w)`` pair of our geometry as Lava's ``(x, y) = (w, h)``."""
    return int(value[1]), int(value[0])


def make_conv(spec: dict[str, Any], name: str, trial: int) -> Conv:
    """The ``Conv`` process of convolution connection ``name`` for one trial (module doc)."""
    program = spec["program"]
    conn = program.connections[name]
    g: ConvGeometry = conn.conv
    we = int(conn.weight_exp)
    if spec["select_tag"] == "floating_pt":
        shift = we - spec["float_exp"][conn.target]
        weight = lava_kernel(g.kernel).astype(np.float64) * 2.0**shift
        record_shift = 0
    else:
        mode = SignMode[conn.sign_mode.upper()]  # Lava's own Dense weight preparation, on the kernel
        k_eff = truncate_weights(clip_weights(g.kernel.astype(np.int32), mode, 8), mode, int(conn.num_weight_bits))
        weight = (lava_kernel(k_eff).astype(np.int64) << we).astype(np.int32)
        record_shift = we
    c_in, h, w = g.in_shape
    proc = Conv(
        weight=weight,
        weight_exp=0,
        input_shape=(int(w), int(h), int(c_in)),
        padding=_pair_xy(g.padding),
        stride=_pair_xy(g.stride),
        dilation=_pair_xy(g.dilation),
        groups=int(g.groups),
        num_message_bits=int(conn.num_message_bits),
        name=name,
    )
    rec = process_recording(spec, trial, name, {"w": f"{name}.w"})
    rec[CONV_KEY] = {
        "in_shape": [int(v) for v in g.in_shape],
        "out_shape": [int(v) for v in g.out_shape],
        "stride": [int(v) for v in g.stride],
        "padding": [int(v) for v in g.padding],
        "dilation": [int(v) for v in g.dilation],
        "groups": int(g.groups),
        "shift": record_shift,
    }
    proc.proc_params["nh_rec"] = rec
    return proc


def connect_conv(proc: Conv, conn: Any, source: Any, target_port: Any) -> None:
    """Wire ``source.s_out -> proc -> target_port`` through the (C, H, W) <-> (W, H, C) virtual ports."""
    g: ConvGeometry = conn.conv
    source.s_out.reshape(tuple(int(v) for v in g.in_shape)).transpose((2, 1, 0)).connect(proc.s_in)
    proc.a_out.transpose((2, 1, 0)).reshape((int(g.n_out),)).connect(target_port)


class _ConvRecording(_Recorder):
    def run_spk(self) -> None:
        with self._nh_reporting():
            super().run_spk()  # type: ignore[misc]
            if self.time_step == 1 and "w" in self._nh_arrays():  # type: ignore[attr-defined]
                geo = self._nh_spec()[CONV_KEY]
                weight = np.asarray(self.weight)  # type: ignore[attr-defined]
                kernel = kernel_from_lava(weight)
                if geo["shift"]:
                    kernel = kernel.astype(np.int64) >> int(geo["shift"])
                g = ConvGeometry(
                    tuple(geo["in_shape"]), tuple(geo["out_shape"]), kernel, tuple(geo["stride"]),
                    tuple(geo["padding"]), tuple(geo["dilation"]), int(geo["groups"]),
                )  # fmt: skip
                self._nh_put("w", 0, g.dense(kernel.dtype))


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class RecConvFixed(_ConvRecording, PyConvModelFixed):
    """``PyConvModelFixed`` that records its kernel, unrolled, once."""


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class RecConvFloat(_ConvRecording, PyConvModelFloat):
    """``PyConvModelFloat`` that records its kernel, unrolled, once."""
