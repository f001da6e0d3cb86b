#!/usr/bin/env python3
"""`make digits-cnn` (issue 14 item 6): a small CNN on the 8x8 DIGITS images with `ocn train`.

The protocol of `make digits` (ci/digits.py, whose run/search helpers this
reuses): a learning-rate search on a validation part of the training split
(`--valid 0.2`, 2 seeds, never the test split), then 10 seeds at the chosen
rate scored on the test split.  Optimizers: SGD-m, Adam, KFAC (`kfac`,
`zero: [Qthx]`) and DDPNOpt with DDPNOpt's CNN recipe (KFC `kfac` curvature,
Prop. 3's `terminal: outer`); plus KFAC without feedback at DDPNOpt's rate,
paired by seed (the feedback ablation).  Writes docs/digits-cnn.svg and the
CNN section of docs/results.md (between the digits-cnn markers; `make digits`
keeps that section when it rewrites the file).

Standard library only.  Environment: OCN, OUT (build/digits-cnn), JOBS (2),
SEEDS (10), EPOCHS (20), SEARCH_SEEDS (2), DOCS (docs), REUSE=1.
"""
import json
import math
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits as D  # noqa: E402  (run, run_all, score, mean, sd, t975, svg_panel)

D.OUT = os.environ.get("OUT", "build/digits-cnn")
D.EPOCHS = int(os.environ.get("EPOCHS", "20"))
D.NET = "ci/digits/cnn.json"
D.REUSE = os.environ.get("REUSE") == "1"
SEEDS, EPOCHS, SEARCH_SEEDS, DOCS = D.SEEDS, D.EPOCHS, D.SEARCH_SEEDS, D.DOCS
BUDGET = 900  # seconds: the target's own 15-minute limit (2 cores)

KFAC = ["--curvature", "kfac", "--damping", "0.01", "--stat-decay", "0.95", "--refresh-every", "1"]
D.OPTS = [
    dict(key="sgd", label="SGD-m (momentum 0.9)", args=["--optimizer", "sgd", "--momentum", "0.9"], grid=D.GRID_SGD),
    dict(key="adam", label="Adam (PyTorch)", args=["--optimizer", "adam"], grid=D.GRID_ADAPT),
    dict(key="kfac-nofb", label="KFAC, zero: [Qthx] (our KFC)", args=KFAC + ["--zero", "Qthx"], grid=D.GRID_KFAC),
    dict(key="ddp-kfac", label="DDPNOpt, kfac (KFC) curvature", args=KFAC + ["--zero", "", "--value", "blockdiag"],
         grid=D.GRID_KFAC),
    dict(key="kfac-nofb-ddplr", label="KFAC, zero: [Qthx], DDPNOpt's rate (ablation)",
         args=KFAC + ["--zero", "Qthx"], grid=None, lr_from="ddp-kfac"),
]
COLORS = {"sgd": "#1f77b4", "adam": "#2ca02c", "kfac-nofb": "#9467bd", "ddp-kfac": "#e377c2",
          "kfac-nofb-ddplr": "#8c564b"}
BEGIN, END = "<!-- digits-cnn:begin -->", "<!-- digits-cnn:end -->"


def write_svg(path, final):
    acc, loss = [], []
    for o in D.OPTS:
        runs = final[o["key"]]
        ca = [[100 * v for v in s["curves"]["eval_acc"]] for s in runs]
        cl = [s["curves"]["train_loss"] for s in runs]
        n = min(len(c) for c in ca + cl)

        def stats(cs):
            return ([D.mean([c[e] for c in cs]) for e in range(n)], [min(c[e] for c in cs) for e in range(n)],
                    [max(c[e] for c in cs) for e in range(n)])

        acc.append((COLORS[o["key"]], o["label"], *stats(ca)))
        loss.append((COLORS[o["key"]], o["label"], *stats(cl)))
    W, H = 980, 490
    D.svg_two_panels(path, W, H, "DIGITS CNN", SEEDS, acc, loss, EPOCHS)


def paired(a, b):
    d = [x - y for x, y in zip(a, b)]
    h = D.t975(len(d) - 1) * D.sd(d) / math.sqrt(len(d))
    return D.mean(d), D.mean(d) - h, D.mean(d) + h, sum(1 for x in d if x > 0), sum(1 for x in d if x == 0)


