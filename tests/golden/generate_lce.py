#!/usr/bin/env python3
"""Writes tests/golden/linear_cross_entropy.json: F.cross_entropy(x @ w.T + b, y, ...) and its
gradients, computed by PyTorch in float64, for tests/linear_cross_entropy.rs.

    python3 -m pip install torch numpy
    python3 tests/golden/generate_lce.py

The inputs are not stored: both sides draw them from the counter-based generator below
(`values`), which numpy here and tests/linear_cross_entropy.rs compute bit for bit alike, so
cases as large as 131,072 classes × 256 features cost no fixture space. Each case stores the
loss, and the gradients in full for small cases or at a few sampled rows for large ones.
"""
import json, os
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
M32 = np.uint64(0xFFFFFFFF)


def hashes(count, seed):
    """lowbias32 of (i ^ seed·0x9E3779B9) for i in 0..count, as u32."""
    x = np.arange(count, dtype=np.uint64) ^ np.uint64((seed * 0x9E3779B9) & 0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


def values(count, seed, scale):
    """float32 values in [-scale/2, scale/2): ((h >> 8)·2⁻²⁴ − 0.5)·scale, each step rounded
    to float32 (the first two are exact)."""
    u = (hashes(count, seed) >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)
    return (u - np.float32(0.5)) * np.float32(scale)


def targets(n, v, seed, ignore_every):
    """Class indices h % v; every row whose second hash is 0 mod ignore_every is -100."""
    t = (hashes(n, seed) % np.uint64(v)).astype(np.int64)
    if ignore_every:
        t[hashes(n, seed + 1) % np.uint64(ignore_every) == 0] = -100
    return t


def sample(count, extra=()):
    """A few indices spread over 0..count, with `extra`."""
    picks = {0, 1, count // 3, count // 2, count - 2, count - 1, *extra}
    return sorted(i for i in picks if 0 <= i < count)


def case(name, n, d, v, *, bias=True, weight=False, ignore_every=0, reduction="mean",
         smoothing=0.0, x_scale=2.0, w_scale=None, chunk=None, full=None):
    seed = len(CASES) * 8 + 1
    w_scale = w_scale if w_scale is not None else 2.0 / d**0.5
    x = torch.from_numpy(values(n * d, seed, x_scale).reshape(n, d)).double()
    w = torch.from_numpy(values(v * d, seed + 2, w_scale).reshape(v, d)).double()
    b = torch.from_numpy(values(v, seed + 3, 1.0)).double() if bias else None
    cw = torch.from_numpy(values(v, seed + 4, 1.0) + np.float32(1.0)).double() if weight else None
    y = torch.from_numpy(targets(n, v, seed + 5, ignore_every))
    x.requires_grad_(True)
    w.requires_grad_(True)
    if b is not None:
        b.requires_grad_(True)
    z = x @ w.T + (b if b is not None else 0.0)
    loss = F.cross_entropy(z, y, weight=cw, reduction=reduction, label_smoothing=smoothing)
    loss.sum().backward()
    full = full if full is not None else n * d <= 1024 and v * d <= 4096
    rows = list(range(n)) if full else sample(n)
    classes = list(range(v)) if full else sample(v, [int(t) for t in y[rows] if t >= 0])
    # Ten significant digits: far past float32's, a third of the file.
    short = lambda e: None if np.isnan(e) else float(f"{e:.10g}")
    vec = lambda t: [short(e) for e in t.detach().reshape(-1).tolist()]
    CASES.append({
        "name": name, "n": n, "d": d, "v": v, "seed": seed, "x_scale": x_scale,
        "w_scale": w_scale, "bias": bias, "weight": weight, "ignore_every": ignore_every,
        "reduction": reduction, "smoothing": smoothing, "chunk": chunk,
        "loss": vec(loss),
        "rows": rows, "dx": [vec(x.grad[r]) for r in rows],
        "classes": classes, "dweight": [vec(w.grad[c]) for c in classes],
        "dbias": vec(b.grad[classes]) if bias else [],
    })
    print(f"{name}: n={n} d={d} v={v} loss={loss.sum().item():.6f}")


CASES = []
torch.set_grad_enabled(True)
# Every option at a small shape, over two chunks of 64 and a ragged third.
for reduction in ["mean", "sum", "none"]:
    for weight in [False, True]:
        for ignore_every in [0, 3]:
            for smoothing in [0.0, 0.2]:
                opts = f"{reduction}{'-w' if weight else ''}{'-ignore' if ignore_every else ''}" \
                       f"{'-smooth' if smoothing else ''}"
                case(f"options-{opts}", 7, 5, 150, weight=weight, ignore_every=ignore_every,
                     reduction=reduction, smoothing=smoothing, chunk=64)
# The odd shapes: V = 1, 7, 1000, 50257, 131072; D = 1, 17, 256; N = 1, 63, 4096.
case("v1", 63, 17, 1, smoothing=0.1)
case("v7-d1", 63, 1, 7, weight=True, ignore_every=4)
case("v7-n1-nobias", 1, 17, 7, bias=False, reduction="sum")
case("v1000-d17-chunked", 63, 17, 1000, ignore_every=5, smoothing=0.1, chunk=128)
case("v1000-d256-n4096", 4096, 256, 1000, ignore_every=7)
case("v50257-d17", 63, 17, 50257, weight=True, smoothing=0.05, reduction="sum")
case("v50257-d256-n1", 1, 256, 50257)
case("v131072-d17", 63, 17, 131072, ignore_every=6, smoothing=0.1)
case("v131072-d1-n1", 1, 1, 131072, reduction="sum")
# Edge values: huge logits (|z| in the thousands), tiny ones, every target ignored.
case("huge-logits", 63, 17, 1000, x_scale=2000.0, smoothing=0.1, chunk=256)
case("tiny-logits", 63, 17, 1000, x_scale=1e-6, weight=True)
case("all-ignored-mean", 7, 17, 100, ignore_every=1)
case("all-ignored-sum", 7, 17, 100, ignore_every=1, reduction="sum")

with open(os.path.join(HERE, "linear_cross_entropy.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_lce.py", "torch": torch.__version__,
               "cases": CASES}, f, separators=(",", ":"))
