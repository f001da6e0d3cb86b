#!/usr/bin/env python3
"""A full port of one ocnopt optimizer step, in numpy alone.

    python3 examples/port_numpy.py FIXTURE_DIR -o OUT_DIR [--force] [--mutant NAME]
    python3 examples/port_numpy.py FIXTURE_DIR [--mutant NAME]
    python3 examples/port_numpy.py --out-root DIR [--mutant NAME] FIXTURE_DIR...
    python3 examples/port_numpy.py --list-mutants

Reads a fixture's manifest.json (the SPEC §12 game, optimizer included) and
its INPUT arrays only (x0, y, theta_t*_n*, Wfix_t*_n*; for a §13 trajectory
theta_s0_*, x0_s*, y_s*), and recomputes the whole step from scratch: forward pass (§3), terminal (§1, §5 `terminal`), the
backward pass of every stage (§4: FNE per lane or GR jointly; gn or full
dynamics; augmented, blockdiag or persample value Hessians; `zero` flags),
the curvature modes of §5/§6 (exact, sgd, rmsprop, gn-outer, kfac, coop-kfac;
§14's KFC factors for conv players)
with the §5 pseudo-inverse rule, and the §8 update pass — or, for a §13
trajectory fixture, n_s such steps with the optimizer state carried (rmsprop
v, kfac A and G, coop-kfac's joint factors, inverses refreshed every T_r
steps), the losses and the exported state.  None of ocnopt's
code is used: this is what a port author writes to prove the format is
self-describing.

With -o it writes its outputs (and a copy of the inputs) as a fixture
directory; prove it with `build/ocn compare FIXTURE_DIR OUT_DIR` (the first
argument is the reference side).  Without -o it compares its own results
with the fixture's stored output arrays, SPEC §10 ratio err / (u * c) with
c = max(the fixture's recorded `cond`, the dimension floor d), FAILED at 300.
--out-root runs several fixtures in one process (OUT = DIR/<fixture name>).

--mutant NAME plants one bug that port authors really make (see MUTANTS);
ci/port_mutants.sh shows every one is caught by a shipped fixture.

Exit status: 0 done (and, without -o, agreement), 1 disagreement, 2 unreadable
fixture, bad game or bad usage, 3 a game this port does not cover (a player
kind, activation or loss it does not know): skipped, with the reason on stderr.
Every shipped fixture is covered, §14 conv players included.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

EPS = np.finfo(np.float64).eps
U = EPS / 2

MUTANTS = {
    "no-cutoff": "pseudo-inverse without the §5 cutoff: every nonzero singular value inverted",
    "no-1/B": "Q_thth summed over the batch instead of averaged (missing 1/B)",
    "feedback-sum": "update pass applies sum_i K^(i) dx^(i) instead of the batch mean (missing 1/B)",
    "K-sign": "feedback gain with the wrong sign, K = -M^+ Q_thx",
    "no-weight-decay": "weight decay lambda*theta dropped from Q_theta",
    "M=C": "learning rate not applied: M = C + gamma I instead of (C + gamma I)/eta",
    "persample-unscaled": "per-sample Vx/Vxx stored as the augmented blocks [V_X]_i, [V_XX]_ii, without the §1 factor B",
    "lane-slice": "separable game: every lane's mse targets sliced from column 0 of y, not its blocks' place in `outputs`",
    "coop-kfac-as-kfac": "coop-kfac computed as block-diagonal kfac (no cross-player factor blocks, §6)",
    "kfac-damp-outside": "kfac damping added to the Kronecker product (A x G + gamma I) instead of sqrt(gamma) per factor",
    "gr-phi-times-N": "GR terminal W_T = sum_n phi_n with phi_n = phi on a shared task (DGNOpt eq. 7 as printed: loss counted N times)",
    "theta-row-major": "theta read as vec row-major (W[r, c] at r*in + c) instead of §2's column-major",
    "outer-ignored": "terminal: outer ignored (exact Hessian used)",
    "augmented-as-blockdiag": "augmented value mode computed as blockdiag (cross-sample blocks dropped)",
    "full-as-gn": "full dynamics computed as gn (second-order contractions dropped)",
    "update-old-theta": "update pass rolls the state forward with the old parameters",
    "decay-drop": "§13 moving averages without the (1 - rho): S = rho S_prev + S_new",
    "refresh-shift": "§13 kfac inverses refreshed at s = 1 (mod T_r) instead of 0: off by one step",
    "conv-kernel-flip": "§14 conv computed as a true convolution (kernel flipped), not cross-correlation",
    "conv-stride-vjp": "§14 conv Jacobian F_x (the transpose, col2im) built with the stride ignored",
    "conv-nhwc": "§14 images read and written channel-last (y, x, c) instead of channel-major (c, y, x)",
    "conv-patch-ijc": "§14 patch columns in (i, j, c) order instead of (c, i, j): W's columns permuted",
    "same-pad-tf": "§14 'same' padding as TensorFlow's SAME (the odd total split smaller half first)",
    "kfc-A-mean": "§14 KFC factor A averaged over the output locations instead of summed (an extra 1/P)",
    "conv-full-no-bilinear": "§4 full dynamics: the conv's bilinear term V_h . h_thx left out (the dense-only loop kept)",
    "kfc-G-sum": "§14 KFC factor G summed over the output locations without the 1/P",
    # red team (session 5): each needed a fixture of its own (docs/port-guide.md)
    "full-own-players": "§4 full dynamics: v'.F_xx summed over the expansion's own players, not every player of the stage",
    "gr-list-order": "GR joint theta in the order the players are listed, not lane order (§5: [theta_t,1; ...])",
    "zero-ignored": "optimizer.zero (Qthx, Pux, Puv, Mid) ignored",
    "coop-adjacent": "§6 coop-kfac with N > 2: cross-player blocks kept only between neighbouring lanes",
    "sgd-damped": "§5 sgd damped like the other modes, M = (1 + gamma) I / eta (sgd has no gamma)",
    "rmsprop-damped": "§5 rmsprop damped, C + gamma I (rmsprop has eps and no gamma)",
    "sep-outer-sum": "separable GR terminal outer as sum_n g_n g_n^T, not the outer product of the summed gradient",
}

MUTANT = None


class Unsupported(Exception):
    """A game outside what this one-step port computes (exit 3)."""


def fail(msg, code=2):
    print(f"port_numpy: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------- linear algebra

def pinv(a):
    """Moore-Penrose pseudo-inverse with SPEC §5's rule: singular values at or
    below max(rows, cols) * eps * sigma_max are dropped (the rule of
    numpy.linalg.matrix_rank; numpy.linalg.pinv's default rcond is different)."""
    if a.size == 0:
        return a.T.copy()
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    smax = s.max() if s.size else 0.0
    tol = 0.0 if MUTANT == "no-cutoff" else max(a.shape) * EPS * smax
    keep = (s > tol) & (s != 0.0)
    inv = np.zeros_like(s)
    inv[keep] = 1.0 / s[keep]
    return (vt.T * inv) @ u.T


def block_diag(mats):
    m = sum(a.shape[0] for a in mats)
    D, o = np.zeros((m, m)), 0
    for a in mats:
        D[o:o + a.shape[0], o:o + a.shape[0]] = a
        o += a.shape[0]
    return D


def zero_cross_blocks(C, moff):
    D = np.zeros_like(C)
    for u in range(len(moff) - 1):
        D[moff[u]:moff[u + 1], moff[u]:moff[u + 1]] = C[moff[u]:moff[u + 1], moff[u]:moff[u + 1]]
    return D


# ---------------------------------------------------------------- the game (§2, §3, §12)

def act(name, h):
    """sigma, sigma', sigma'' (§2: relu'(0) := 0, relu'' := 0)."""
    # sech² and e/(1+e)² keep sigma' relatively accurate where sigma saturates
    # (1 - s*s cancels there); the C reference uses the same forms.
    if name == "tanh":
        s = np.tanh(h)
        with np.errstate(over="ignore"):  # cosh overflows to inf where sigma' underflows to 0
            d = 1 / np.cosh(h) ** 2
        return s, d, -2 * s * d
    if name == "relu":
        return np.where(h > 0, h, 0.0), (h > 0).astype(float), np.zeros_like(h)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-h))
        e = np.exp(-np.abs(h))
        d = e / (1 + e) ** 2
        return s, d, -np.tanh(h / 2) * d
    if name == "identity":
        return h.copy(), np.ones_like(h), np.zeros_like(h)
    raise Unsupported(f"activation '{name}'")


