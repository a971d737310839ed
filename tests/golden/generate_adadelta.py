#!/usr/bin/env python3
"""Writes tests/golden/adadelta.json: torch.optim.Adadelta over every option, 5 steps, in the
format of optim.json (float32 inputs, float64 results), and tests/golden/steplr.json: StepLR
over four optimizers, for tests/golden.rs.

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

# StepLR: epochs of 3 steps each, the scheduler stepped after every epoch.
schedules = []
for kind, make, step_size, gamma in [
        ("adadelta", lambda ps: torch.optim.Adadelta(ps, lr=1.0), 1, 0.7),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01), 2, 0.5),
        ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1), 1, 0.7),
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 2, 0.1)]:
    epochs, per_epoch = 4, 3
    p0 = rng.uniform(-1, 1, size=n).astype(np.float32)
    grads = [rng.uniform(-1, 1, size=n).astype(np.float32) for _ in range(epochs * per_epoch)]
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    lrs = []
    for e in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for g in grads[e * per_epoch:(e + 1) * per_epoch]:
            opt.zero_grad()
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
        sched.step()
    schedules.append({"name": f"steplr/{kind}/step={step_size}/gamma={gamma}", "kind": kind,
                      "step_size": step_size, "gamma": gamma, "per_epoch": per_epoch,
                      "lrs": lrs, "p0": f32(p0), "grads": [f32(g) for g in grads],
                      "expected": [float(v) for v in p.detach().numpy()]})
with open(os.path.join(HERE, "steplr.json"), "w") as f:
    json.dump({"generator": "tests/golden/generate_adadelta.py", "torch": torch.__version__,
               "cases": schedules}, f, separators=(",", ":"))
print(len(schedules), "schedules")
