#!/usr/bin/env python3
"""Writes tests/golden/max_pool2d.json: torch.nn.functional.max_pool2d (return_indices) and its
input gradient over kernel, stride, padding and dilation, odd and non-square shapes, ties,
-inf and NaN, for tests/pool.rs.

    python3 -m pip install torch
    python3 tests/golden/generate_pool.py
"""
import json, math, os
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
g = torch.Generator().manual_seed(2026)
cases = []


def case(name, shape, kernel, stride=None, padding=0, dilation=1, kind="random"):
    if kind == "ties":
        x = torch.randint(0, 3, shape, generator=g).float()
    else:
        x = torch.randn(shape, generator=g)
    if kind == "special":
        flat = x.view(-1)
        flat[::7] = -math.inf
        flat[3::11] = math.nan
    x.requires_grad_(True)
    y, idx = F.max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]
    num = lambda t: [None if math.isnan(v) else ("-inf" if v == -math.inf else v) for v in t.reshape(-1).tolist()]
    cases.append({
        "name": name, "shape": list(shape), "kernel": pair(kernel),
        "stride": pair(stride) if stride is not None else None,
        "padding": pair(padding), "dilation": pair(dilation),
        "x": num(x.detach()), "y": num(y.detach()), "indices": idx.reshape(-1).tolist(),
        "dy": dy.reshape(-1).tolist(), "dx": num(x.grad),
    })


case("2x2, the CNN's pool", (2, 3, 8, 8), 2)
case("3x3 stride 1 (overlapping)", (1, 2, 7, 9), 3, 1)
case("3x3 stride 2 padding 1", (2, 1, 9, 6), 3, 2, 1)
case("1x1", (1, 3, 5, 4), 1)
case("5x5 stride 2 padding 2", (1, 1, 11, 13), 5, 2, 2)
case("(2,3) window (3,1) stride (1,1) padding", (1, 2, 9, 7), (2, 3), (3, 1), (1, 1))
case("dilation 2", (1, 2, 9, 9), 2, 1, 0, 2)
case("dilation (2,3) padding 1", (1, 1, 10, 11), 3, 2, 1, (2, 3))
case("ties, overlapping", (2, 2, 6, 6), 3, 1, 1, kind="ties")
case("batch 1, one window", (1, 1, 2, 2), 2)
case("-inf and NaN", (1, 2, 8, 8), 3, 2, 1, kind="special")

with open(os.path.join(HERE, "max_pool2d.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_pool.py", "torch": torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
print(len(cases), "cases")
