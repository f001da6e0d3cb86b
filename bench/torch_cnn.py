#!/usr/bin/env python3
"""Peer timing for the CNN section of `make bench` (issue 14 item 5),
mirroring bench/torch_sgd.py: PyTorch's SGD step on bench/cnn.c's network —
3x16x16 → Conv2d(3, 16, 3, padding=1) → Conv2d(16, 32, 3, stride 2,
padding 1) → Conv2d(32, 64, 3, stride 2, padding 1) → Linear(1024, 10), ReLU
after each conv (SPEC §14 `same` padding is PyTorch's symmetric (k−1)/2),
batch 128, cross-entropy, weight decay 1e-4, lr 0.1 — forward, backward and
update, on the CPU with every core.  Prints "torch_cnn f32 0.0123" and the
f64 line (median seconds after a warm-up).  Optional: bench/cnn.c runs it
only when `import torch` works (Debian: python3-torch)."""
import os

import torch

from torch_common import median_step_time

BATCH = 128


def step_time(dtype, reps):
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10)).to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)
    x = torch.randn(BATCH, 3, 16, 16, dtype=dtype)
    y = torch.randint(0, 10, (BATCH,))
    return median_step_time(net, opt, x, y, reps)


def main():
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core, as OpenBLAS uses
    for name, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        print(f"torch_cnn {name} {step_time(dtype, 9):.6f}", flush=True)


if __name__ == "__main__":
    main()