def main():
    t0 = time.time()
    load0 = os.getloadavg()[0]
    os.makedirs(D.OUT + "/search", exist_ok=True)
    os.makedirs(D.OUT + "/final", exist_ok=True)
    jobs = [(o["key"], lr, 101 + s, True, "%s/search/%s-%g-%d.json" % (D.OUT, o["key"], lr, 101 + s))
            for o in D.OPTS for lr in (o["grid"] or []) for s in range(SEARCH_SEEDS)]
    search = D.run_all(jobs)
    chosen, rows_s = {}, []
    for o in D.OPTS:
        if not o["grid"]:
            continue
        best = None
        for lr in o["grid"]:
            ss = [search[(o["key"], lr, 101 + s)] for s in range(SEARCH_SEEDS)]
            acc = D.mean([D.score(s) for s in ss])
            loss = D.mean([s["final"]["eval_loss"] if not s["diverged"] else math.inf for s in ss])
            rows_s.append((o["key"], lr, acc))
            if best is None or (acc, -loss) > (best[1], -best[2]):
                best = (lr, acc, loss)
        chosen[o["key"]] = best[0]
    for o in D.OPTS:
        if not o["grid"]:
            chosen[o["key"]] = chosen[o["lr_from"]]
    t_search = time.time() - t0
    jobs = [(o["key"], chosen[o["key"]], s, False, "%s/final/%s-%d.json" % (D.OUT, o["key"], s))
            for o in D.OPTS for s in range(1, SEEDS + 1)]
    res = D.run_all(jobs)
    final = {o["key"]: [res[(o["key"], chosen[o["key"]], s)] for s in range(1, SEEDS + 1)] for o in D.OPTS}
    wall = time.time() - t0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    tpath = D.OUT + "/timing.json"
    if D.REUSE and os.path.exists(tpath):
        with open(tpath) as f:
            tm = json.load(f)
        wall, t_search, load0, commit, date = tm["wall"], tm["search"], tm["load"], tm["commit"], tm["date"]
    else:
        date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0))
        with open(tpath, "w") as f:
            json.dump({"wall": wall, "search": t_search, "load": load0, "commit": commit, "date": date}, f)
    sgd_ep = D.mean([s["seconds_per_epoch"] for s in final["sgd"]])
    lines = ["| optimizer | lr | test accuracy (%%), mean ± sd over %d seeds | final train loss | s/epoch | "
             "time vs SGD |" % SEEDS, "| --- | --- | --- | --- | --- | --- |"]
    for o in D.OPTS:
        runs = final[o["key"]]
        accs = [100 * s["final"]["eval_acc"] for s in runs]
        div = sum(1 for s in runs if s["diverged"])
        ep = D.mean([s["seconds_per_epoch"] for s in runs])
        lines.append("| %s | %g | %.2f ± %.2f%s | %.4f | %.3f | %.1f× |"
                     % (o["label"], chosen[o["key"]], D.mean(accs), D.sd(accs), " (%d diverged)" % div if div else "",
                        D.mean([s["final"]["train_loss"] for s in runs]), ep, ep / sgd_ep))
    table = "\n".join(lines)
    a = [100 * s["final"]["eval_acc"] for s in final["ddp-kfac"]]
    b = [100 * s["final"]["eval_acc"] for s in final["kfac-nofb-ddplr"]]
    la = [s["final"]["train_loss"] for s in final["ddp-kfac"]]
    lb = [s["final"]["train_loss"] for s in final["kfac-nofb-ddplr"]]
    m, lo, hi, wins, ties = paired(a, b)
    ml, lol, hil, _w, _t = paired(la, lb)
    verdict = ("the feedback helps test accuracy (the interval excludes 0)" if lo > 0 else
               "the feedback hurts test accuracy (the interval excludes 0)" if hi < 0 else
               "no accuracy difference shown (the interval contains 0)")
    ablation = ("DDPNOpt (kfac) minus KFAC with zero: [Qthx] at the same rate %g and seeds 1..%d (paired): test "
                "accuracy %+.2f points, 95%% interval [%+.2f, %+.2f] (t, %d df), feedback better in %d of %d seeds, "
                "equal in %d; final training loss %+.4f, 95%% interval [%+.4f, %+.4f]: %s"
                % (chosen["ddp-kfac"], SEEDS, m, lo, hi, SEEDS - 1, wins, SEEDS, ties, ml, lol, hil, verdict))
    sr = ["| optimizer | rate: validation accuracy | | | |", "| --- | --- | --- | --- | --- |"]
    for o in D.OPTS:
        if o["grid"]:
            cells = ["%s%g: %s%s" % ("**" if lr == chosen[k] else "", lr, "diverged" if acc < 0 else
                                     "%.2f%%" % (100 * acc), "**" if lr == chosen[k] else "")
                     for k, lr, acc in rows_s if k == o["key"]]
            sr.append("| %s | %s |" % (o["label"], " | ".join(cells)))
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    over = "" if wall <= BUDGET else " — **over the 15-minute budget** (%.0f s)" % wall
    section = TEMPLATE.format(begin=BEGIN, end=END, seeds=SEEDS, epochs=EPOCHS, table=table, ablation=ablation,
                              search="\n".join(sr), search_seeds=SEARCH_SEEDS, commit=commit, date=date, wall=wall,
                              search_wall=t_search, jobs=D.JOBS, load=load0, cpu=cpu, ncpu=os.cpu_count(),
                              host=platform.machine(), over=over)
    print(table + "\n\nAblation: " + ablation)
    print("make digits-cnn: %.0f s wall (search %.0f s), %d parallel runs, load average at start %.2f%s"
          % (wall, t_search, D.JOBS, load0, over))
    write_svg(DOCS + "/digits-cnn.svg", final)
    path = DOCS + "/results.md"
    with open(path) as f:
        text = f.read()
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print("wrote %s/digits-cnn.svg and %s" % (DOCS, path))


