#!/usr/bin/env python3
"""Scores weights saved by `wgml train --save FILE` in PyTorch: the round trip's other half.

    python3 tests/golden/evaluate.py FILE.safetensors DATA_DIR [hidden ...]

Builds nn.Sequential(Linear, ReLU, …, Linear) from the file's shapes, loads it with
load_state_dict (strict), and prints the test accuracy on DATA_DIR's t10k files (inputs / 255).
"""
import gzip, os, struct, sys
import numpy as np
import torch
from safetensors.torch import load_file


def load_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def find(d, stem):
    for ext in (".gz", ""):
        if os.path.exists(os.path.join(d, stem + ext)):
            return os.path.join(d, stem + ext)
    raise FileNotFoundError(stem)


def main():
    state = load_file(sys.argv[1])
    linear = sorted({int(k.split(".")[0]) for k in state})
    layers = []
    for i, idx in enumerate(linear):
        out_f, in_f = state[f"{idx}.weight"].shape
        if i > 0:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(in_f, out_f))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict(state)
    x = torch.tensor(load_idx(find(sys.argv[2], "t10k-images-idx3-ubyte")), dtype=torch.float32)
    y = torch.tensor(load_idx(find(sys.argv[2], "t10k-labels-idx1-ubyte")), dtype=torch.long)
    with torch.no_grad():
        acc = (model(x.reshape(len(x), -1) / 255).argmax(1) == y).double().mean().item()
    print(f"{acc:.6f}")


if __name__ == "__main__":
    main()