OPT_DEFAULTS = {"dynamics": "gn", "value": "blockdiag", "terminal": "exact", "lr": 1.0, "damping": 0.0,
                "eps": 1e-8, "zero": []}


class Player:
    def __init__(self, spec, t, din):
        self.spec, self.t, self.lane, self.din = spec, t, spec["lane"], din
        self.kind, self.act = spec["kind"], spec["act"]
        self.inb, self.outb = spec["in"], spec["out"]
        if self.kind == "act":
            self.out, self.m = din, 0
        elif self.kind == "dense":
            self.out = spec["out_dim"]
            self.m = self.out * (din + 1)
        elif self.kind == "bias":
            self.out = spec["out_dim"]
            self.m = self.out
        elif self.kind == "conv":
            conv_geometry(self, spec, t, din)  # sets out, m, src, oidx, ... (§14)
        else:
            raise Unsupported(f"player kind '{self.kind}' (stage {t} lane {self.lane})")
        self.W = self.b = self.th = None
        self.J = None  # conv: dh/dz, formed once per parameter set

    def set_params(self, th, wfix):
        """theta = vec([W b]) column-major (§2): theta[c*out + r] = W[r, c], bias last."""
        self.th, self.J = th, None
        if self.kind in ("dense", "conv"):
            # §14: a conv's W is (C_o, C k^2) in exactly the dense layout
            rows, cols = (self.out, self.din) if self.kind == "dense" else (self.Co, self.ncol)
            n = rows * cols
            if MUTANT == "theta-row-major":
                self.W = th[:n].reshape(rows, cols)
            else:
                self.W = th[:n].reshape(cols, rows).T
            self.b = th[n:]
        elif self.kind == "bias":
            self.W, self.b = wfix, th


# ---------------------------------------------------------------- conv players (§14)
#
# Written from SPEC §14 alone.  An image block of C*H*W entries holds element
# (c, y, x) at (c*H + y)*W + x; the output block holds (o, y, x) at
# (o*H_o + y)*W_o + x, i.e. o*P + p with p = y*W_o + x the output location.
# Everything is expressed through two integer tables built once per player:
#   src[p, col]  the input entry that patch column col = (c*k + i)*k + j reads
#                at location p, z_pad[c, y*s + i, x*s + j]; -1 on zero padding
#   oidx[o, p]   the output entry of channel o at location p (o*P + p)
# so im2col is a gather (z[:, src], padding reading an appended zero) and the
# bias enters as a constant last patch column, exactly the dense a = [z; 1].

