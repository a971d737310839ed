#!/usr/bin/env python3
"""Writes tests/golden/conv2d.json: torch.nn.functional.conv2d (groups 1, zero padding) and its
input, weight and bias gradients in float64 from float32 inputs, over stride, padding,
dilation, 1x1 to 5x5 kernels, 3 input channels, non-square inputs and batch 1, for
tests/conv.rs.

    python3 -m pip install torch
    python3 tests/golden/generate_conv.py
"""
import json, os
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
g = torch.Generator().manual_seed(2027)
cases = []


def case(name, x_shape, out_channels, kernel, stride=1, padding=0, dilation=1, bias=True):
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]
    kh, kw = pair(kernel)
    x = torch.randn(x_shape, generator=g)
    w = torch.randn((out_channels, x_shape[1], kh, kw), generator=g) * 0.5
    b = torch.randn(out_channels, generator=g) if bias else None
    # The reference runs in float64 from the float32 values the test uploads.
    x64, w64 = x.double().requires_grad_(True), w.double().requires_grad_(True)
    b64 = b.double().requires_grad_(True) if bias else None
    y = F.conv2d(x64, w64, b64, stride, padding, dilation)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy.double())
    # Nine significant digits: float32 inputs exactly, float64 results to 1e-9.
    flat = lambda t: [float("%.9g" % v) for v in t.detach().reshape(-1).tolist()]
    cases.append({
        "name": name, "x_shape": list(x_shape), "w_shape": list(w.shape),
        "stride": pair(stride), "padding": pair(padding), "dilation": pair(dilation),
        "x": flat(x), "w": flat(w), "b": flat(b) if bias else None,
        "y": flat(y), "dy": flat(dy), "dx": flat(x64.grad), "dw": flat(w64.grad),
        "db": flat(b64.grad) if bias else None,
    })


case("the CNN's conv1 (fewer channels): 3x3 over 28x28", (1, 1, 28, 28), 8, 3)
case("the CNN's conv2 (smaller): 3x3, 8 to 6 channels", (2, 8, 12, 12), 6, 3)
case("LeNet-5's first: 5x5 padding 2", (1, 1, 28, 28), 6, 5, padding=2)
case("3 input channels, stride 2 padding 1", (2, 3, 9, 7), 5, 3, stride=2, padding=1)
case("1x1 kernel", (1, 3, 5, 4), 7, 1)
case("5x5 kernel, batch 1, non-square", (1, 2, 11, 13), 3, 5)
case("(2,3) kernel, (3,1) stride, (1,2) padding", (2, 3, 10, 9), 4, (2, 3), (3, 1), (1, 2))
case("dilation 2, padding 2", (1, 2, 9, 9), 3, 3, 1, 2, 2)
case("dilation (2,1), stride 2, no bias", (2, 1, 12, 8), 2, 3, 2, 1, (2, 1), bias=False)
case("kernel as large as the input", (2, 3, 5, 5), 4, 5)
case("batch 1, one output", (1, 1, 3, 3), 1, 3)

with open(os.path.join(HERE, "conv2d.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_conv.py", "torch": torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
print(len(cases), "cases")
