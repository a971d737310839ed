#!/usr/bin/env python3
"""Writes tests/golden/adadelta.json: torch.optim.Adadelta over every option, 5 steps, in the
format of optim.json (float32 inputs, float64 results), for tests/golden.rs.

    python3 -m pip install torch numpy
    python3 tests/golden/generate_adadelta.py
"""
import itertools, json, os
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(77)
f32 = lambda a: [float(v) for v in np.asarray(a, dtype=np.float32)]
cases = []
n, steps = 37, 5
for lr, rho, eps, wd, maximize in itertools.product(
        [1.0, 0.1], [0.9, 0.5], [1e-6, 1e-3], [0.0, 0.05], [False, True]):
    p0 = rng.uniform(-1, 1, size=n).astype(np.float32)
    grads = [rng.uniform(-1, 1, size=n).astype(np.float32) for _ in range(steps)]
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adadelta([p], lr=lr, rho=rho, eps=eps, weight_decay=wd, maximize=maximize)
    for g in grads:
        opt.zero_grad()
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    config = {"kind": "adadelta", "lr": lr, "rho": rho, "eps": eps, "weight_decay": wd,
              "maximize": maximize}
    cases.append({"name": f"adadelta/lr={lr}/rho={rho}/eps={eps}/wd={wd}/maximize={maximize}",
                  "config": config, "p0": f32(p0), "grads": [f32(g) for g in grads],
                  "expected": [float(v) for v in p.detach().numpy()]})
with open(os.path.join(HERE, "adadelta.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_adadelta.py", "torch": torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
print(len(cases), "cases")