def conv_geometry(p, spec, t, din):
    where = f"stage {t} lane {p.lane} (conv, SPEC §14)"
    try:
        C, H, Wd = (int(v) for v in spec["in_shape"])
        Co, k = int(spec["out_channels"]), int(spec["kernel"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: needs in_shape [C, H, W], out_channels and kernel")
    s = int(spec.get("stride", 1))
    padding = spec.get("padding", "same")
    if min(C, H, Wd, Co, k, s) < 1:
        raise ValueError(f"{where}: in_shape, out_channels, kernel and stride must be positive")
    if C * H * Wd != din:
        raise ValueError(f"{where}: in_shape {C}x{H}x{Wd} = {C * H * Wd} entries, its input block '{p.inb}' has {din}")
    if padding == "same":
        if k % 2 == 0:
            raise ValueError(f"{where}: 'same' padding needs an odd kernel, got {k}")
        pad = (k - 1) // 2
    elif padding == "valid":
        pad = 0
    else:
        raise ValueError(f"{where}: padding '{padding}' (same or valid)")
    if k > H + 2 * pad or k > Wd + 2 * pad:
        raise ValueError(f"{where}: kernel {k} larger than the padded input {H + 2 * pad}x{Wd + 2 * pad}")
    Ho, Wo = (H + 2 * pad - k) // s + 1, (Wd + 2 * pad - k) // s + 1
    out = Co * Ho * Wo
    if spec.get("out_dim") is not None and int(spec["out_dim"]) != out:
        raise ValueError(f"{where}: out_dim {spec['out_dim']} differs from C_o*H_o*W_o = {out}")
    p.C, p.H, p.Wd, p.Co, p.k, p.s, p.pad, p.Ho, p.Wo = C, H, Wd, Co, k, s, pad, Ho, Wo
    p.P, p.ncol = Ho * Wo, C * k * k
    p.out, p.m = out, Co * (p.ncol + 1)
    p.src = conv_src(p, s)
    # the transpose (F_x) of a port that forgot the stride there
    p.src_x = conv_src(p, 1) if MUTANT == "conv-stride-vjp" else p.src
    o, q = np.meshgrid(np.arange(Co), np.arange(p.P), indexing="ij")
    p.oidx = q * Co + o if MUTANT == "conv-nhwc" else o * p.P + q


def conv_src(p, s):
    """src[p, col]: which input entry patch column col reads at location p (-1: padding)."""
    C, H, Wd, k = p.C, p.H, p.Wd, p.k
    pt = pl = p.pad
    if MUTANT == "same-pad-tf" and p.spec.get("padding", "same") == "same":
        # TensorFlow's SAME: total padding split with the smaller half on top/left
        pt = max((p.Ho - 1) * s + k - H, 0) // 2
        pl = max((p.Wo - 1) * s + k - Wd, 0) // 2
    src = np.full((p.Ho * p.Wo, p.ncol), -1, dtype=np.int64)
    for y in range(p.Ho):
        for x in range(p.Wo):
            for c in range(C):
                for i in range(k):
                    for j in range(k):
                        ti, tj = (k - 1 - i, k - 1 - j) if MUTANT == "conv-kernel-flip" else (i, j)
                        yy, xx = y * s + ti - pt, x * s + tj - pl
                        if 0 <= yy < H and 0 <= xx < Wd:
                            col = ((i * k + j) * C + c) if MUTANT == "conv-patch-ijc" else (c * k + i) * k + j
                            e = ((yy * Wd + xx) * C + c) if MUTANT == "conv-nhwc" else (c * H + yy) * Wd + xx
                            src[y * p.Wo + x, col] = e
    return src


def conv_patches(p, z, src=None):
    """im2col: (B, P, C k^2), z_pad's patch at every location in (c, i, j) order."""
    zz = np.concatenate([z, np.zeros((z.shape[0], 1))], axis=1)  # src = -1 reads this 0
    return zz[:, p.src if src is None else src]


def conv_forward(p, z):
    """h (B, C_o H_o W_o): b[o] + sum_col W[o, col] patch_p[col] (cross-correlation, §14)."""
    hop = np.einsum("oc,bpc->bop", p.W, conv_patches(p, z)) + p.b[None, :, None]
    h = np.zeros((z.shape[0], p.out))
    h[:, p.oidx] = hop
    return h


def conv_lin(p):
    """dh/dz (out, din): the tap W[o, col] at (oidx[o, p], src_x[p, col]), 0 from padding."""
    if p.J is None:
        J = np.zeros((p.out, p.din + 1))
        rows = np.broadcast_to(p.oidx[:, :, None], (p.Co, p.P, p.ncol))
        cols = np.broadcast_to(p.src_x[None, :, :], (p.Co, p.P, p.ncol))
        vals = np.broadcast_to(p.W[:, None, :], (p.Co, p.P, p.ncol))
        np.add.at(J, (rows, cols), vals)  # padding lands in the extra column, dropped
        p.J = J[:, :p.din]
    return p.J


def conv_dh_dtheta(p, z):
    """h_theta (B, out, m): dh[o, p] / dtheta[col*C_o + o'] = a_p[col] delta_oo' (§2/§14 vec order)."""
    B = z.shape[0]
    a = np.concatenate([conv_patches(p, z), np.ones((B, p.P, 1))], axis=2)  # (B, P, ncol+1)
    H4 = np.einsum("bpc,os->bopcs", a, np.eye(p.Co)).reshape(B, p.Co * p.P, p.m)
    H = np.zeros((B, p.out, p.m))
    H[:, p.oidx.ravel(), :] = H4
    return H


def conv_kfc(p, z, g):
    """KFC factors (§14, Grosse & Martens 2016): A = (1/B) sum_i sum_p a_p a_p^T over
    the patches a_p = [patch; 1]; G = (1/B) sum_i (1/P) sum_p g_p g_p^T, g_p the C_o
    entries of §5's g at location p.  At P = 1 this is §5's dense kfac."""
    B = z.shape[0]
    a = np.concatenate([conv_patches(p, z), np.ones((B, p.P, 1))], axis=2)
    gp = g[:, p.oidx]  # (B, C_o, P)
    A = np.einsum("bpc,bpd->cd", a, a) / B
    Gm = np.einsum("bop,bqp->oq", gp, gp) / (B * p.P)
    if MUTANT == "kfc-A-mean":
        A = A / p.P
    if MUTANT == "kfc-G-sum":
        Gm = Gm * p.P
    return A, Gm


class Game:
    def __init__(self, g):
        self.g = g
        self.name = g["name"]
        self.B = int(g["batch"])
        opt = dict(OPT_DEFAULTS)
        opt.update(g["optimizer"])
        self.opt = opt
        # §13 trajectory fields (defaults: one step, no state)
        self.steps = int(opt.get("steps", 1))
        self.stream = opt.get("data", "fixed") == "stream" and self.steps > 1
        self.rho = float(opt.get("stat_decay", 0.0))
        self.refresh = int(opt.get("refresh_every", 1))
        self.trajectory = (self.steps != 1 or opt.get("data", "fixed") != "fixed" or self.rho != 0 or self.refresh != 1)
        self.state = None   # {(t, lane or None): dict} while a trajectory runs
        self.s = 0          # the trajectory's current step
        self.key = None     # the expansion being computed: (t, lane or None)
        self.gr = opt["game"] == "gr"
        self.lam = float(g.get("weight_decay", 0.0))
        loss = g["loss"]
        self.loss = loss["kind"]
        if self.loss not in ("ce", "mse"):
            raise Unsupported(f"loss '{self.loss}'")
        # blocks by first appearance: "z", then each stage's players' in, out, then carries' from, to
        names = ["z"]
        for st in g["stages"]:
            for p in st["players"]:
                for b in (p["in"], p["out"]):
                    if b not in names:
                        names.append(b)
            for c in st.get("carries", []):
                for b in (c["from"], c["to"]):
                    if b not in names:
                        names.append(b)
        self.names = names
        dims = [{"z": int(g["input_dim"])}]
        self.stages = []
        for t, st in enumerate(g["stages"]):
            cur, nxt, pls = dims[-1], {}, []
            for p in st["players"]:
                pl = Player(p, t, cur[p["in"]])
                pls.append(pl)
                nxt[p["out"]] = pl.out
            for c in st.get("carries", []):
                nxt[c["to"]] = cur[c["from"]]
            dims.append(nxt)
            self.stages.append((pls, st.get("carries", [])))
        self.dims = dims
        if opt["curvature"] == "coop-kfac":  # §14: not defined on a stage with a conv player
            for t, (pls, _) in enumerate(self.stages):
                for p in pls:
                    if p.kind == "conv":
                        raise ValueError(f"coop-kfac is not defined on a stage with a conv player "
                                         f"(SPEC §14): stage {t} lane {p.lane}")
        self.T = len(self.stages)
        self.n = [sum(d.values()) for d in dims]
        self.N = 1 + max(p.lane for pls, _ in self.stages for p in pls)
        self.outputs = g.get("outputs", ["z"])
        lo = loss.get("lane_outputs")
        self.separable = lo is not None
        self.lane_outputs = lo if lo is not None else [self.outputs] * self.N

    def off(self, t, block):
        o = 0
        for b in self.names:
            if b == block:
                return o
            o += self.dims[t].get(b, 0)
        raise KeyError(block)

    def lane_player(self, t, lane):
        for p in self.stages[t][0]:
            if p.lane == lane:
                return p
        return None

    def expansion_players(self, t, lane):
        """FNE: lane's own parameterised player; GR (lane None): all, in lane order."""
        if MUTANT == "gr-list-order" and lane is None:
            return [p for p in self.stages[t][0] if p.m]
        out = []
        for l in range(self.N):
            if lane is not None and l != lane:
                continue
            p = self.lane_player(t, l)
            if p is not None and p.m:
                out.append(p)
        return out


# ---------------------------------------------------------------- stage maps and Jacobians (§2, §4)

def z_of(G, t, p, X):
    o = G.off(t, p.inb)
    return X[:, o:o + p.din]


def pre(G, t, p, X):
    """Batch pre-activations h (B, out) and inputs z (B, din) of player p."""
    z = z_of(G, t, p, X)
    if p.kind == "act":
        return z, z.copy()
    if p.kind == "conv":
        return z, conv_forward(p, z)
    return z, z @ p.W.T + p.b


def lin(p):
    """The linear map dh/dz of player p (out, din)."""
    if p.kind == "act":
        return np.eye(p.out)
    return conv_lin(p) if p.kind == "conv" else p.W


def forward(G, t, X):
    pls, carries = G.stages[t]
    Xn = np.zeros((X.shape[0], G.n[t + 1]))
    for p in pls:
        _, h = pre(G, t, p, X)
        o = G.off(t + 1, p.outb)
        Xn[:, o:o + p.out] += act(p.act, h)[0]
    for c in carries:
        d = G.dims[t][c["from"]]
        o, i = G.off(t + 1, c["to"]), G.off(t, c["from"])
        Xn[:, o:o + d] += X[:, i:i + d]
    return Xn


def jac_x(G, t, X):
    """F_x per sample (B, n_{t+1}, n_t)."""
    pls, carries = G.stages[t]
    B = X.shape[0]
    F = np.zeros((B, G.n[t + 1], G.n[t]))
    for p in pls:
        _, h = pre(G, t, p, X)
        d1 = act(p.act, h)[1]
        r0, c0 = G.off(t + 1, p.outb), G.off(t, p.inb)
        if p.kind == "act":
            idx = np.arange(p.out)
            F[:, r0 + idx, c0 + idx] += d1
        else:
            F[:, r0:r0 + p.out, c0:c0 + p.din] += d1[:, :, None] * lin(p)[None]
    for c in carries:
        d = G.dims[t][c["from"]]
        r0, c0 = G.off(t + 1, c["to"]), G.off(t, c["from"])
        idx = np.arange(d)
        F[:, r0 + idx, c0 + idx] += 1.0
    return F


def dh_dtheta(p, z):
    """h_theta per sample (B, out, m) in the §2 vec order theta[c*out + r]."""
    B = z.shape[0]
    if p.kind == "conv":
        return conv_dh_dtheta(p, z)
    if p.kind == "bias":
        return np.broadcast_to(np.eye(p.out), (B, p.out, p.out)).copy()
    a = np.hstack([z, np.ones((B, 1))])  # (B, din+1)
    # d h_r / d theta[c*out + r'] = a_c delta_rr'
    H = np.einsum("bc,rs->brcs", a, np.eye(p.out))  # (B, out, din+1, out)
    return H.reshape(B, p.out, (p.din + 1) * p.out)


def jac_theta(G, t, p, X):
    """F_theta of player p per sample (B, n_{t+1}, m)."""
    z, h = pre(G, t, p, X)
    d1 = act(p.act, h)[1]
    F = np.zeros((X.shape[0], G.n[t + 1], p.m))
    r0 = G.off(t + 1, p.outb)
    F[:, r0:r0 + p.out, :] = d1[:, :, None] * dh_dtheta(p, z)
    return F


def second_order(G, t, X, v, pls):
    """'full' dynamics (§4, DDPNOpt eq. 26-27), per sample: v'.F_xx over every
    player of the stage, v'.F_thx and v'.F_thth of the expansion's players."""
    B, n = X.shape[0], G.n[t]
    Hxx = np.zeros((B, n, n))
    Hthx = [np.zeros((B, p.m, n)) for p in pls]
    Hthth = [np.zeros((B, p.m, p.m)) for p in pls]
    for p in (pls if MUTANT == "full-own-players" else G.stages[t][0]):
        z, h = pre(G, t, p, X)
        _, d1, d2 = act(p.act, h)
        o1 = G.off(t + 1, p.outb)
        vo = v[:, o1:o1 + p.out]
        w = vo * d2  # (B, out)
        c0 = G.off(t, p.inb)
        Wz = lin(p)
        Hxx[:, c0:c0 + p.din, c0:c0 + p.din] += np.einsum("ra,br,rc->bac", Wz, w, Wz)
        for k, q in enumerate(pls):
            if q is not p:
                continue
            ht = dh_dtheta(p, z)  # (B, out, m)
            Hthx[k][:, :, c0:c0 + p.din] += np.einsum("brj,br,rc->bjc", ht, w, Wz)
            if p.kind == "dense":  # V_h . h_thx: d2 h_r / dW_rc dz_c = 1
                vh = vo * d1
                for c in range(p.din):
                    Hthx[k][:, c * p.out:(c + 1) * p.out, c0 + c] += vh
            if p.kind == "conv" and MUTANT != "conv-full-no-bilinear":  # d2 h[o, q] / dW[o, col] dz[src[q, col]] = 1
                vh = vo * d1
                rows = np.arange(p.Co)
                for q in range(p.P):
                    for col in range(p.ncol):
                        e = p.src[q, col]
                        if e >= 0:
                            Hthx[k][:, col * p.Co + rows, c0 + e] += vh[:, p.oidx[:, q]]
            Hthth[k] += np.einsum("brj,br,brl->bjl", ht, w, ht)
    return Hxx, Hthx, Hthth


# ---------------------------------------------------------------- terminal (§1, §4, §5)

def lane_terminal(G, lane, XT, y, terminal):
    """Per-sample gradient (B, n_T) and Hessian (B, n_T, n_T) of phi_lane."""
    T, B, nT = G.T, XT.shape[0], G.n[G.T]
    idx, yi = [], []
    for b in G.lane_outputs[lane]:
        ypos = 0
        for ob in G.outputs:
            if ob == b:
                break
            ypos += G.dims[T][ob]
        if MUTANT == "lane-slice" and G.separable:
            ypos = 0
        o = G.off(T, b)
        idx += list(range(o, o + G.dims[T][b]))
        yi += list(range(ypos, ypos + G.dims[T][b]))
    idx, yi = np.array(idx), np.array(yi)
    o = XT[:, idx]
    d = len(idx)
    if G.loss == "ce":
        lab = y.astype(int)
        e = np.exp(o - o.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        # 1 - p without cancellation where p ~ 1: the sum of the other p's
        # for the entry with p >= 1/2 (the C reference does the same)
        q1 = 1 - p
        big = p >= 0.5
        rows, cols = np.nonzero(big)
        for i, k in zip(rows, cols):
            q1[i, k] = sum(p[i, j] for j in range(d) if j != k)
        go = p.copy()
        go[np.arange(B), lab] = -q1[np.arange(B), lab]
        hl = -p[:, :, None] * p[:, None, :]
        hl[:, np.arange(d), np.arange(d)] = p * q1
    else:
        go = o - y[:, yi]
        hl = np.broadcast_to(np.eye(d), (B, d, d))
    if terminal == "outer" and MUTANT != "outer-ignored":
        hl = go[:, :, None] * go[:, None, :]
    g = np.zeros((B, nT))
    g[:, idx] = go
    H = np.zeros((B, nT, nT))
    H[:, idx[:, None], idx[None, :]] = hl
    return g, H


def terminal(G, lane, XT, y):
    """FNE lane n: V_T = phi_n.  GR (lane None): W_T = phi, one copy; separable:
    sum_n phi_n, `outer` being the outer product of the summed gradient."""
    term = G.opt["terminal"]
    if lane is not None:
        return lane_terminal(G, lane, XT, y, term)
    if not G.separable:
        g, H = lane_terminal(G, 0, XT, y, term)
        if MUTANT == "gr-phi-times-N":
            g, H = G.N * g, G.N * H
        return g, H
    g = H = 0
    for n in range(G.N):
        gl, hl = lane_terminal(G, n, XT, y, "exact")
        g, H = g + gl, H + hl
    if term == "outer" and MUTANT == "sep-outer-sum":
        H = sum(gl[:, :, None] * gl[:, None, :] for gl in (lane_terminal(G, n, XT, y, "exact")[0] for n in range(G.N)))
    elif term == "outer" and MUTANT != "outer-ignored":
        H = g[:, :, None] * g[:, None, :]
    return g, H


# ---------------------------------------------------------------- curvature (§5, §6)

def kfac_factors(G, t, X, v, pls):
    """A_ww = mean a a^T, a = [a_1; ...], a_u = [z_u; 1] ([1] for bias); G_ww
    likewise, g_u = sigma'(h_u) * v'[out_u] (§5, §6 embedded parameter)."""
    a_parts, g_parts, kfc = [], [], []
    for p in pls:
        z, h = pre(G, t, p, X)
        d1 = act(p.act, h)[1]
        o = G.off(t + 1, p.outb)
        g = d1 * v[:, o:o + p.out]
        if p.kind == "conv":  # §14 KFC: sums over the output locations
            kfc.append(conv_kfc(p, z, g))
            a_parts.append(np.zeros((X.shape[0], p.ncol + 1)))
            g_parts.append(np.zeros((X.shape[0], p.Co)))
            continue
        kfc.append(None)
        a_parts.append(np.hstack([z, np.ones((X.shape[0], 1))]) if p.kind == "dense" else np.ones((X.shape[0], 1)))
        g_parts.append(g)
    a, g = np.hstack(a_parts), np.hstack(g_parts)
    B = X.shape[0]
    A, Gm = a.T @ a / B, g.T @ g / B
    ao = np.concatenate([[0], np.cumsum([x.shape[1] for x in a_parts])]).astype(int)
    go = np.concatenate([[0], np.cumsum([x.shape[1] for x in g_parts])]).astype(int)
    if any(f is not None for f in kfc):
        # a conv player's factors are its own; it has no cross-player blocks (those are
        # read only by coop-kfac, which §14 refuses on a stage with a conv player)
        A, Gm = zero_cross_blocks(A, ao), zero_cross_blocks(Gm, go)
        for u, f in enumerate(kfc):
            if f is not None:
                A[ao[u]:ao[u + 1], ao[u]:ao[u + 1]] = f[0]
                Gm[go[u]:go[u + 1], go[u]:go[u + 1]] = f[1]
    return A, Gm, ao, go


def curvature_pinv(G, Qthth, Qthi, pls, moff, kfac):
    """M^+ = eta (C + gamma I)^+ (§5), kfac/coop-kfac per factor (§6)."""
    opt = G.opt
    m = Qthth.shape[0]
    eta = 1.0 if MUTANT == "M=C" else float(opt["lr"])
    gam = float(opt["damping"])
    mode, zero = opt["curvature"], [] if MUTANT == "zero-ignored" else opt["zero"]
    if "Mid" in zero or mode == "sgd":
        return eta / (1.0 + gam if MUTANT == "sgd-damped" and "Mid" not in zero else 1.0) * np.eye(m)
    if mode == "exact":
        return eta * pinv(Qthth + gam * np.eye(m))
    st = G.state.setdefault(G.key, {}) if G.state is not None else None
    if mode == "rmsprop":
        vhat = np.sum(Qthi * Qthi, axis=0) / Qthi.shape[0]
        if st is not None:  # §13: the square root and eps are applied to the average
            st["v"] = vhat if "v" not in st else ema(G, st["v"], vhat)
            st["moff"], st["pls"] = moff, pls
            vhat = st["v"]
        d = np.sqrt(vhat) + float(opt["eps"]) + (gam if MUTANT == "rmsprop-damped" else 0.0)
        mx = np.abs(d).max()
        keep = np.abs(d) > m * EPS * mx if MUTANT != "no-cutoff" else d != 0
        return eta * np.diag(np.where(keep, 1.0 / np.where(keep, d, 1.0), 0.0))
    if mode == "gn-outer":
        C = Qthi.T @ Qthi / Qthi.shape[0]
        if "Puv" in zero:
            C = zero_cross_blocks(C, moff)
        return eta * pinv(C + gam * np.eye(m))
    if mode not in ("kfac", "coop-kfac"):
        raise Unsupported(f"curvature '{mode}'")
    A, Gm, ao, go = kfac
    sg = np.sqrt(gam)
    np_ = len(pls)
    coop = (mode == "coop-kfac" and G.gr and np_ > 1 and "Puv" not in zero and MUTANT != "coop-kfac-as-kfac")
    Minv = np.zeros((m, m))
    if MUTANT == "kfac-damp-outside":
        sg = 0.0
    if st is not None:  # §13: average the factors, refresh the inverses at s = 0 (mod T_r)
        first = "A" not in st
        st["A"] = A if first else ema(G, st["A"], A)
        st["G"] = Gm if first else ema(G, st["G"], Gm)
        st.update(ao=ao, go=go, coop=coop, pls=pls)
        A, Gm = st["A"], st["G"]
        phase = 1 % G.refresh if MUTANT == "refresh-shift" else 0
        if first or G.s % G.refresh == phase:
            st["inv"] = kfac_inverses(A, Gm, ao, go, np_, coop, sg, gam)
        inv = st["inv"]
    else:
        inv = kfac_inverses(A, Gm, ao, go, np_, coop, sg, gam)
    for u in range(np_):
        for w in range(np_):
            if coop and MUTANT == "coop-adjacent" and abs(u - w) > 1:
                continue
            if coop:
                Ai, Gi = inv
                blk = np.kron(Ai[ao[u]:ao[u + 1], ao[w]:ao[w + 1]], Gi[go[u]:go[u + 1], go[w]:go[w + 1]])
            elif u == w:
                blk = inv[u]
            else:
                continue
            Minv[moff[u]:moff[u + 1], moff[w]:moff[w + 1]] = blk
    return eta * Minv


def kfac_inverses(A, Gm, ao, go, np_, coop, sg, gam):
    """coop: (pinv(A_ww + sqrt(gamma) I), pinv(G_ww + sqrt(gamma) I)) (§6);
    else each player's pinv(A_u + sqrt(gamma) I) x pinv(G_u + sqrt(gamma) I) (§5)."""
    if coop:
        return pinv(A + sg * np.eye(len(A))), pinv(Gm + sg * np.eye(len(Gm)))
    out = []
    for u in range(np_):
        Au, Gu = A[ao[u]:ao[u + 1], ao[u]:ao[u + 1]], Gm[go[u]:go[u + 1], go[u]:go[u + 1]]
        if MUTANT == "kfac-damp-outside":
            out.append(pinv(np.kron(Au, Gu) + gam * np.eye(Au.shape[0] * Gu.shape[0])))
        else:
            out.append(np.kron(pinv(Au + sg * np.eye(len(Au))), pinv(Gu + sg * np.eye(len(Gu)))))
    return out


def ema(G, prev, new):
    """§13: S_s = rho S_{s-1} + (1 - rho) S_hat_s, before damping."""
    w = 1.0 if MUTANT == "decay-drop" else 1.0 - G.rho
    return G.rho * prev + w * new


# ---------------------------------------------------------------- backward pass (§4)

class Value:
    """Incoming value of one lane (or GR's W): per-sample v (B, n) and either the
    per-sample blocks Vd (B, n, n) or, augmented, the whole B*V_XX (Bn, Bn)."""

    def __init__(self, v, Vd=None, VXX=None):
        self.v, self.Vd, self.VXX = v, Vd, VXX

    def diag(self):
        if self.Vd is not None:
            return self.Vd
        B, n = self.v.shape
        V4 = self.VXX.reshape(B, n, B, n)
        return np.array([V4[i, :, i, :] for i in range(B)])


def expand(G, t, X, val, pls):
    """One (joint) expansion of §4 in the augmented form, per-sample quantities
    scaled as in §1.  Returns a dict of arrays and the outgoing Value."""
    opt = G.opt
    B, n, n1 = X.shape[0], G.n[t], G.n[t + 1]
    aug = opt["value"] == "augmented" and MUTANT != "augmented-as-blockdiag"
    full = opt["dynamics"] == "full" and MUTANT != "full-as-gn"
    zero = [] if MUTANT == "zero-ignored" else opt["zero"]
    v = val.v
    Fx = jac_x(G, t, X)
    mdims = [p.m for p in pls]
    moff = np.concatenate([[0], np.cumsum(mdims)]).astype(int)
    m = int(moff[-1])
    Fth = np.concatenate([jac_theta(G, t, p, X) for p in pls], axis=2) if pls else np.zeros((B, n1, 0))
    if full:
        Hxx, Hthx_l, Hthth_l = second_order(G, t, X, v, pls)
        Hthx = np.concatenate(Hthx_l, axis=1) if pls else np.zeros((B, 0, n))
        Hthth = np.zeros((B, m, m))
        for u, h in enumerate(Hthth_l):
            Hthth[:, moff[u]:moff[u + 1], moff[u]:moff[u + 1]] = h
    out = {}
    Qx = np.einsum("iab,ia->ib", Fx, v)
    out["Qx"] = Qx
    if aug:
        V4 = val.VXX.reshape(B, n1, B, n1)
        FxV = np.einsum("iab,iajc->ibjc", Fx, V4)  # F_x^(i)T V'_ij
        Q4 = np.einsum("ibjc,jcd->ibjd", FxV, Fx)
        if full:
            for i in range(B):
                Q4[i, :, i, :] += Hxx[i]
        QXX = Q4.reshape(B * n, B * n)
        Qxx = np.array([Q4[i, :, i, :] for i in range(B)])
    else:
        Vd = val.diag()
        Qxx = np.einsum("iab,iac,icd->ibd", Fx, Vd, Fx)
        if full:
            Qxx = Qxx + Hxx
    out["Qxx"] = Qxx
    Vx = Qx.copy()
    if m:
        th = np.concatenate([p.th for p in pls])
        Qthi = np.einsum("iam,ia->im", Fth, v)
        Qth = Qthi.mean(axis=0)
        if MUTANT != "no-weight-decay":
            Qth = Qth + G.lam * th
        bscale = 1.0 if MUTANT == "no-1/B" else 1.0 / B
        if aug:
            ThV = np.einsum("iam,iajc->imjc", Fth, V4)  # F_th^(i)T V'_ij
            Qthx = np.einsum("imjc,jcd->jmd", ThV, Fx)
            Qthth = np.einsum("imjc,jcp->mp", ThV, Fth) * bscale
        else:
            ThV = np.einsum("iam,iac->imc", Fth, Vd)
            Qthx = np.einsum("imc,icd->imd", ThV, Fx)
            Qthth = np.einsum("imc,icp->mp", ThV, Fth) * bscale
        if full:
            Qthx = Qthx + Hthx
            Qthth = Qthth + Hthth.sum(axis=0) * bscale
        Qthth = Qthth + G.lam * np.eye(m)
        if "Qthx" in zero or "Pux" in zero:
            Qthx = np.zeros_like(Qthx)
        if "Puv" in zero:
            Qthth = zero_cross_blocks(Qthth, moff)
        kf = None
        if opt["curvature"] in ("kfac", "coop-kfac") and not ("Mid" in zero):
            kf = kfac_factors(G, t, X, v, pls)
        Minv = curvature_pinv(G, Qthth, Qthi, pls, moff, kf)
        k = Minv @ Qth
        K = np.einsum("pm,imd->ipd", Minv, Qthx)
        if MUTANT == "K-sign":
            K = -K
        out.update(Qth=Qth, Qthi=Qthi, Qthx=Qthx, Qthth=Qthth, k=k, K=K)
        Vx = Vx - np.einsum("imd,m->id", Qthx, k)
    out["moff"] = moff
    out["Vx"] = Vx
    if aug:
        VXX = QXX.copy()
        if m:
            corr = np.einsum("imb,jmd->ibjd", Qthx, K) / B
            VXX = VXX - corr.reshape(B * n, B * n)
        Vd_new = np.array([VXX.reshape(B, n, B, n)[i, :, i, :] for i in range(B)])
        out["Vxx"], out["VXX"] = Vd_new, VXX
        nv = Value(Vx, VXX=VXX)
    else:
        Vd_new = Qxx.copy()
        if m:
            c = 1.0 if opt["value"] == "persample" else 1.0 / B
            Vd_new = Vd_new - c * np.einsum("imb,imd->ibd", Qthx, K)
        out["Vxx"] = Vd_new
        if opt["value"] == "augmented":  # mutant augmented-as-blockdiag still stores VXX
            out["VXX"] = block_diag(list(Vd_new))
        nv = Value(Vx, Vd=Vd_new)
    return out, nv


# ---------------------------------------------------------------- the step

def is_input(name, trajectory):
    """x0, y, theta_t*, Wfix_*; in a §13 trajectory theta_s0_*, x0_s*, y_s* instead
    of theta_t* (the last step's parameters, an output there)."""
    if name in ("x0", "y") or name.startswith("Wfix_"):
        return True
    if trajectory:
        return name.startswith("theta_s0_") or name.startswith("x0_s") or name.startswith("y_s")
    return name.startswith("theta_t")


def load_inputs(d, man):
    """The INPUT arrays only (x0, y, theta_*, Wfix_*): outputs are never read."""
    arrays = {}
    traj = man.get("kind") == "trajectory"
    for name, e in man["arrays"].items():
        if not is_input(name, traj):
            continue
        path = os.path.join(d, e["file"])
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as ex:
            fail(f"{path}: {ex}")
        if list(a.shape) != list(e["shape"]):
            fail(f"{path}: shape {a.shape} differs from the manifest {e['shape']}")
        a = np.ascontiguousarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            fail(f"{path}: input array '{name}' contains NaN or Inf")
        arrays[name] = a
    return arrays


def read_manifest(d):
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{d}/manifest.json: {e}")
    if not isinstance(man, dict) or man.get("format") != "ocnopt-fixture":
        fail(f"{d}/manifest.json: not an ocnopt fixture")
    if man.get("version") not in (1, 2):
        fail(f"{d}/manifest.json: version {man.get('version')!r} not understood (1 or 2)")
    if not isinstance(man.get("arrays"), dict) or not isinstance(man.get("game"), dict):
        fail(f"{d}/manifest.json: needs 'game' and 'arrays' objects")
    return man


def need(inp, name, shape):
    if name not in inp:
        fail(f"input array '{name}' is missing")
    if tuple(inp[name].shape) != tuple(shape):
        fail(f"input array '{name}' has shape {inp[name].shape}, the game needs {tuple(shape)}")
    return inp[name]


def step(G, inp):
    """One optimizer step (§1-§8).  Returns {name: array} of every §11 output."""
    B, T = G.B, G.T
    x0 = need(inp, "x0", (B, G.n[0]))
    if G.loss == "ce":
        y = need(inp, "y", (B,))
        if np.any(y != np.floor(y)) or np.any(y < 0) or np.any(y >= G.g["loss"]["classes"]):
            fail("y: ce labels must be integers in [0, classes)")
    else:
        y = need(inp, "y", (B, sum(G.dims[T][b] for b in G.outputs)))
    for t, (pls, _) in enumerate(G.stages):
        for p in pls:
            th = need(inp, f"theta_t{t}_n{p.lane}", (p.m,)) if p.m else None
            wf = need(inp, f"Wfix_t{t}_n{p.lane}", (p.out, p.din)) if p.kind == "bias" else None
            p.set_params(th, wf)
    out = {}
    aug = G.opt["value"] == "augmented"

    # forward (§3)
    X = [x0]
    for t in range(T):
        X.append(forward(G, t, X[t]))

    # terminal (§1, §4): per-sample scaling (§1) gives the per-sample phi derivatives
    lanes = [None] if G.gr else list(range(G.N))
    vals = {}
    for lane in lanes:
        g, H = terminal(G, lane, X[T], y)
        vals[lane] = Value(g, VXX=block_diag(list(H))) if aug else Value(g, Vd=H)
        store_value(out, G, T, lane, g, H, block_diag(list(H)) if aug else None)

    # backward (§4)
    gains = {}
    for t in range(T - 1, -1, -1):
        new = {}
        for lane in lanes:
            pls = G.expansion_players(t, lane)
            G.key = (t, lane)  # §13: whose state the curvature uses
            o, nv = expand(G, t, X[t], vals[lane], pls)
            new[lane] = nv
            P = G.gr
            sfx = f"_t{t}" if P else f"_t{t}_n{lane}"
            pre_ = "P" if P else "Q"
            out["%sx%s" % (pre_, sfx)] = o["Qx"]
            out["%sxx%s" % (pre_, sfx)] = o["Qxx"]
            if pls:
                for key in ("th", "thi", "thx", "thth"):
                    out[f"{pre_}{key}{sfx}"] = o["Q" + key]
                for u, p in enumerate(pls):
                    a, b = o["moff"][u], o["moff"][u + 1]
                    gains[(t, p.lane)] = (o["k"][a:b], o["K"][:, a:b, :])
                    out[f"k_t{t}_n{p.lane}"] = o["k"][a:b]
                    out[f"K_t{t}_n{p.lane}"] = o["K"][:, a:b, :]
            store_value(out, G, t, lane, o["Vx"], o["Vxx"], o.get("VXX"))
        vals = new

    # update pass (§8)
    Xh = x0.copy()
    for t in range(T + 1):
        dx = Xh - X[t]
        out[f"dx_t{t}"] = dx
        out[f"x_t{t}"] = X[t]
        if t == T:
            break
        pls, _ = G.stages[t]
        old = [(p, p.th, p.W, p.b, p.J) for p in pls]
        for p in pls:
            if not p.m:
                continue
            k, K = gains[(t, p.lane)]
            fb = np.einsum("imd,id->m", K, dx)
            fb = fb if MUTANT == "feedback-sum" else fb / B
            tn = p.th - (k + fb)
            out[f"theta_new_t{t}_n{p.lane}"] = tn
            if MUTANT != "update-old-theta":
                p.set_params(tn, p.W if p.kind == "bias" else None)
        Xh = forward(G, t, Xh)
        for p, th, W, b, J in old:
            p.th, p.W, p.b, p.J = th, W, b, J

    # §11: large shapes omit the m x m and per-sample m x n arrays (> 1 MiB)
    for name in list(out):
        if name.split("_")[0] in ("Qthth", "Qthx", "K", "Pthth", "Pthx") and out[name].size * 8 > (1 << 20):
            del out[name]
    return out


def phi(G, XT, y):
    """The network loss per sample (§1): phi, or sum_n phi_n on a separable game."""
    tot = np.zeros(XT.shape[0])
    for lane in (range(G.N) if G.separable else [0]):
        idx, yi = [], []
        for b in G.lane_outputs[lane]:
            ypos = 0
            for ob in G.outputs:
                if ob == b:
                    break
                ypos += G.dims[G.T][ob]
            o = G.off(G.T, b)
            idx += list(range(o, o + G.dims[G.T][b]))
            yi += list(range(ypos, ypos + G.dims[G.T][b]))
        o = XT[:, idx]
        if G.loss == "ce":
            mx = o.max(axis=1)
            lse = mx + np.log(np.exp(o - mx[:, None]).sum(axis=1))
            tot += lse - o[np.arange(o.shape[0]), y.astype(int)]
        else:
            tot += 0.5 * ((o - y[:, yi]) ** 2).sum(axis=1)
    return tot


def loss_of(G, inp):
    """§1 objective: mean_i phi + sum (lambda/2)|theta|^2, at inp's parameters and batch."""
    X = inp["x0"]
    for t, (pls, _) in enumerate(G.stages):
        for p in pls:
            p.set_params(inp[f"theta_t{t}_n{p.lane}"] if p.m else None,
                         inp[f"Wfix_t{t}_n{p.lane}"] if p.kind == "bias" else None)
        X = forward(G, t, X)
    wd = sum(0.5 * G.lam * float(inp[f"theta_t{t}_n{p.lane}"] @ inp[f"theta_t{t}_n{p.lane}"])
             for t, (pls, _) in enumerate(G.stages) for p in pls if p.m)
    return float(phi(G, X, inp["y"]).mean()) + wd


def trajectory(G, inp):
    """§13: n_s steps of step() with the optimizer state carried in G.state;
    returns (inputs as stored, outputs) under the fixture's names."""
    params = [(t, p.lane) for t, (pls, _) in enumerate(G.stages) for p in pls if p.m]
    theta = {k: need(inp, "theta_s0_t%d_n%d" % k, (G.lane_player(*k).m,)) for k in params}
    G.state, out = {}, {}
    for k in params:
        out["theta_s0_t%d_n%d" % k] = theta[k]
    for s in range(G.steps):
        G.s = s
        one = {n: a for n, a in inp.items() if n.startswith("Wfix_")}
        one["x0"] = inp[f"x0_s{s}"] if G.stream else inp["x0"]
        one["y"] = inp[f"y_s{s}"] if G.stream else inp["y"]
        for k in params:
            one["theta_t%d_n%d" % k] = theta[k]
        out[f"loss_s{s}"] = np.array([loss_of(G, one)])
        res = step(G, one)
        for k in params:
            theta[k] = res["theta_new_t%d_n%d" % k]
            out["theta_s%d_t%d_n%d" % ((s + 1,) + k)] = theta[k]
        if s == G.steps - 1:  # the last step's §11 arrays under their one-step names
            out.update(res)
            out.update({n: a for n, a in one.items() if n.startswith("theta_t")})
    for (t, lane), st in G.state.items():  # the state after the last step
        if "v" in st:
            for u, p in enumerate(st["pls"]):
                out[f"v_t{t}_n{p.lane}"] = st["v"][st["moff"][u]:st["moff"][u + 1]]
        if "A" in st and st["coop"]:
            out[f"A_t{t}"], out[f"G_t{t}"] = st["A"], st["G"]
        elif "A" in st:
            for u, p in enumerate(st["pls"]):
                ao, go = st["ao"], st["go"]
                out[f"A_t{t}_n{p.lane}"] = st["A"][ao[u]:ao[u + 1], ao[u]:ao[u + 1]]
                out[f"G_t{t}_n{p.lane}"] = st["G"][go[u]:go[u + 1], go[u]:go[u + 1]]
    G.state = None
    return out


def store_value(out, G, t, lane, v, Vd, VXX):
    scale = 1.0 / G.B if MUTANT == "persample-unscaled" else 1.0
    if G.gr:
        out[f"Wx_t{t}"], out[f"Wxx_t{t}"] = v * scale, Vd * scale
        if G.opt["value"] == "augmented":
            out[f"WXX_t{t}"] = VXX
    else:
        out[f"Vx_t{t}_n{lane}"], out[f"Vxx_t{t}_n{lane}"] = v * scale, Vd * scale
        if G.opt["value"] == "augmented":
            out[f"VXX_t{t}_n{lane}"] = VXX


# ---------------------------------------------------------------- output: a fixture

def write_fixture(outdir, man, inp, out, force):
    outdir = outdir.rstrip("/") or "/"
    if os.path.exists(outdir):
        if not force or not os.path.isfile(os.path.join(outdir, "manifest.json")):
            fail(f"{outdir}: already exists (--force replaces a fixture directory)")
    parent = os.path.dirname(os.path.abspath(outdir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(outdir) + ".tmp.", dir=parent)
    arrays = {}
    allarr = dict(inp)
    allarr.update(out)
    for name in sorted(allarr):
        a = np.ascontiguousarray(allarr[name], dtype="<f8")
        np.save(os.path.join(tmp, name + ".npy"), a, allow_pickle=False)
        arrays[name] = {"file": name + ".npy", "dtype": "<f8", "shape": list(a.shape)}
    m = {"format": "ocnopt-fixture", "version": man["version"], "kind": man.get("kind", "step"), "game": man["game"],
         "producer": {"name": "port_numpy", "backend": "numpy", "precision": "f64"}, "arrays": arrays}
    if MUTANT:
        m["producer"]["mutant"] = MUTANT
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1, sort_keys=True)
        f.write("\n")
    if os.path.exists(outdir):
        old = tempfile.mkdtemp(prefix=os.path.basename(outdir) + ".old.", dir=parent)
        os.rename(outdir, os.path.join(old, "x"))
        os.rename(tmp, outdir)
        shutil.rmtree(old)
    else:
        os.rename(tmp, outdir)


def self_compare(G, man, d, out):
    """Without -o: every stored output array against ours, §10 ratio."""
    meta = man["arrays"]
    dfloor = max([G.B] + G.n + [p.m for pls, _ in G.stages for p in pls] +
                 [sum(p.m for p in pls) for pls, _ in G.stages] +
                 ([G.B * x for x in G.n] if G.opt["value"] == "augmented" else []))
    rows = []
    for name in sorted(meta):
        if name not in out:
            continue
        try:
            want = np.load(os.path.join(d, meta[name]["file"]), allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as ex:
            fail(f"{d}/{meta[name]['file']}: {ex}")
        got = out[name]
        if got.shape != want.shape:
            rows.append((name, np.inf, np.inf, "FAILED"))
            continue
        nw = np.linalg.norm(want)
        err = np.linalg.norm(got - want) / max(nw, np.finfo(float).tiny)
        c = max(float(meta[name].get("cond", 0) or 0), dfloor)
        thr = float(meta[name].get("threshold", 30))
        ratio = err / (U * c) if np.isfinite(err) else np.inf
        if nw == 0:
            ratio = 0.0 if np.all(got == 0) else np.inf
        rows.append((name, err, ratio, "ok" if ratio < thr else ("marginal" if ratio < 10 * thr else "FAILED")))
    missing = sorted(n for n in meta if n not in out and n not in load_names(man))
    for name, err, ratio, verdict in rows:
        print(f"PORT  {G.name:<32} {name:<18} err {err:10.3e}  ratio {ratio:9.3g}  {verdict}")
    for name in missing:
        print(f"PORT  {G.name:<32} {name:<18} not computed by the port  FAILED")
    failed = sum(r[3] == "FAILED" for r in rows) + len(missing)
    print(f"{len(rows) - failed + len(missing)} passed, {failed} failed")
    return 1 if failed or not rows else 0


def load_names(man):
    return [n for n in man["arrays"] if is_input(n, man.get("kind") == "trajectory")]


def run_one(d, outdir, force):
    d = d.rstrip("/") or "/"
    man = read_manifest(d)
    try:
        G = Game(man["game"])
    except Unsupported as e:
        fail(f"{d}: skipped, unsupported: {e}", 3)
    except (KeyError, TypeError, ValueError) as e:
        fail(f"{d}/manifest.json: bad game description: {e!r}")
    inp = load_inputs(d, man)
    try:
        out = trajectory(G, inp) if G.trajectory else step(G, inp)
    except Unsupported as e:
        fail(f"{d}: skipped, unsupported: {e}", 3)
    except np.linalg.LinAlgError as e:
        fail(f"{d}: linear algebra failed: {e}")
    bad = [n for n, a in out.items() if not np.all(np.isfinite(a))]
    if bad and MUTANT is None:
        print(f"port_numpy: {d}: NaN/Inf in {', '.join(sorted(bad)[:5])}", file=sys.stderr)
    if outdir is None:
        return self_compare(G, man, d, out)
    if os.path.abspath(outdir) == os.path.abspath(d):
        fail("the output directory must differ from the input fixture")
    write_fixture(outdir, man, inp, out, force)
    return 0


def main(argv):
    global MUTANT
    outdir, outroot, force, dirs = None, None, False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-o", "--out", "--out-root", "--mutant") and i + 1 < len(argv):
            if a in ("-o", "--out"):
                outdir = argv[i + 1]
            elif a == "--out-root":
                outroot = argv[i + 1]
            else:
                MUTANT = argv[i + 1]
            i += 2
            continue
        if a == "--force":
            force = True
        elif a == "--list-mutants":
            for k, v in MUTANTS.items():
                print(f"{k:<24} {v}")
            return 0
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-"):
            fail(f"unknown option {a}\n{__doc__}")
        else:
            dirs.append(a)
        i += 1
    if MUTANT is not None and MUTANT not in MUTANTS:
        fail(f"unknown mutant '{MUTANT}' (--list-mutants)")
    if outroot is not None:
        if outdir is not None or not dirs:
            fail("usage: port_numpy.py --out-root DIR [--mutant NAME] FIXTURE_DIR...")
        rc = 0
        for d in dirs:
            try:
                r = run_one(d, os.path.join(outroot, os.path.basename(d.rstrip("/"))), True)
            except SystemExit as e:
                r = e.code if isinstance(e.code, int) else 2
                print(f"port_numpy: {d}: exit {r}", file=sys.stderr)
            rc = max(rc, r)
        return rc
    if len(dirs) != 1:
        fail("usage: port_numpy.py FIXTURE_DIR [-o OUT_DIR [--force]] [--mutant NAME]")
    return run_one(dirs[0], outdir, force)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
