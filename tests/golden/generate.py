#!/usr/bin/env python3
"""Writes the golden fixtures that tests/golden.rs checks wgml against, computed by PyTorch.

    python3 -m pip install torch numpy safetensors
    python3 tests/golden/generate.py

Inputs are float32; expected values are computed by PyTorch in float64 from those float32
inputs, so the Rust tests compare wgml's float32 results with the exact answer under PyTorch's
own float32 tolerance (|a - e| <= 1e-5 + 1.3e-6 |e|).

Outputs (committed):
  cross_entropy.json   torch.nn.functional.cross_entropy, every option combination + edge values
  optim.json           torch.optim.Adam / AdamW / SGD, every option combination, 5 steps
  trajectory/          the MNIST tutorial MLP (as nn.Sequential) trained by Adam for 200 steps
                       (2 epochs of the bundled subset's first 6,400 training samples, without
                       shuffling): init.safetensors, final.safetensors, trajectory.json (per-step
                       losses, final test accuracy). Not longer: float32's own rounding splits
                       the trajectory soon after (spread.py: PyTorch in float32 and in float64
                       differ by 3.6e-6 in the weights after 200 steps of the whole subset, by
                       1.0e-4 after 250)
"""
import gzip, itertools, json, math, os, struct
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
rng = np.random.default_rng(2026)


