#!/usr/bin/env python3
"""A port in another language, reading an ocnopt fixture with numpy alone.

    python3 examples/port_numpy.py FIXTURE_DIR

Recomputes the last stage's expansions, gains and value derivatives
(SPEC §4, curvature modes §5/§6) from the stored arrays (the game
description in manifest.json, x_t{T-1}, theta_*, Wfix_*, and the stored
terminal values Vx/Vxx or Wx/Wxx at t = T) and compares each stored array
with the SPEC §10 ratio err / (u * cond), cond taken from the manifest.
Exit status: 0 agreement, 1 disagreement (a ratio >= 10 * threshold, or a
non-finite value), 2 unreadable fixture.  None of ocnopt's code is used:
this is what a port author writes to prove the format is self-describing.
"""
import json
import os
import sys

import numpy as np

EPS = np.finfo(np.float64).eps
U = EPS / 2


def fail(msg):
    print(f"port_numpy: {msg}", file=sys.stderr)
    sys.exit(2)


def pinv(a):
    """Moore-Penrose with SPEC §5's rcond = max(rows, cols) * eps."""
    return np.linalg.pinv(a, rcond=max(a.shape) * EPS)


def act(name, h):
    if name == "tanh":
        s = np.tanh(h)
        return s, 1 - s * s, -2 * s * (1 - s * s)
    if name == "relu":
        return np.maximum(h, 0), (h > 0).astype(float), np.zeros_like(h)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-h))
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
    return h, np.ones_like(h), np.zeros_like(h)


class Layout:
    """SPEC §12: blocks ordered by first appearance; x_t = alive blocks."""

    def __init__(self, game):
        names = ["z"]
        for st in game["stages"]:
            for p in st["players"]:
                for b in (p["in"], p["out"]):
                    if b not in names:
                        names.append(b)
            for c in st.get("carries", []):
                for b in (c["from"], c["to"]):
                    if b not in names:
                        names.append(b)
        self.names = names
        dims = [{"z": game["input_dim"]}]
        for st in game["stages"]:
            cur, nxt = dims[-1], {}
            for p in st["players"]:
                nxt[p["out"]] = cur[p["in"]] if p["kind"] == "act" else p["out_dim"]
            for c in st.get("carries", []):
                nxt[c["to"]] = cur[c["from"]]
            dims.append(nxt)
        self.dims = dims

    def off(self, t, block):
        o = 0
        for b in self.names:
            if b == block:
                return o
            o += self.dims[t].get(b, 0)
        raise KeyError(block)

    def n(self, t):
        return sum(self.dims[t].values())


def player_m(p, din):
    if p["kind"] == "dense":
        return p["out_dim"] * (din + 1)
    return p["out_dim"] if p["kind"] == "bias" else 0


