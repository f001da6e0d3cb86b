"""SPEC §10 revision 2 verdicts, exactly as `ocn compare` makes them
(harness/compare.c, harness/report.c, src/tolerance.c):

    err   = ‖X − X*‖_F / max(‖X*‖_F, DBL_MIN)     (sums in long double;
            ‖X‖_F / zero_scale for a zero by cancellation, the manifest's zero_scale)
    ratio = err / (u · max(c, 1))                 c: the REFERENCE side's stored cond
            (at float32 its cond_f32 where recorded: c measured with u₃₂ runs)
    ok < 30 ≤ marginal < 300 ≤ FAILED;  NaN/Inf in X, a missing required
    array, another shape, an input that is not the same bits: FAILED
    weak: not FAILED and 300·u·c ≥ τ (1e-6 at f64, 1e-2 at f32) — printed,
    never counted as passed

u is the unit roundoff of the lower precision of the two producers.  The
required set is every output of the reference (require="all") or its gains
(require="gains": k, K, Vx, Vxx, Wx, Wxx, dx, theta_new); other outputs
present on both sides with the same shape are compared too.  A SPEC §13
trajectory (a reference holding theta_s0_…) is compared as `ocn compare`
does: theta_t… are outputs there, theta_s0_…, x0_s…, y_s… inputs, and the
steps dtheta_s{s}_t{t}_n{n} = theta_s{s+1} − theta_s{s} are formed on both
sides (never read), with c and zero_scale from the manifest's "derived"
table; require="gains" adds theta_s…, dtheta_s…, theta_t….  A comparison
that compared nothing does not pass.  python/tests/test_parity.py holds
these verdicts to `ocn compare`'s on the port-mutant outputs.
"""
import collections.abc
import math
import os
import sys

import numpy as np

from . import binary
from .errors import BinaryNotFound, GameMismatch, Unsupported
from .fixture import Fixture, cond_at_entry, is_input, is_input_of, load_fixture, traj_derived

U64 = 2.0 ** -53
U32 = 2.0 ** -24
THRESHOLD = 30.0     # OCN_THRESHOLD: ok below
FAIL_RATIO = 300.0   # OCN_FAIL_RATIO: FAILED at or above
TAU_F64 = 1e-6       # informative when 300·u·c < τ
TAU_F32 = 1e-2
DBL_MIN = sys.float_info.min
DBL_MAX = sys.float_info.max

GAIN_ARRAYS = ("k_t", "K_t", "Vx_t", "Vxx_t", "Wx_t", "Wxx_t", "dx_t", "theta_new_t")
GAIN_OR_VALUE = ("k_", "K_", "Vx_", "Vxx_", "Wx_", "Wxx_")
# §13: a trajectory's own arrays, required beside the one-step sets (harness/compare.c)
TRAJ_GAINS = ("theta_s", "dtheta_s", "theta_t")


def unit_roundoff(precision):
    return U32 if precision == "f32" else U64


def informative(c, u):
    """§10: an array can catch a relative error of τ at unit roundoff u."""
    tau = TAU_F32 if u > 1e-10 else TAU_F64
    return FAIL_RATIO * u * c < tau


def requires(require, name, trajectory=False):
    """ocn_requires_of: is `name` in the required set?"""
    if is_input_of(name, trajectory):
        return False
    if require == "gains":
        return name.startswith(GAIN_ARRAYS) or (trajectory and name.startswith(TRAJ_GAINS))
    return True