def floats(a):
    """float64 values as a JSON list; NaN as null."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def f32(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def ce_case(name, shape, kind, reduction, weight, smoothing, ignore_index=-100, scale=3.0, ignored_every=4):
    x = (rng.uniform(-scale, scale, size=shape)).astype(np.float32)
    classes = shape[0] if len(shape) == 1 else shape[1]
    if kind == "classes":
        tshape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
        t = rng.integers(0, classes, size=tshape).astype(np.int64)
        flat = t.reshape(-1)
        if ignored_every:
            flat[::ignored_every] = ignore_index
        t = flat.reshape(tshape)
        target = torch.tensor(t)
        target_json = [int(v) for v in t.ravel()]
    else:
        p = rng.uniform(0, 1, size=shape)
        p = p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
        p = p.astype(np.float32)
        target = torch.tensor(p, dtype=torch.float64)
        target_json = f32(p)
    w = None
    if weight == "random":
        w = rng.uniform(0.1, 2.0, size=classes).astype(np.float32)
    elif weight == "zeros":
        w = rng.uniform(0.1, 2.0, size=classes).astype(np.float32)
        w[::2] = 0.0
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(xt, target, weight=None if w is None else torch.tensor(w, dtype=torch.float64),
                           ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    loss.sum().backward()
    grad = xt.grad if xt.grad is not None else torch.zeros_like(xt)
    return {
        "name": name, "shape": list(shape), "x": f32(x), "kind": kind, "target": target_json,
        "weight": None if w is None else f32(w), "ignore_index": ignore_index, "reduction": reduction,
        "label_smoothing": smoothing, "loss": floats(loss.detach().numpy()), "grad": floats(grad.numpy()),
    }


def cross_entropy_cases():
    cases = []
    shapes = {"NC": (6, 5), "C": (7,), "NCd": (3, 4, 5), "NCdd": (2, 3, 2, 3)}
    for kind, reduction, weight, eps, (sname, shape) in itertools.product(
            ["classes", "probabilities"], ["none", "sum", "mean"], ["none", "random", "zeros"],
            [0.0, 0.1, 0.35], shapes.items()):
        ignores = [-100, 1] if kind == "classes" else [-100]
        for ig in ignores:
            name = f"{kind}/{reduction}/weight={weight}/eps={eps}/{sname}/ignore={ig}"
            cases.append(ce_case(name, shape, kind, reduction, weight, eps, ignore_index=ig,
                                 ignored_every=4 if kind == "classes" and sname != "C" else 0))
    # Edge values.
    for kind, reduction in itertools.product(["classes", "probabilities"], ["none", "sum", "mean"]):
        cases.append(ce_case(f"edge/logits±1e4/{kind}/{reduction}", (8, 10), kind, reduction, "random", 0.1, scale=1e4))
        cases.append(ce_case(f"edge/C=1/{kind}/{reduction}", (5, 1), kind, reduction, "none", 0.0, ignored_every=0))
        cases.append(ce_case(f"edge/C=1000/{kind}/{reduction}", (3, 1000), kind, reduction, "random", 0.2))
        cases.append(ce_case(f"edge/N=1/{kind}/{reduction}", (1, 9), kind, reduction, "zeros", 0.0, ignored_every=0))
    for reduction in ["none", "sum", "mean"]:
        cases.append(ce_case(f"edge/all-ignored/{reduction}", (4, 6), "classes", reduction, "random", 0.1, ignored_every=1))
    return cases


def optim_cases():
    cases = []
    n, steps = 37, 5
    def run(name, make, config):
        p0 = rng.uniform(-1, 1, size=n).astype(np.float32)
        grads = [rng.uniform(-1, 1, size=n).astype(np.float32) for _ in range(steps)]
        p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        opt = make([p])
        for g in grads:
            opt.zero_grad()
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
        cases.append({"name": name, "config": config, "p0": f32(p0), "grads": [f32(g) for g in grads],
                      "expected": floats(p.detach().numpy())})
    for adamw, amsgrad, maximize, wd, betas in itertools.product(
            [False, True], [False, True], [False, True], [0.0, 0.1], [(0.9, 0.999), (0.8, 0.99)]):
        kind = "adamw" if adamw else "adam"
        config = {"kind": kind, "lr": 0.01, "betas": list(betas), "eps": 1e-6, "weight_decay": wd,
                  "amsgrad": amsgrad, "maximize": maximize}
        cls = torch.optim.AdamW if adamw else torch.optim.Adam
        run(f"{kind}/amsgrad={amsgrad}/maximize={maximize}/wd={wd}/betas={betas}",
            lambda ps: cls(ps, lr=0.01, betas=betas, eps=1e-6, weight_decay=wd, amsgrad=amsgrad, maximize=maximize),
            config)
    for momentum, dampening, nesterov, wd, maximize in itertools.product(
            [0.0, 0.9], [0.0, 0.5], [False, True], [0.0, 0.05], [False, True]):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        config = {"kind": "sgd", "lr": 0.05, "momentum": momentum, "dampening": dampening,
                  "nesterov": nesterov, "weight_decay": wd, "maximize": maximize}
        run(f"sgd/momentum={momentum}/dampening={dampening}/nesterov={nesterov}/wd={wd}/maximize={maximize}",
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                       weight_decay=wd, maximize=maximize),
            config)
    return cases


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


TRAJECTORY_SAMPLES = 6400  # 100 batches of 64: 200 steps are two whole epochs


def trajectory(steps=200):
    from safetensors.torch import save_file

    d = os.path.join(ROOT, "data", "mnist-subset")
    xtr = torch.tensor(load_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(-1, 784), dtype=torch.float32)[:TRAJECTORY_SAMPLES] / 255
    ytr = torch.tensor(load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")), dtype=torch.long)[:TRAJECTORY_SAMPLES]
    xte = torch.tensor(load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784), dtype=torch.float32) / 255
    yte = torch.tensor(load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")), dtype=torch.long)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    out = os.path.join(HERE, "trajectory")
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "init.safetensors"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    losses, step, n = [], 0, len(xtr)
    while step < steps:
        for i in range(0, n, 64):
            if step == steps:
                break
            loss = crit(model(xtr[i:i + 64]), ytr[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "final.safetensors"))
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).double().mean().item()
    with open(os.path.join(out, "trajectory.json"), "w") as f:
        json.dump({"steps": steps, "batch_size": 64, "lr": 1e-3, "train_samples": TRAJECTORY_SAMPLES,
                   "losses": losses, "test_acc": acc,
                   "torch": torch.__version__}, f)


def main():
    torch.set_num_threads(1)
    with open(os.path.join(HERE, "cross_entropy.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cross_entropy_cases()}, f)
    with open(os.path.join(HERE, "optim.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": optim_cases()}, f)
    trajectory()


if __name__ == "__main__":
    main()
