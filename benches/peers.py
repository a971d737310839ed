#!/usr/bin/env python3
"""wgml next to PyTorch in one run, on the same data and shapes, as ratios.

    python3 benches/peers.py [DATA_DIR] [--epochs N] [--rounds R] [--wgml PATH] [--device cpu|cuda]

Trains PyTorch's MNIST tutorial model (784-128-10, Adam lr 1e-3, batch 64) with wgml
(`wgml train --json`) and with PyTorch holding the data as tensors and slicing batches by index
(the fast way to write it), then times the matmul shapes of `wgml bench` with torch.mm. Prints
one table; ratios are wgml / PyTorch for times and PyTorch / wgml for throughput, so > 1 means
wgml is behind. The two trainings, and then the two matmul timings, alternate R times (--rounds,
default 5): each row gives medians over rounds, the epoch and the largest square matmul every
round's ratio beneath. On a shared, noisy machine one round's ratio can be off by a third. Needs
`pip install torch numpy`. DATA_DIR defaults to the bundled subset.
"""
import argparse, gzip, json, os, statistics, struct, subprocess, sys, tempfile, time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = struct.unpack(">" + "I" * data[3], data[4:4 + 4 * data[3]])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def split(folder, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return idx(os.path.join(folder, name))
    sys.exit(f"{folder}: no {stem}[.gz]")


def torch_train(folder, epochs, device):
    torch.manual_seed(0)
    x = torch.tensor(split(folder, "train-images-idx3-ubyte"), dtype=torch.float32).reshape(-1, 784).div_(255).to(device)
    y = torch.tensor(split(folder, "train-labels-idx1-ubyte"), dtype=torch.long).to(device)
    xt = torch.tensor(split(folder, "t10k-images-idx3-ubyte"), dtype=torch.float32).reshape(-1, 784).div_(255).to(device)
    yt = torch.tensor(split(folder, "t10k-labels-idx1-ubyte"), dtype=torch.long).to(device)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            loss = loss_fn(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).double().mean().item()
    return statistics.median(seconds), acc


def torch_gflops(m, n, k, trans_a, trans_b, device, budget=0.5):
    a = torch.randn((k, m) if trans_a else (m, k), device=device)
    b = torch.randn((n, k) if trans_b else (k, n), device=device)
    op_a, op_b = (a.t() if trans_a else a), (b.t() if trans_b else b)
    reps, elapsed = 1, 0.0
    while elapsed < budget:
        reps *= 2
        start = time.perf_counter()
        for _ in range(reps):
            op_a @ op_b
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return 2 * m * n * k * reps / elapsed / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=os.path.join(ROOT, "data", "mnist-subset"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--wgml", default=os.path.join(ROOT, "target", "release", "wgml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rounds = range(max(args.rounds, 1))
    ours_rounds, theirs_rounds = [], []
    for _ in rounds:
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run([args.wgml, "train", "--data", args.data, "--epochs", str(args.epochs), "--json",
                                  "--out", os.path.join(out, "run")], capture_output=True, text=True, check=True)
        ours = json.loads(run.stdout.strip().splitlines()[-1])
        ours_rounds.append(ours["sec_per_epoch_median"])
        theirs_s, theirs_acc = torch_train(args.data, args.epochs, args.device)
        theirs_rounds.append(theirs_s)
    # Per shape, wgml's and torch.mm's GFLOP/s in each round.
    matmuls = {}
    for _ in rounds:
        bench = json.loads(subprocess.run([args.wgml, "bench", "--json", "--samples", "8000"], capture_output=True,
                                          text=True, check=True).stdout)
        for r in bench["matmul"]:
            shape = (r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"])
            pairs = matmuls.setdefault(shape, [])
            pairs.append((r["gflops"], torch_gflops(*shape, args.device)))
    ours_s, theirs_s = statistics.median(ours_rounds), statistics.median(theirs_rounds)

    print(f"wgml on {ours['adapter']} ({ours['backend']}); PyTorch {torch.__version__} on {args.device}, "
          f"{torch.get_num_threads()} threads; data {args.data}, {ours['train_samples']} samples\n")
    print(f"{'':<32}{'wgml':>12}{'PyTorch':>12}{'ratio':>9}")
    print(f"{'epoch (s, median)':<32}{ours_s:>12.3f}{theirs_s:>12.3f}{ours_s / theirs_s:>9.2f}")
    if len(ours_rounds) > 1:
        spread = lambda v: f"{min(v):.3f}-{max(v):.3f}"
        print(f"{'  range over rounds':<32}{spread(ours_rounds):>12}{spread(theirs_rounds):>12}")
        ratios = [o / t for o, t in zip(ours_rounds, theirs_rounds)]
        print(f"{'  ratio by round':<32}" + " ".join(f"{r:.2f}" for r in ratios)
              + f"  (median {statistics.median(ratios):.2f})")
    print(f"{'test accuracy':<32}{ours['test_acc']:>12.4f}{theirs_acc:>12.4f}")
    for (m, n, k, trans_a, trans_b), pairs in matmuls.items():
        ours_g = statistics.median(o for o, _ in pairs)
        theirs_g = statistics.median(t for _, t in pairs)
        op = ("Aᵀ" if trans_a else "A") + ("Bᵀ" if trans_b else "B")
        label = f"matmul {m}×{n}×{k} {op} (GFLOP/s)"
        print(f"{label:<32}{ours_g:>12.2f}{theirs_g:>12.2f}{theirs_g / ours_g:>9.1f}")
    square = max((shape for shape in matmuls if shape[0] == shape[1] == shape[2]), default=None)
    if square and len(matmuls[square]) > 1:
        ratios = " ".join(f"{t / o:.1f}" for o, t in matmuls[square])
        print(f"{'  ' + str(square[0]) + '³ ratio by round':<32}{ratios}")


if __name__ == "__main__":
    main()