class _TrajRef(collections.abc.Mapping):
    """A §13 trajectory reference as the C reader holds it (src/fixture.c):
    the stored arrays, then the steps dtheta_s{s}_t{t}_n{n} formed from its
    theta_s (ocn_traj_add_derived), their c and zero_scale from the
    manifest's "derived" table (c only where the manifest's c is measured)."""

    def __init__(self, fx):
        self.fx, self.dir, self.manifest, self.name = fx, fx.dir, fx.manifest, fx.name
        self.precision, self.c_measured, self.game, self.version, self.kind = (fx.precision, fx.c_measured, fx.game,
                                                                               fx.version, fx.kind)
        self.derived = traj_derived(list(fx), fx.__getitem__)
        self._names = list(fx) + [n for n in self.derived if n not in fx.manifest["arrays"]]

    def _entry(self, name):
        e = self.fx.derived.get(name)
        return e if isinstance(e, dict) else {}

    def __getitem__(self, name):
        return self.derived[name] if name in self.derived else self.fx[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def shape(self, name):
        return tuple(self.derived[name].shape) if name in self.derived else self.fx.shape(name)

    def cond(self, name):
        if name not in self.derived:
            return self.fx.cond(name)
        c = self._entry(name).get("cond")
        if not self.c_measured or isinstance(c, bool) or not isinstance(c, (int, float)):
            return 0.0
        return float(c)

    def cond_at(self, name, u):
        if name not in self.derived:
            return self.fx.cond_at(name, u)
        return cond_at_entry(self._entry(name), u, self.c_measured, self.cond(name))

    def zero_scale(self, name):
        if name not in self.derived:
            return self.fx.zero_scale(name)
        z = self._entry(name).get("zero_scale")
        if isinstance(z, bool) or not isinstance(z, (int, float)) or not z > 0:
            return 0.0
        return float(z)


def rel_err(x, ref):
    """‖x − ref‖_F / max(‖ref‖_F, DBL_MIN), accumulated in long double as
    ocn_rel_err does; inf when x has a NaN/Inf."""
    x = np.asarray(x, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        return math.inf
    e = x.astype(np.longdouble) - ref.astype(np.longdouble)
    d = np.sqrt(np.sum(e * e, dtype=np.longdouble))
    r = np.sqrt(np.sum(ref.astype(np.longdouble) ** 2, dtype=np.longdouble))
    q = d / max(r, np.longdouble(DBL_MIN))
    # a finite x never gives inf (reserved for NaN/Inf), as ocn_rel_err
    return float(min(q, np.longdouble(DBL_MAX)))


def array_err(x, ref, zero_scale=0.0):
    """err of x against a reference array (ocn_array_err): rel_err, except
    for a zero by cancellation (the manifest's `zero_scale` > 0: an all-zero
    X* the perturbation runs did not reproduce), measured against the size
    of the terms that cancelled, ‖x‖_F / zero_scale."""
    e = rel_err(x, ref)
    zero = not np.any(np.asarray(ref, dtype=np.float64))  # the rule is for an all-zero reference only
    if zero_scale > 0 and zero and math.isfinite(e):
        xl = np.asarray(x, dtype=np.float64).ravel().astype(np.longdouble)
        e = float(np.sqrt(np.sum(xl * xl, dtype=np.longdouble)) / np.longdouble(zero_scale))
    return e


def verdict_of(err, u, c):
    """(ratio, verdict) of one row (ocn_report_add_c)."""
    ratio = math.inf if not math.isfinite(err) else err / (u * (c if c > 1.0 else 1.0))
    if not math.isfinite(err) or not ratio < FAIL_RATIO:
        v = "FAILED"
    else:
        v = "ok" if ratio < THRESHOLD else "marginal"
    if v != "FAILED" and not informative(c, u):
        v = "weak"
    # docs/decisions.md "No digit determined": 300·u·c ≥ 1, a finite answer is weak
    if math.isfinite(err) and FAIL_RATIO * u * c >= 1.0:
        v = "weak"
    return ratio, v


class Row:
    """One compared array.  quantity is the name as `ocn compare` prints it
    ("K_t0_n0 (missing)", "x0 (input differs)", "k_t1_n0 (shape differs)"); ref_shape
    and test_shape hold both shapes (`ocn compare` prints them on a reason line)."""

    __slots__ = ("name", "quantity", "err", "ratio", "c", "u", "verdict", "ref_shape", "test_shape", "required")

    def __init__(self, name, quantity, err, u, c, ref_shape, test_shape, required):
        self.name, self.quantity, self.err, self.u, self.c = name, quantity, err, u, c
        self.ratio, self.verdict = verdict_of(err, u, c)
        self.ref_shape, self.test_shape, self.required = ref_shape, test_shape, required

    @property
    def allowed(self):
        """The largest relative (Frobenius) error that does not fail: 300·u·max(c, 1)."""
        return FAIL_RATIO * self.u * max(self.c, 1.0)

    def __repr__(self):
        return f"Row({self.quantity!r}, err={self.err:.3g}, ratio={self.ratio:.3g}, c={self.c:.3g}, {self.verdict})"


class Result:
    """All rows of one comparison, with the fixture's detection power and
    the arrays present on one side only; `passed` is ocn compare's exit 0."""

    def __init__(self, fixture, u, rows, one_side, info, ref, test):
        self.fixture, self.u, self.rows, self.one_side, self.info = fixture, u, rows, one_side, info
        self._ref, self._test = ref, test

    @property
    def failed(self):
        return [r for r in self.rows if r.verdict == "FAILED"]

    @property
    def weak(self):
        return [r for r in self.rows if r.verdict == "weak"]

    @property
    def n_passed(self):
        return sum(r.verdict in ("ok", "marginal") for r in self.rows)

    @property
    def passed(self):
        """No FAILED row and at least one row compared (§10 completeness)."""
        return bool(self.rows) and not self.failed

    @property
    def exit_status(self):
        return 0 if self.passed else 1

    def verdicts(self):
        """quantity -> verdict, in the reference's array order."""
        return {r.quantity: r.verdict for r in self.rows}

    def __getitem__(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self):
        lines = []
        for r in self.rows:
            if r.verdict != "ok":
                lines.append(f"COMPARE  {self.fixture}  {r.quantity}  err {r.err:.3g}  ratio {r.ratio:.3g}  "
                             f"c {r.c:.2g}  {r.verdict}")
                if r.test_shape is not None and r.test_shape != r.ref_shape:
                    lines.append(f"         reason: shape {_shape(r.test_shape)}, reference {_shape(r.ref_shape)}")
        p = self.info["detection_power"]
        lines.append(f"detection  {self.fixture}  power={p:.2g} weak={self.info['weak']}/{self.info['total']}"
                     if p else f"detection  {self.fixture}  power=none weak={self.info['weak']}/{self.info['total']}")
        for name, side in self.one_side:
            lines.append(f"{side}: {name}")
        lines.append(f"{self.n_passed} passed, {len(self.failed)} failed" +
                     (f", {len(self.weak)} weak" if self.weak else "") +
                     ("" if self.rows else " (nothing was compared: not a pass)"))
        return "\n".join(lines)


def fixture_info(ref):
    """§10 detection power and weak counts of the reference side (ocn_fixture_info_of)."""
    power, weak, total = 0.0, 0, 0
    for name in ref:
        if is_input(name):
            continue
        c = ref.cond(name)
        inf = informative(c, U64)
        if name.startswith(GAIN_OR_VALUE):
            total += 1
            weak += not inf
        if inf and (name.startswith(GAIN_OR_VALUE) or name.startswith("theta_new_")):
            power = max(power, FAIL_RATIO * U64 * c)
    return {"detection_power": power, "weak": weak, "total": total, "fit_for_ports": 2 * weak <= total}


def _json_same(a, b, path):
    """harness's json_same (src/game.c): by value, numbers as numbers, keys
    sorted, the top-level `name` ignored; returns the first differing path."""
    num = (int, float)
    if isinstance(a, num) and not isinstance(a, bool) and isinstance(b, num) and not isinstance(b, bool):
        return None if a == b else path
    if type(a) is not type(b) and not (isinstance(a, num) and isinstance(b, num) and
                                      not isinstance(a, bool) and not isinstance(b, bool)):
        return path or "(whole game)"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if not path and k == "name":
                continue
            p = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                return p
            d = _json_same(a[k], b[k], p)
            if d is not None:
                return d
        return None
    if isinstance(a, list):
        for i in range(max(len(a), len(b))):
            p = f"{path}[{i}]"
            if i >= len(a) or i >= len(b):
                return p
            d = _json_same(a[i], b[i], p)
            if d is not None:
                return d
        return None
    return None if a == b else (path or "(whole game)")


def same_game(ga, gb, ocn=None):
    """None when two games are the same after `ocn normalise`, else the
    first differing field ("optimizer.lr").  Without the binary the stored
    forms are compared (v2 manifests store the normalised game)."""
    try:
        ga, gb = binary.normalise(ga, ocn), binary.normalise(gb, ocn)
    except BinaryNotFound:
        pass
    return _json_same(ga, gb, "")


def _fixture(x):
    return x if isinstance(x, Fixture) else load_fixture(x)


def compare(ref, test, *, require="all", precision=None, check_game=True, ocn=None):
    """Compares `test` (a fixture directory, a Fixture, or a mapping
    name -> array of your port's outputs) with the reference fixture `ref`
    (directory or Fixture), as `ocn compare REF TEST` does.

    precision: the test side's ("f64"/"f32"); default its producer's, or
    "f64" for a mapping.  Raises GameMismatch when the fixtures describe
    different games, Unsupported for a reference without measured c (v1:
    `ocn compare` re-measures it with the C reference)."""
    if require not in ("all", "gains"):
        raise ValueError(f"require must be 'all' or 'gains', not {require!r} (§10: narrowed to the gains, never to nothing)")
    ref = _fixture(ref)
    # §13: a trajectory is recognised by its initial parameters, as ocn_compare_sets does
    traj = any(n.startswith("theta_s0_") for n in ref)
    if traj:
        ref = _TrajRef(ref)
    if not ref.c_measured:
        raise Unsupported(f"{ref.dir}: no SPEC §10 rev. 2 measured c (format v{ref.version}); the C reference "
                          "re-measures it: use `ocn compare`, or regenerate the fixture with `ocn gen`")
    if isinstance(test, (str, os.PathLike, Fixture)):
        test = _fixture(test)
        if check_game:
            diff = same_game(ref.game, test.game, ocn)
            if diff is not None:
                raise GameMismatch(f"{ref.dir} and {test.dir} describe different games (first difference: game.{diff})",
                                   diff)
        tprec = precision or test.precision
        tnames = list(test)
        tget = test.__getitem__
    elif isinstance(test, collections.abc.Mapping):
        tprec = precision or "f64"
        tnames = list(test)
        tget = lambda n: np.asarray(test[n], dtype=np.float64)  # noqa: E731
    else:
        raise TypeError("test must be a fixture directory, a Fixture or a mapping name -> array")
    if traj:  # §13: the tested side's steps are formed from its theta_s as well, never read
        tder = traj_derived(tnames, tget, {n: int(np.prod(ref.shape(n))) for n in ref.derived})
        tnames = tnames + [n for n in tder if n not in set(tnames)]
        tget = (lambda g: lambda n: tder[n] if n in tder else g(n))(tget)
    u = max(unit_roundoff(ref.precision), unit_roundoff(tprec))
    tset = set(tnames)
    rows, one_side = [], []
    for name in ref:
        x_shape = ref.shape(name)
        c = ref.cond_at(name, u)  # float32: cond_f32 where recorded (ocn_cond_at)
        have = name in tset
        if is_input_of(name, traj):
            # the same inputs, bit for bit, or the comparison means nothing
            if have:
                y = tget(name)
                x = ref[name]
                if tuple(y.shape) != x_shape or not np.array_equal(x.view(np.uint64), np.ascontiguousarray(y).view(np.uint64)):
                    rows.append(Row(name, f"{name} (input differs)", math.inf, u, c, x_shape, tuple(y.shape), True))
            continue
        if not requires(require, name, traj):
            if not have:
                one_side.append((name, "reference only, not required"))
            else:
                y = tget(name)
                if tuple(y.shape) == x_shape:
                    rows.append(Row(name, name, array_err(y, ref[name], ref.zero_scale(name)), u, c, x_shape, x_shape,
                                    False))
            continue
        if not have:
            rows.append(Row(name, f"{name} (missing)", math.inf, u, c, x_shape, None, True))
            continue
        y = tget(name)
        if tuple(y.shape) != x_shape:
            rows.append(Row(name, f"{name} (shape differs)", math.inf, u, c, x_shape, tuple(y.shape), True))
            continue
        rows.append(Row(name, name, array_err(y, ref[name], ref.zero_scale(name)), u, c, x_shape, x_shape, True))
    for name in tnames:
        if name not in ref:
            one_side.append((name, "only in B"))
    return Result(ref.name, u, rows, one_side, fixture_info(ref), ref, tget)


def _shape(s):
    return "(" + ", ".join(str(int(d)) for d in s) + ("," if len(s) == 1 else "") + ")"


def assert_fixture_close(ref, test, *, require="all", precision=None, ocn=None):
    """pytest helper: raises AssertionError when `compare` does not pass,
    with a message in the manner of torch.testing.assert_close — per FAILED
    array the mismatched elements, the worst index and the allowed error:

        Fixture mismatch: 1 of 48 arrays FAILED against fixtures/mlp-tanh-ce (SPEC §10 rev. 2, u = 1.1e-16)

        k_t0_n0: relative error 2.1e-06 (Frobenius), allowed < 4.5e-14 (300·u·c, c = 1.4e+03); ratio 1.4e+10
          Mismatched elements: 36 / 36 (100.0%)
          Greatest absolute difference: 3.1e-07 at index (12,) (up to 4.4e-15 allowed)
          Greatest relative difference: 2.0e-06 at index (3,)

    An element counts as mismatched when its difference exceeds the
    per-element share of the allowed Frobenius error, 300·u·c·‖X*‖_F/√N.
    Returns the Result when it passes."""
    res = compare(ref, test, require=require, precision=precision, ocn=ocn)
    if res.passed:
        return res
    ref_dir = res._ref.dir
    if not res.rows:
        raise AssertionError(f"Fixture mismatch: nothing was compared against {ref_dir} (no output array of the "
                             f"reference on the tested side; §10: a comparison of nothing is no pass)")
    lines = [f"Fixture mismatch: {len(res.failed)} of {len(res.rows)} arrays FAILED against {ref_dir} "
             f"(SPEC §10 rev. 2, u = {res.u:.2g})", ""]
    for r in res.failed:
        lines.append(_explain(r, res))
    if res.one_side:
        lines.append("On one side only: " + ", ".join(f"{n} ({s})" for n, s in res.one_side))
    raise AssertionError("\n".join(lines))


def _explain(r, res):
    allowed = r.allowed
    head = f"{r.quantity}: "
    if r.test_shape is None:
        return head + f"missing on the tested side (reference shape {_shape(r.ref_shape)})"
    if r.quantity.endswith("(input differs)"):
        return head + ("an input that is not bit-identical to the reference's: the comparison would mean nothing "
                       f"(shapes {_shape(r.test_shape)} vs {_shape(r.ref_shape)})")
    if r.test_shape != r.ref_shape:
        return head + f"shape {_shape(r.test_shape)}, reference {_shape(r.ref_shape)}"
    x = np.asarray(res._test(r.name), dtype=np.float64)
    xs = np.asarray(res._ref[r.name], dtype=np.float64)
    n = xs.size
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), xs.shape))
        return head + (f"{int(bad.sum())} of {n} elements are NaN/Inf (first at index {idx}); the reference is finite "
                       f"there" if np.all(np.isfinite(xs)) else "")
    d = np.abs(x - xs)
    ref_norm = float(np.sqrt(np.sum(xs.astype(np.longdouble) ** 2)))
    per_elem = allowed * max(ref_norm, DBL_MIN) / math.sqrt(max(n, 1))
    mism = int(np.sum(d > per_elem))
    wi = tuple(int(i) for i in np.unravel_index(int(np.argmax(d)), xs.shape)) if n else ()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(xs != 0, d / np.abs(xs), np.where(d == 0, 0.0, np.inf))
    ri = tuple(int(i) for i in np.unravel_index(int(np.argmax(rel)), xs.shape)) if n else ()
    return "\n".join([
        head + f"relative error {r.err:.2g} (Frobenius), allowed < {allowed:.2g} (300·u·c, c = {max(r.c, 1):.2g}); "
               f"ratio {r.ratio:.3g}",
        f"  Mismatched elements: {mism} / {n} ({100.0 * mism / max(n, 1):.1f}%)",
        f"  Greatest absolute difference: {float(d[wi]) if n else 0:.2g} at index {wi} (up to {per_elem:.2g} allowed)",
        f"  Greatest relative difference: {float(rel[ri]) if n else 0:.2g} at index {ri}",
    ])
