#!/usr/bin/env python3
"""How far PyTorch's own trajectories land from the golden one, by device, threads and precision.

    python3 tests/golden/spread.py [cpu|cuda|float64 ...]

Replays generate.py's trajectory (the tutorial MLP, Adam, on the bundled subset, no shuffling)
from trajectory/init.safetensors on each device named (float64: on the CPU in double precision,
the exact trajectory to float32's eye) and prints the measures tests/golden.rs applies to wgml:
the largest relative loss error and the largest weight error against trajectory/, and how many
weights lie more than 1e-4 away. `STEPS=250` replays further than the fixture, `SAMPLES=all` on
the whole subset: losses and weights are then compared with the first replay's. Needs only
torch and numpy.
"""
import json, os, struct, sys
import numpy as np
import torch
from generate import HERE, ROOT, load_idx


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.float32).reshape(t["shape"])
    return out


def replay(device, dtype, threads, steps, expected):
    """Per-step losses and the final weights (as float32)."""
    torch.set_num_threads(threads)
    d = os.path.join(ROOT, "data", "mnist-subset")
    n = expected.get("train_samples") if os.environ.get("SAMPLES") != "all" else None
    x = torch.tensor(load_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(-1, 784),
                     dtype=torch.float32)[:n] / 255
    x = x.to(device=device, dtype=dtype)
    y = torch.tensor(load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")), dtype=torch.long, device=device)[:n]
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    init = load_safetensors(os.path.join(HERE, "trajectory", "init.safetensors"))
    model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    model = model.to(device=device, dtype=dtype)
    opt = torch.optim.Adam(model.parameters(), lr=expected["lr"])
    crit = torch.nn.CrossEntropyLoss()
    losses, b = [], expected["batch_size"]
    while len(losses) < steps:
        for i in range(0, len(x), b):
            if len(losses) == steps:
                break
            loss = crit(model(x[i:i + b]), y[i:i + b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, {k: p.detach().cpu().float().numpy() for k, p in model.state_dict().items()}


def main():
    with open(os.path.join(HERE, "trajectory", "trajectory.json")) as f:
        expected = json.load(f)
    steps = int(os.environ.get("STEPS", expected["steps"]))
    reference = ref_losses = None
    if steps == expected["steps"] and os.environ.get("SAMPLES") != "all":
        reference = load_safetensors(os.path.join(HERE, "trajectory", "final.safetensors"))
        ref_losses = expected["losses"]
    print(f"{steps} Adam steps; against {'the fixture' if reference else 'the first replay'}")
    runs = []
    for name in sys.argv[1:] or ["cpu"]:
        if name == "float64":
            runs.append(("cpu", torch.float64, 1, "cpu, float64"))
        elif name == "cuda":
            runs.append(("cuda", torch.float32, 1, torch.cuda.get_device_name()))
        else:
            runs += [("cpu", torch.float32, t, f"cpu, {t} threads") for t in sorted({1, 2, os.cpu_count()})]
    for device, dtype, threads, label in runs:
        losses, weights = replay(device, dtype, threads, steps, expected)
        reference, ref_losses = reference or weights, ref_losses or losses
        rel = max(abs(a - e) / abs(e) for a, e in zip(losses, ref_losses))
        errs = [np.abs(weights[k] - reference[k]) for k in reference]
        worst = max(float(e.max()) for e in errs)
        over = sum(int((e > 1e-4).sum()) for e in errs)
        print(f"torch {torch.__version__} on {label}: largest relative loss error {rel:.2e}, "
              f"weight error {worst:.2e} ({over} over 1e-4)")


if __name__ == "__main__":
    main()
