#!/usr/bin/env python3
"""Writes tests/golden/cnn_trajectory.json: PyTorch's examples/mnist `Net`, as the nn.Sequential
wgml builds (`ModelSpec::mnist_cnn`), with dropout off, trained in steps of 64 on the bundled
subset's first 6,400 training samples in file order, for tests/golden.rs. Two trajectories:

  adam     Adam (lr 1e-4), 100 steps. PyTorch in float32 stays within 1.3e-6 of float64 in every
           step's loss, so the whole trajectory is a fair test of a float32 implementation.
  adadelta examples/mnist's recipe, Adadelta (lr 1.0). Chaotic: PyTorch's own float32 and float64
           runs part by 1e-5 at step 8, 7e-4 at step 11 and 1.3e-1 by step 61 (a ReLU or a
           pooling window flips, and lr 1.0 amplifies it), so only the steps before that part
           are a test; the fixture holds the first 10.

The initial weights come from the counter-based generator of generate_lce.py (each tensor
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch draws them, but reproducible bit for bit on both
sides), so the fixture stores no tensors: the per-step losses, and each final tensor's sum, sum
of squares and first 32 values. The trajectory is computed in float64 (the exact answer for
float32 inputs); float32 PyTorch's own distance from it is recorded beside it.

    python3 -m pip install torch numpy
    python3 tests/golden/generate_cnn.py
"""
import gzip, json, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
M32 = np.uint64(0xFFFFFFFF)
SAMPLES, STEPS, BATCH = 6400, 100, 64


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
    """float32 values in [-scale/2, scale/2): ((h >> 8)·2⁻²⁴ − 0.5)·scale."""
    u = (hashes(count, seed) >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)
    return (u - np.float32(0.5)) * np.float32(scale)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def net():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.0), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.0),
        nn.Linear(128, 10))


def initial(model):
    """Each parameter (state_dict order, seed = its position + 1) from `values`, bound
    1/sqrt(fan_in) of its layer."""
    state = {}
    for seed, (name, p) in enumerate(model.state_dict().items(), start=1):
        layer = name.split(".")[0]
        weight = model.state_dict()[layer + ".weight"]
        fan_in = int(np.prod(weight.shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        v = values(p.numel(), seed, np.float32(2 * bound))
        state[name] = torch.tensor(v).reshape(p.shape)
    return state


def train(dtype, optimizer, steps):
    d = os.path.join(ROOT, "data", "mnist-subset")
    x = load_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))[:SAMPLES]
    y = load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))[:SAMPLES]
    x = torch.tensor(x.astype(np.float32) / np.float32(255)).reshape(-1, 1, 28, 28).to(dtype)
    y = torch.tensor(y.astype(np.int64))
    model = net()
    model.load_state_dict(initial(model))
    model = model.to(dtype)
    opt = optimizer(model.parameters())
    losses = []
    for step in range(steps):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        loss = F.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.double() for k, v in model.state_dict().items()}


torch.set_num_threads(os.cpu_count() or 1)
trajectories = {}
for name, optimizer, steps in [
    ("adam", lambda p: torch.optim.Adam(p, lr=1e-4), STEPS),
    ("adadelta", lambda p: torch.optim.Adadelta(p, lr=1.0), 10),
]:
    losses, final = train(torch.float64, optimizer, steps)
    losses32, final32 = train(torch.float32, optimizer, steps)
    rel = max(abs(a - b) / abs(b) for a, b in zip(losses32, losses))
    wdiff = max((final32[k] - final[k]).abs().max().item() for k in final)
    digest = {k: {"shape": list(v.shape), "sum": v.sum().item(), "sum_sq": (v * v).sum().item(),
                  "head": v.reshape(-1)[:32].tolist()} for k, v in final.items()}
    trajectories[name] = {"steps": steps, "losses": losses, "final": digest,
                          "float32_vs_float64": {"loss_rel": rel, "weight_abs": wdiff}}
    print(f"{name}: {steps} steps; float32 PyTorch vs float64: loss {rel:.2e} relative, "
          f"weights {wdiff:.2e}")
with open(os.path.join(HERE, "cnn_trajectory.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_cnn.py", "torch": torch.__version__,
               "batch_size": BATCH, "train_samples": SAMPLES, "trajectories": trajectories}, f)
