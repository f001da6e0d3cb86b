#!/usr/bin/env python3
"""Peer timing for `make bench` (issue 11 item 4): PyTorch's SGD step on the
bench's network — an MLP of depth 6 (5 tanh layers of the given width and a
10-class head, input dimension = width), batch 128, cross-entropy, weight
decay 1e-4, lr 0.1 — forward, backward and optimizer update, on the CPU with
every core.  Prints one line per (precision, width): "torch f32 1024 0.0895"
(median seconds of the repetitions after a warm-up).  Optional: bench.c runs
it only when `import torch` works (Debian: python3-torch)."""
import os
import sys

import torch

from torch_common import median_step_time

DEPTH, BATCH = 6, 128


def step_time(width, dtype, reps):
    torch.manual_seed(1)
    layers = []
    for l in range(DEPTH):
        out = 10 if l == DEPTH - 1 else width
        layers.append(torch.nn.Linear(width, out))
        if l < DEPTH - 1:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers).to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)
    x = torch.randn(BATCH, width, dtype=dtype)
    y = torch.randint(0, 10, (BATCH,))
    return median_step_time(net, opt, x, y, reps)


def main():
    widths = [int(w) for w in sys.argv[1:]] or [256, 512, 1024]
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core, as OpenBLAS uses
    for name, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        for w in widths:
            print(f"torch {name} {w} {step_time(w, dtype, 5 if w >= 512 else 9):.6f}", flush=True)


if __name__ == "__main__":
    main()
