"""Convolution and pooling geometry (:mod:`neuro_hw.ir.conv`) against a direct loop over torch's formula, shape
inference from predecessors, folding of pooling into a neighbouring weight node, and the reference simulator on a
convolution (one step of synaptic delay, bias per channel)."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import neuro_hw
from neuro_hw.compiler.weight_maps import compose_geometries
from neuro_hw.errors import ValidationError
from neuro_hw.ir.conv import ConvGeometry, geometry_of


def direct_conv(x, k, stride, pad_before, dilation, groups, out_hw):
    """torch.nn.functional.conv2d (cross-correlation, zero padding) as plain loops over one (C, H, W) input."""
    c_out, cg = k.shape[:2]
    c_in, h, w = x.shape
    ho, wo = out_hw
    y = np.zeros((c_out, ho, wo))
    for o in range(c_out):
        g = o // (c_out // groups)
        for i in range(ho):
            for j in range(wo):
                for c in range(cg):
                    for a in range(k.shape[2]):
                        for b in range(k.shape[3]):
                            r = i * stride[0] + a * dilation[0] - pad_before[0]
                            q = j * stride[1] + b * dilation[1] - pad_before[1]
                            if 0 <= r < h and 0 <= q < w:
                                y[o, i, j] += k[o, c, a, b] * x[g * cg + c, r, q]
    return y


CONVS = [  # c_in, c_out, groups, h, w, kernel, stride, padding, dilation
    (1, 2, 1, 6, 7, (3, 3), 1, 0, 1),
    (2, 4, 2, 7, 6, (3, 2), (2, 1), (1, 2), (1, 2)),
    (3, 3, 3, 5, 5, (2, 2), 2, 1, 1),
    (2, 2, 1, 6, 6, (2, 3), 1, "same", 1),  # even kernel: one more padding row after than before
    (2, 3, 1, 5, 4, (3, 3), 1, "valid", 1),
]


@pytest.mark.parametrize("case", CONVS)
def test_conv2d_matrix_is_torch_cross_correlation(case):
    c_in, c_out, groups, h, w, ks, stride, padding, dilation = case
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(c_out, c_in // groups, *ks))
    node = nir.Conv2d(
        input_shape=(h, w), weight=weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=np.zeros(c_out),
    )  # fmt: skip
    g = geometry_of(node, "conv", (c_in, h, w))
    if padding == "same":
        assert g.out_shape[1:] == (h, w) and g.padding == (0, 1)  # totals d (k - 1) = 1 and 2: 0 and 1 before
    x = rng.normal(size=(c_in, h, w))
    expected = direct_conv(x, weight, g.stride, g.padding, g.dilation, groups, g.out_shape[1:])
    np.testing.assert_allclose(g.unroll() @ x.reshape(-1), expected.reshape(-1), rtol=1e-12, atol=1e-12)


def test_conv1d_and_pooling():
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(3, 2, 3))
    c1 = nir.Conv1d(input_shape=9, weight=w1, stride=2, padding=1, dilation=1, groups=1, bias=np.zeros(3))
    g = geometry_of(c1, "c1", (2, 9))
    assert g.out_shape == (3, 1, 5)
    x = rng.normal(size=(2, 9))
    expected = direct_conv(x[:, None, :], w1[:, :, None, :], (1, 2), (0, 1), (1, 1), 1, (1, 5))
    np.testing.assert_allclose(g.unroll() @ x.reshape(-1), expected.reshape(-1), rtol=1e-12, atol=1e-12)

    x = rng.normal(size=(2, 5, 5))
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    gp = geometry_of(pool, "p", (2, 5, 5))
    assert gp.out_shape == (2, 2, 2)  # the last row and column are dropped, as in torch
    np.testing.assert_allclose(
        gp.unroll() @ x.reshape(-1), x[:, :4, :4].reshape(2, 2, 2, 2, 2).sum(axis=(2, 4)).ravel()
    )
    avg = nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1]))
    ga = geometry_of(avg, "a", (2, 5, 5))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    mean = np.array(
        [[[padded[c, i : i + 3, j : j + 3].sum() / 9 for j in range(5)] for i in range(5)] for c in range(2)]
    )
    np.testing.assert_allclose(ga.unroll() @ x.reshape(-1), mean.ravel())  # zero padding counts: torch's default


def test_impossible_geometries_name_node_and_field():
    node = nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(1))  # fmt: skip
    with pytest.raises(ValidationError, match="node 'c', field 'weight': the kernel .* does not fit"):
        geometry_of(node, "c", (1, 2, 2))
    grouped = nir.Conv2d(input_shape=(4, 4), weight=np.ones((3, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=2,
                         bias=np.zeros(3))  # fmt: skip
    with pytest.raises(ValidationError, match="node 'c', field 'groups': groups=2 does not fit"):
        geometry_of(grouped, "c", (2, 4, 4))


def test_composed_convolution_equals_the_product_or_is_refused():
    rng = np.random.default_rng(2)
    pool = ConvGeometry((2, 8, 8), (2, 4, 4), np.ones((2, 1, 2, 2)), (2, 2), (0, 0), (1, 1), 2)
    conv = ConvGeometry((2, 4, 4), (3, 4, 4), rng.normal(size=(3, 2, 3, 3)), (1, 1), (1, 1), (1, 1), 1)
    both = compose_geometries(pool, 0.5, conv)
    assert both is not None and both.kernel.shape == (3, 2, 6, 6) and both.stride == (2, 2)
    np.testing.assert_allclose(both.dense(), 0.5 * conv.dense() @ pool.dense(), atol=1e-12)
    odd = ConvGeometry((2, 9, 9), (2, 4, 4), np.ones((2, 1, 2, 2)), (2, 2), (0, 0), (1, 1), 2)  # drops a row
    conv_pad = ConvGeometry((2, 4, 4), (3, 4, 4), rng.normal(size=(3, 2, 3, 3)), (1, 1), (1, 1), (1, 1), 1)
    folded = compose_geometries(odd, 1.0, conv_pad)
    if folded is not None:  # whatever the candidate, it must be exact
        np.testing.assert_allclose(folded.dense(), conv_pad.dense() @ odd.dense(), atol=1e-12)


def test_reference_runs_a_convolution_with_bias_one_step_later():
    """Input -> Conv2d (bias) -> LI with r = tau/dt under Euler: after step t, v = dt/tau * (tau/dt) * conv(x_{t-1}) +
    ..., i.e. the first step sees only the bias (the synaptic delay), the second the convolution of step 1's input."""
    rng = np.random.default_rng(3)
    k = rng.normal(size=(2, 1, 3, 3))
    bias = np.array([0.5, -0.25])
    dt, tau = 1e-3, 1.0
    nodes = {
        "in": nir.Input(np.array([1, 5, 5])),
        "conv": nir.Conv2d(input_shape=(5, 5), weight=k, stride=1, padding=1, dilation=1, groups=1, bias=bias),
        "li": nir.LI(tau=np.full((2, 5, 5), tau), r=np.full((2, 5, 5), tau / dt), v_leak=np.zeros((2, 5, 5))),
        "out": nir.Output(np.array([2, 5, 5])),
    }
    circuit = neuro_hw.Circuit(nodes, [("in", "conv"), ("conv", "li"), ("li", "out")])
    x = np.zeros((2, 1, 5, 5))
    x[0] = rng.random((1, 5, 5)) < 0.5
    res = neuro_hw.simulate(circuit, {"in": x}, 2, dt, method="euler", record="li.v")
    v = res.states["li.v"][0]
    b = np.repeat(bias, 25).reshape(2, 5, 5)
    np.testing.assert_allclose(v[0].reshape(2, 5, 5), b, rtol=1e-12)
    conv = direct_conv(x[0], k, (1, 1), (1, 1), (1, 1), 1, (5, 5))
    np.testing.assert_allclose(v[1].reshape(2, 5, 5), b * (1 - dt / tau) + b + conv, rtol=1e-9, atol=1e-12)