TEMPLATE = """{begin}
## A small CNN on DIGITS (`make digits-cnn`, issue 14)

Written by `make digits-cnn` (ci/digits_cnn.py) — do not edit by hand.
The paper (DDPNOpt, Table 3) trains no CNN on DIGITS: there is no paper
column; these rows sit beside the feed-forward table above.

![CNN: test accuracy and training loss against epoch](digits-cnn.svg)

{seeds} seeds (1..{seeds}), {epochs} epochs, batch 128 (the paper's CNN batch),
`ci/digits/cnn.json`: 1x8x8 → conv 3x3 `same` 8 channels → conv 3x3 stride 2
16 channels (4x4) → conv 3x3 `same` 16 channels → dense 32 → dense 10; ReLU
everywhere but the identity last layer (the paper's CNN recipe: ReLU, 3x3
kernels), softmax cross-entropy, no weight decay, §12/§14 initialisation from
the run's seed. Accuracy on the test split after the last epoch.

{table}

**Feedback ablation.** {ablation}.

### Learning-rate search (CNN)

The protocol of the feed-forward table: four rates inside DDPNOpt's Table 5
ranges (SGD (7e-2, 5e-1), Adam (7e-4, 1e-2), EKFAC (1e-2, 3e-1), DDPNOpt
with its curvature's range), {search_seeds} seeds (101, …), `--valid 0.2`;
mean validation accuracy after {epochs} epochs, the chosen rate in bold.

{search}

### Conditions (CNN)

`make digits-cnn` on {date}, commit {commit}: {wall:.0f} s wall ({search_wall:.0f} s of it the search){over},
{jobs} runs in parallel, each single-threaded, on {ncpu} cores ({cpu}, {host}); load
average {load:.2f} when it started (other agents shared the machine: the
seconds per epoch are noisy). Seconds per epoch count the optimizer steps only.

### Notes (CNN)

* DDP variants step through the optimized path's im2col conv step
  (`ocn_opt_step`, FNE, `terminal: outer` — Prop. 3, which the paper imposes
  on all its CNNs) with the §13 state: KFC factors (§14) averaged with
  ρ = 0.95, refactorised every step, γ = 0.01 (√γ = 0.1 on both factors),
  fixed, not searched. The paper's "GN" curvature for CNNs is its eq. 9, the
  Kronecker-factored Gauss–Newton: our `kfac` with the KFC factors.
* **`value: blockdiag`, not `persample`.** DDPNOpt's Alg. 3 as printed
  (`persample`, no 1/B in `v_xx = Q_xx − Q_xθ K`) diverges at batch 128 on
  this CNN at every rate of the EKFAC range (measured once at commit c7b777b,
  not by this script): seed 1, 6 epochs, lr 0.01:
  training loss 2.31 → 104, 16% test accuracy; lr 0.03: 5e5; below the range
  lr 0.003 learns slowly (2.31 → 2.07 in 5 epochs). With `blockdiag` (the
  1/B of the batch-augmented system, GT-DDP §4.2) lr 0.03 trains (96.4% after
  6 epochs); lr 0.1 still diverges, where KFAC without feedback trains. The
  optimized path's step equals the reference's on this network at batch 8
  (`ocn gen` + `ocn check`: 72 rows passed, persample, feedback on), so the
  divergence is the method's, not the port's.
* `gn-outer` is not run: its §7 Woodbury Gram over locations holds
  `(B·P)²` doubles per conv layer (B·P = 8192 at the first layer: 0.5 GB,
  about a second a step on this machine); it is accepted by `ocn train` and
  tested on a tiny conv net (tests/test_train.c).
* Paper settings not followed for time: 3 conv layers of 8–16 channels (the
  paper: 4 of 32), {epochs} epochs. The last partial batch of an epoch is
  dropped (11 steps per epoch on the full training split, 8 with `--valid`).
{end}"""

if __name__ == "__main__":
    main()
