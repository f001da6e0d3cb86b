"""Shared by bench/torch_sgd.py and bench/torch_cnn.py: the timed PyTorch
training step (forward, backward, optimizer update), median of `reps` after a
warm-up, exactly as both peers measure it."""
import statistics
import time

import torch


def median_step_time(net, opt, x, y, reps):
    loss_fn = torch.nn.CrossEntropyLoss()

    def one():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    one()  # warm-up
    return statistics.median(one() for _ in range(reps))
