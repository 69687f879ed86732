"""Program builders for convolution connections (emulator unit tests and differential tests vs Lava).

A case is ``source -> conv -> LIF``: the source is a spike or graded input of shape ``(C_in, H, W)`` (or a LIF
population fed one-to-one by such an input), the connection a :class:`~neuro_hw.ir.conv.ConvGeometry` with a
random integer kernel (odd values too: the mixed-sign LSB truncation must act on kernel and matrix alike) and its
unrolled matrix, with a weight exponent, sign mode and optionally one synaptic delay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from emulator_cases import lif, program
from hypothesis import assume
from hypothesis import strategies as st

from neuro_hw.compiler.program import ConnectionProgram, InputProgram, NeuronProgram, Program
from neuro_hw.ir.conv import ConvGeometry


@dataclass(frozen=True)
class Geometry:
    """A small convolution: channels, groups, input size, kernel, stride, padding, dilation."""

    c_in: int
    c_out: int
    groups: int
    h: int
    w: int
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    def out_hw(self) -> tuple[int, int]:
        ho = (self.h + 2 * self.padding[0] - self.dilation[0] * (self.kh - 1) - 1) // self.stride[0] + 1
        wo = (self.w + 2 * self.padding[1] - self.dilation[1] * (self.kw - 1) - 1) // self.stride[1] + 1
        return ho, wo

    def make(self, kernel: np.ndarray) -> ConvGeometry:
        ho, wo = self.out_hw()
        return ConvGeometry(
            (self.c_in, self.h, self.w), (self.c_out, ho, wo), kernel, self.stride, self.padding, self.dilation,
            self.groups,
        )  # fmt: skip


@st.composite
def geometries(draw) -> Geometry:
    """Small geometries whose output is at least 1 x 1."""
    groups = draw(st.sampled_from([1, 1, 2]))
    cg = draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    pair = st.tuples(st.integers(1, 2), st.integers(1, 2))
    g = Geometry(
        c_in=cg * groups,
        c_out=c_out,
        groups=groups,
        h=draw(st.integers(1, 6)),
        w=draw(st.integers(1, 6)),
        kh=draw(st.integers(1, 3)),
        kw=draw(st.integers(1, 3)),
        stride=draw(pair),
        padding=draw(st.tuples(st.integers(0, 2), st.integers(0, 2))),
        dilation=draw(pair),
    )
    ho, wo = g.out_hw()
    assume(ho >= 1 and wo >= 1)
    return g


RANGES = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}


class ConvBook:
    """Independent ``source -> conv -> LIF`` cases packed into one Program (one Lava start for all)."""

    def __init__(self, steps: int, batch: int = 1, seed: int = 0) -> None:
        self.steps, self.batch = steps, batch
        self.rng = np.random.default_rng(seed)
        self.inputs: list[InputProgram] = []
        self.neurons: list[NeuronProgram] = []
        self.conns: list[ConnectionProgram] = []
        self.data: dict[str, np.ndarray] = {}

    def add(
        self,
        name: str,
        g: Geometry,
        *,
        sign_mode: str = "mixed",
        weight_exp: int = 0,
        graded: int = 0,
        delay: int | None = None,
        via_population: bool = False,
        rate: float = 0.3,
        vth: int | None = None,
    ) -> str:
        """Case ``name``; ``graded``: payload bits of a graded input (0: spikes); returns the target's name."""
        lo, hi = RANGES[sign_mode]
        kernel = self.rng.integers(lo, hi + 1, (g.c_out, g.c_in // g.groups, g.kh, g.kw)).astype(np.int32)
        kernel[self.rng.random(kernel.shape) < 0.1] = 0
        conv = g.make(kernel)
        src = f"{name}_in"
        n_in = conv.n_in
        shape = (self.batch, self.steps, n_in)
        if graded:
            top = 2**graded - 1
            self.inputs.append(InputProgram(src, n_in, graded=True, max_payload=top))
            self.data[src] = self.rng.integers(0, top + 1, shape) * (self.rng.random(shape) < rate)
        else:
            self.inputs.append(InputProgram(src, n_in))
            self.data[src] = (self.rng.random(shape) < rate).astype(np.int64)
        if via_population:  # the convolution reads a population's spikes
            pop = f"{name}_pre"
            self.neurons.append(lif(pop, n_in, du=4095, dv=0, vth=1))
            eye = np.eye(n_in, dtype=np.int32) * 128
            self.conns.append(ConnectionProgram(f"{name}_id", src, pop, eye, sign_mode="excitatory",
                                                num_message_bits=8 if graded else 0))  # fmt: skip
            src = pop
        post = f"{name}_post"
        du, dv = (int(v) for v in self.rng.integers(0, 4096, 2))
        self.neurons.append(lif(post, conv.n_out, du=du, dv=dv, vth=vth or int(self.rng.integers(20, 400))))
        delays = None if delay is None else np.full((conv.n_out, n_in), delay)
        self.conns.append(
            ConnectionProgram(
                name,
                src,
                post,
                conv.dense(np.int64),
                weight_exp=weight_exp,
                sign_mode=sign_mode,
                num_message_bits=graded if (graded and not via_population) else 0,
                delays=delays,
                conv=conv,
            )  # fmt: skip
        )
        return post

    def join(self) -> None:
        """Join all cases into one network (Lava builds one runtime per connected component and trial): every
        post population also feeds one hub neuron through a Dense of weight 2."""
        posts = [c.target for c in self.conns if c.conv is not None]
        self.neurons.append(lif("hub", 1, du=0, dv=0, vth=10_000))
        for post in posts:
            n = next(p.n for p in self.neurons if p.name == post)
            self.conns.append(ConnectionProgram(f"{post}_hub", post, "hub", np.full((1, n), 2, np.int32),
                                                sign_mode="excitatory"))  # fmt: skip

    def program(self) -> Program:
        return program(self.inputs, self.neurons, self.conns)


def without_conv(prog: Program) -> Program:
    """The same Program with every convolution run as its plain (Delay)Dense matrix."""
    import copy

    out = copy.deepcopy(prog)
    for conn in out.connections.values():
        conn.conv = None
    return out