class Stage:
    """Per-sample Jacobians of the last stage (SPEC §2, §4), from theta and x."""

    def __init__(self, game, lay, arrays, t):
        self.st, self.lay, self.t = game["stages"][t], lay, t
        self.players = []
        for p in self.st["players"]:
            din = lay.dims[t][p["in"]]
            m = player_m(p, din)
            lane = p["lane"]
            th = arrays[f"theta_t{t}_n{lane}"] if m else None
            if p["kind"] == "dense":
                W = th[: p["out_dim"] * din].reshape(din, p["out_dim"]).T  # column-major vec([W b])
                b = th[p["out_dim"] * din:]
            elif p["kind"] == "bias":
                W, b = arrays[f"Wfix_t{t}_n{lane}"], th
            else:
                W, b = None, None
            self.players.append(dict(p=p, din=din, m=m, W=W, b=b, th=th))

    def pre(self, pl, x):
        z = x[self.lay.off(self.t, pl["p"]["in"]):][: pl["din"]]
        h = z.copy() if pl["W"] is None else pl["W"] @ z + pl["b"]
        return z, h

    def jac_x(self, x):
        t, lay = self.t, self.lay
        F = np.zeros((lay.n(t + 1), lay.n(t)))
        for pl in self.players:
            z, h = self.pre(pl, x)
            _, d1, _ = act(pl["p"]["act"], h)
            r0, c0 = lay.off(t + 1, pl["p"]["out"]), lay.off(t, pl["p"]["in"])
            J = np.diag(d1) if pl["W"] is None else d1[:, None] * pl["W"]
            F[r0:r0 + J.shape[0], c0:c0 + J.shape[1]] += J
        for c in self.st.get("carries", []):
            d = lay.dims[t][c["from"]]
            r0, c0 = lay.off(t + 1, c["to"]), lay.off(t, c["from"])
            F[r0:r0 + d, c0:c0 + d] += np.eye(d)
        return F

    def dh_dtheta(self, pl, z):
        """h_theta (out x m): vec order theta[c*out + r] (SPEC §2)."""
        out = pl["p"]["out_dim"]
        if pl["p"]["kind"] == "bias":
            return np.eye(out)
        a = np.append(z, 1.0)
        return np.kron(a[None, :], np.eye(out))

    def jac_theta(self, pl, x):
        z, h = self.pre(pl, x)
        _, d1, _ = act(pl["p"]["act"], h)
        F = np.zeros((self.lay.n(self.t + 1), pl["m"]))
        r0 = self.lay.off(self.t + 1, pl["p"]["out"])
        F[r0:r0 + len(h)] = d1[:, None] * self.dh_dtheta(pl, z)
        return F

    def second_order(self, x, v, pls):
        """'full' dynamics: v.F_xx (all players), v.F_thx and v.F_thth of pls (DDPNOpt eq. 26-27)."""
        t, lay = self.t, self.lay
        n = lay.n(t)
        Hxx = np.zeros((n, n))
        Hthx = [np.zeros((pl["m"], n)) for pl in pls]
        Hthth = [np.zeros((pl["m"], pl["m"])) for pl in pls]
        for pl in self.players:
            z, h = self.pre(pl, x)
            _, d1, d2 = act(pl["p"]["act"], h)
            vo = v[lay.off(t + 1, pl["p"]["out"]):][: len(h)]
            w = vo * d2
            c0 = lay.off(t, pl["p"]["in"])
            Wz = np.eye(len(h)) if pl["W"] is None else pl["W"]
            Hxx[c0:c0 + pl["din"], c0:c0 + pl["din"]] += Wz.T @ (w[:, None] * Wz)
            for k, q in enumerate(pls):
                if q is not pl:
                    continue
                ht = self.dh_dtheta(pl, z)
                Hthx[k][:, c0:c0 + pl["din"]] += ht.T @ (w[:, None] * Wz)
                if pl["p"]["kind"] == "dense":  # V_h . h_thx: d2h / dW_rc dz_c = 1
                    out = pl["p"]["out_dim"]
                    for c in range(pl["din"]):
                        for r in range(out):
                            Hthx[k][c * out + r, c0 + c] += vo[r] * d1[r]
                Hthth[k] += ht.T @ (w[:, None] * ht)
        return Hxx, Hthx, Hthth


def load(d):
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{d}/manifest.json: {e}")
    if man.get("format") != "ocnopt-fixture":
        fail(f"{d}/manifest.json: not an ocnopt fixture")
    arrays = {}
    for name, e in man["arrays"].items():
        path = os.path.join(d, e["file"])
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as ex:
            fail(f"{path}: {ex}")
        if list(a.shape) != list(e["shape"]):
            fail(f"{path}: shape {a.shape} differs from the manifest {e['shape']}")
        arrays[name] = a.astype(np.float64)
    return man, arrays


def curvature_pinv(opt, Qthth, Qthi, mdims, kfac):
    """M^dagger (SPEC §5, §6); kfac = (A, G, aoff, goff) of the embedded parameter."""
    m, eta, gam = Qthth.shape[0], opt["lr"], opt.get("damping", 0.0)
    mode, zero = opt["curvature"], opt.get("zero", [])
    if "Mid" in zero or mode == "sgd":
        return eta * np.eye(m)
    if mode == "exact":
        return eta * pinv(Qthth + gam * np.eye(m))
    if mode == "rmsprop":
        return eta * pinv(np.diag(np.sqrt(np.mean(Qthi * Qthi, axis=0)) + opt.get("eps", 1e-8)))
    moff = np.concatenate([[0], np.cumsum(mdims)])
    if mode == "gn-outer":
        C = Qthi.T @ Qthi / Qthi.shape[0]
        if "Puv" in zero:
            C = block_diag_only(C, moff)
        return eta * pinv(C + gam * np.eye(m))
    A, G, ao, go = kfac
    sg = np.sqrt(gam)
    coop = mode == "coop-kfac" and opt["game"] == "gr" and len(mdims) > 1 and "Puv" not in zero
    Minv = np.zeros((m, m))
    if coop:
        Ai, Gi = pinv(A + sg * np.eye(len(A))), pinv(G + sg * np.eye(len(G)))
    for u in range(len(mdims)):
        for v in range(len(mdims)):
            if coop:
                blk = np.kron(Ai[ao[u]:ao[u + 1], ao[v]:ao[v + 1]], Gi[go[u]:go[u + 1], go[v]:go[v + 1]])
            elif u == v:
                Au, Gu = A[ao[u]:ao[u + 1], ao[u]:ao[u + 1]], G[go[u]:go[u + 1], go[u]:go[u + 1]]
                blk = np.kron(pinv(Au + sg * np.eye(len(Au))), pinv(Gu + sg * np.eye(len(Gu))))
            else:
                continue
            Minv[moff[u]:moff[u + 1], moff[v]:moff[v + 1]] = blk
    return eta * Minv


