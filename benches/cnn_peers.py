#!/usr/bin/env python3
"""wgml's CNNs next to PyTorch in one run, on the same data, as ratios.

    python3 benches/cnn_peers.py [DATA_DIR] [--model cnn|lenet5] [--epochs N] [--rounds R]
                                 [--wgml PATH] [--device cpu|cuda]

Trains examples/mnist's `Net` (Adadelta lr 1.0, StepLR gamma 0.7, batch 64; --model cnn) or
LeNet-5 (Adam lr 1e-3; --model lenet5) with `wgml train --json` and with PyTorch holding the
data as tensors, alternating R times (default 5), and prints the median seconds per epoch of
each, every round's ratio (wgml / PyTorch, so > 1 means wgml is behind) and their median, and
PyTorch's rounds on their own, so that a slowed baseline shows. Needs `pip install torch numpy`.
DATA_DIR defaults to the bundled subset.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import ROOT, split  # noqa: E402


def torch_model(name):
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def torch_train(folder, name, epochs, device):
    torch.manual_seed(0)
    image = lambda stem: torch.tensor(split(folder, stem), dtype=torch.float32).div_(255).unsqueeze(1).to(device)
    label = lambda stem: torch.tensor(split(folder, stem), dtype=torch.long).to(device)
    x, y = image("train-images-idx3-ubyte"), label("train-labels-idx1-ubyte")
    xt, yt = image("t10k-images-idx3-ubyte"), label("t10k-labels-idx1-ubyte")
    model = torch_model(name).to(device)
    if name == "cnn":
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    else:
        opt, sched = torch.optim.Adam(model.parameters(), lr=1e-3), None
    seconds = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if sched:
            sched.step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        correct = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                      for i in range(0, len(xt), 1000))
    return statistics.median(seconds), correct / len(xt)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=os.path.join(ROOT, "data", "mnist-subset"))
    parser.add_argument("--model", choices=["cnn", "lenet5"], default="cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wgml", default=os.path.join(ROOT, "target", "release", "wgml"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ours, theirs, accs = [], [], []
    for _ in range(max(args.rounds, 1)):
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run([args.wgml, "train", "--model", args.model, "--data", args.data,
                                  "--epochs", str(args.epochs), "--json", "--out", os.path.join(out, "run")],
                                 capture_output=True, text=True, check=True)
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        ours.append(summary["sec_per_epoch_median"])
        seconds, acc = torch_train(args.data, args.model, args.epochs, args.device)
        theirs.append(seconds)
        accs.append((summary["test_acc"], acc))
    ratios = [o / t for o, t in zip(ours, theirs)]
    print(f"{args.model}, {args.epochs} epoch(s) per round, {len(ours)} alternating rounds, "
          f"PyTorch {torch.__version__} on {args.device} ({torch.get_num_threads()} threads)")
    print(f"wgml     s/epoch median {statistics.median(ours):.2f} (range {min(ours):.2f}-{max(ours):.2f})")
    print(f"PyTorch  s/epoch median {statistics.median(theirs):.2f} (range {min(theirs):.2f}-{max(theirs):.2f}): "
          + " ".join(f"{t:.2f}" for t in theirs))
    print(f"ratio wgml/PyTorch median {statistics.median(ratios):.2f}; rounds " + " ".join(f"{r:.2f}" for r in ratios))
    print("test accuracy (wgml, PyTorch) per round: " + " ".join(f"({a:.4f}, {b:.4f})" for a, b in accs))


if __name__ == "__main__":
    main()
