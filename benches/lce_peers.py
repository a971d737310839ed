#!/usr/bin/env python3
"""The fused linear cross-entropy next to the unfused wgml path and PyTorch, in one run.

    python3 benches/lce_peers.py [--shape N,D,V] [--rounds R] [--wgml PATH] [--device cpu|cuda]

Times loss + gradients of cross_entropy(x @ w.T + b, y) (mean reduction) at one shape: wgml
fused and unfused (`wgml bench --lce N,D,V --json`, one process per round) and PyTorch's
`F.cross_entropy(x @ w.T + b, y).backward()` (eager, float32). The two alternate R times; the
table gives each time's median and range over the rounds, the ratios' median and range, and
PyTorch's peak memory beyond its inputs on CUDA (torch.cuda.max_memory_allocated). PyTorch's
own per-round times are printed so that a slowed baseline is visible. Needs `pip install torch`.
"""
import argparse, json, os, statistics, subprocess, time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_time(n, d, v, device, reps):
    """Median seconds of loss + gradients over `reps` runs after one warm-up, and the peak bytes
    allocated beyond the inputs (CUDA only)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, d, generator=g) * 2 - 1).to(device).requires_grad_(True)
    w = ((torch.rand(v, d, generator=g) * 2 - 1) / d**0.5).to(device).requires_grad_(True)
    b = ((torch.rand(v, generator=g) * 2 - 1) / d**0.5).to(device).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=g).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times, peak = [], None
    for i in range(reps + 1):
        x.grad = w.grad = b.grad = None
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        sync()
        start = time.perf_counter()
        F.cross_entropy(x @ w.T + b, y).backward()
        sync()
        if i > 0:
            times.append(time.perf_counter() - start)
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated() - base
    return statistics.median(times), peak


def wgml_time(binary, shape):
    out = subprocess.run([binary, "bench", "--lce", shape, "--json"], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])["linear_cross_entropy"][0]
    return r["ms"] / 1e3, r["unfused_ms"] and r["unfused_ms"] / 1e3, r["extra_bytes"], r["unfused_extra_bytes"]


def spread(values):
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="2048,256,16384")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="PyTorch runs per round")
    ap.add_argument("--wgml", default=os.path.join(ROOT, "target", "release", "wgml"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    n, d, v = (int(s) for s in args.shape.split(","))
    fused, unfused, torch_s = [], [], []
    for r in range(args.rounds):
        f, u, extra, unfused_extra = wgml_time(args.wgml, args.shape)
        t, peak = torch_time(n, d, v, args.device, args.reps)
        fused.append(f)
        if u is not None:
            unfused.append(u)
        torch_s.append(t)
        print(f"round {r + 1}: wgml fused {f:.3f} s, unfused {u if u is None else round(u, 3)} s; "
              f"PyTorch {t:.3f} s", flush=True)
    mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"
    print(f"\nN={n} D={d} V={v}, loss + gradients, medians (ranges) of {args.rounds} rounds, seconds")
    print(f"  wgml fused     {spread(fused)}   extra memory {mib(extra)} MiB")
    if unfused:
        print(f"  wgml unfused   {spread(unfused)}   extra memory {mib(unfused_extra)} MiB")
        print(f"  fused / unfused   {spread([a / b for a, b in zip(fused, unfused)])}")
    print(f"  PyTorch ({args.device}) {spread(torch_s)}" + (f"   peak {mib(peak)} MiB" if peak else ""))
    print(f"  fused / PyTorch   {spread([a / b for a, b in zip(fused, torch_s)])}")


if __name__ == "__main__":
    main()