def block_diag_only(C, moff):
    D = np.zeros_like(C)
    for u in range(len(moff) - 1):
        D[moff[u]:moff[u + 1], moff[u]:moff[u + 1]] = C[moff[u]:moff[u + 1], moff[u]:moff[u + 1]]
    return D


def expand(game, lay, stage, arrays, pls, vnext, Vnext, opt):
    """One (joint) expansion of SPEC §4 in the augmented form; returns a dict of arrays."""
    t, B = stage.t, game["batch"]
    n, n1 = lay.n(t), lay.n(t + 1)
    X = arrays[f"x_t{t}"]
    lam = game.get("weight_decay", 0.0)
    full = opt.get("dynamics", "gn") == "full"
    mdims = [pl["m"] for pl in pls]
    m = sum(mdims)
    Fx = [stage.jac_x(X[i]) for i in range(B)]
    Fth = [np.hstack([stage.jac_theta(pl, X[i]) for pl in pls]) if pls else np.zeros((n1, 0)) for i in range(B)]
    so = [stage.second_order(X[i], vnext[i], pls) if full else None for i in range(B)]
    Vb = lambda i, j: Vnext[i * n1:(i + 1) * n1, j * n1:(j + 1) * n1]
    out = {"Qx": np.array([Fx[i].T @ vnext[i] for i in range(B)])}
    QXX = np.zeros((B * n, B * n))
    for i in range(B):
        for j in range(B):
            QXX[i * n:(i + 1) * n, j * n:(j + 1) * n] = Fx[i].T @ Vb(i, j) @ Fx[j] + (so[i][0] if full and i == j else 0)
    out["Qxx"] = np.array([QXX[i * n:(i + 1) * n, i * n:(i + 1) * n] for i in range(B)])
    VX, VXX = out["Qx"].copy(), QXX.copy()
    if m:
        th = np.concatenate([pl["th"] for pl in pls])
        Qthi = np.array([Fth[i].T @ vnext[i] for i in range(B)])
        Qth = Qthi.mean(axis=0) + lam * th
        Qthx = np.array([sum(Fth[i].T @ Vb(i, j) @ Fx[j] for i in range(B)) for j in range(B)])
        Qthth = sum(Fth[i].T @ Vb(i, j) @ Fth[j] for i in range(B) for j in range(B)) / B + lam * np.eye(m)
        if full:
            for i in range(B):
                Qthx[i] += np.vstack(so[i][1])
                Qthth = Qthth + block_diag([h / B for h in so[i][2]])
        zero = opt.get("zero", [])
        if "Qthx" in zero or "Pux" in zero:
            Qthx[:] = 0
        moff = np.concatenate([[0], np.cumsum(mdims)])
        if "Puv" in zero:
            Qthth = block_diag_only(Qthth, moff)
        kfac = None
        if opt["curvature"] in ("kfac", "coop-kfac"):
            a_list, g_list = [], []
            for i in range(B):
                a_i, g_i = [], []
                for pl in pls:
                    z, h = stage.pre(pl, X[i])
                    _, d1, _ = act(pl["p"]["act"], h)
                    a_i.append(np.append(z, 1.0) if pl["p"]["kind"] == "dense" else np.ones(1))
                    g_i.append(d1 * vnext[i][lay.off(t + 1, pl["p"]["out"]):][: len(h)])
                a_list.append(np.concatenate(a_i))
                g_list.append(np.concatenate(g_i))
            A = sum(np.outer(a, a) for a in a_list) / B
            G = sum(np.outer(g, g) for g in g_list) / B
            ao = np.concatenate([[0], np.cumsum([len(x) for x in a_i])])
            go = np.concatenate([[0], np.cumsum([len(x) for x in g_i])])
            kfac = (A, G, ao, go)
        Minv = curvature_pinv(opt, Qthth, Qthi, mdims, kfac)
        k = Minv @ Qth
        K = np.array([Minv @ Qthx[i] for i in range(B)])
        value = opt.get("value", "blockdiag")
        for i in range(B):
            VX[i] -= Qthx[i].T @ k
            for j in range(B):
                if i != j and value != "augmented":
                    continue
                c = 1.0 if value == "persample" else 1.0 / B
                VXX[i * n:(i + 1) * n, j * n:(j + 1) * n] -= c * Qthx[i].T @ K[j]
        out.update(Qth=Qth, Qthi=Qthi, Qthx=Qthx, Qthth=Qthth, k=k, K=K, moff=moff)
        sv = np.linalg.svd(Minv, compute_uv=False)
        sv = sv[sv > max(Minv.shape) * EPS * sv[0]] if sv[0] > 0 else np.ones(1)
        out["cond"] = sv[0] / sv[-1]
    out["Vx"] = VX
    out["Vxx"] = np.array([VXX[i * n:(i + 1) * n, i * n:(i + 1) * n] for i in range(B)])
    # SPEC §10 amplification of this port's own results: size x cond(M), and
    # for V = Q - correction the condition of the subtraction
    size = B * max(n, n1) + m
    cancel = lambda q, v: max(1.0, (np.linalg.norm(q) + np.linalg.norm(q - v)) / max(np.linalg.norm(v), 1e-300))
    out["c"] = size * out.get("cond", 1.0)
    out["c_Vx"] = out["c"] * cancel(out["Qx"], VX)
    out["c_Vxx"] = out["c"] * cancel(QXX, VXX)
    return out


def block_diag(mats):
    m = sum(a.shape[0] for a in mats)
    D, o = np.zeros((m, m)), 0
    for a in mats:
        D[o:o + a.shape[0], o:o + a.shape[0]] = a
        o += a.shape[0]
    return D


def incoming(arrays, opt, B, T, lane):
    g = "W" if lane is None else "V"
    sfx = f"_t{T}" if lane is None else f"_t{T}_n{lane}"
    v = arrays[f"{g}x{sfx}"]
    if opt.get("value") == "augmented":
        return v, arrays[f"{g}XX{sfx}"]
    return v, block_diag(list(arrays[f"{g}xx{sfx}"]))


def main():
    if len(sys.argv) != 2:
        fail("usage: port_numpy.py FIXTURE_DIR")
    d = sys.argv[1].rstrip("/")
    man, arrays = load(d)
    game = man["game"]
    opt = game["optimizer"]
    B, T = game["batch"], len(game["stages"])
    t = T - 1
    lay = Layout(game)
    stage = Stage(game, lay, arrays, t)
    gr = opt["game"] == "gr"
    nlanes = 1 + max(p["lane"] for st in game["stages"] for p in st["players"])
    by_lane = {pl["p"]["lane"]: pl for pl in stage.players if pl["m"]}
    if f"x_t{t}" not in arrays:
        fail(f"{d}: x_t{t} is not stored")
    rows, worst = [], 0.0
    meta = man["arrays"]

    def compare(name, got, c_port):
        nonlocal worst
        if name not in arrays:
            return  # large fixtures omit some arrays (SPEC §11)
        want = arrays[name]
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), np.finfo(float).tiny)
        # both sides' rounding: the producer's amplification (manifest `cond`, when
        # recorded) and this port's own
        c = meta[name].get("cond", 0.0) + c_port
        thr = meta[name].get("threshold", 30)
        ratio = err / (U * c) if np.isfinite(err) else np.inf
        worst = max(worst, ratio / thr)
        rows.append((name, err, ratio, "ok" if ratio < thr else ("marginal" if ratio < 10 * thr else "FAILED")))

    lanes = [None] if gr else list(range(nlanes))
    for lane in lanes:
        pls = [by_lane[l] for l in sorted(by_lane)] if gr else ([by_lane[lane]] if lane in by_lane else [])
        v, V = incoming(arrays, opt, B, T, lane)
        o = expand(game, lay, stage, arrays, pls, v, V, opt)
        names = dict(Qx="Px", Qxx="Pxx", Qth="Pth", Qthi="Pthi", Qthx="Pthx", Qthth="Pthth", Vx="Wx", Vxx="Wxx")
        size_c = B * lay.n(t) + sum(pl["m"] for pl in pls)
        for key in ("Qx", "Qxx", "Qth", "Qthi", "Qthx", "Qthth", "Vx", "Vxx"):
            if key in o:
                c = o["c_" + key] if key in ("Vx", "Vxx") else size_c
                compare(f"{names[key]}_t{t}" if gr else f"{key}_t{t}_n{lane}", o[key], c)
        for u, pl in enumerate(pls):
            a, b = o["moff"][u], o["moff"][u + 1]
            compare(f"k_t{t}_n{pl['p']['lane']}", o["k"][a:b], o["c"])
            compare(f"K_t{t}_n{pl['p']['lane']}", o["K"][:, a:b, :], o["c"])
    for name, err, ratio, verdict in rows:
        print(f"PORT  {game['name']:<32} {name:<14} err {err:10.3e}  ratio {ratio:9.3g}  {verdict}")
    failed = sum(r[3] == "FAILED" for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not rows else 0)


if __name__ == "__main__":
    main()
