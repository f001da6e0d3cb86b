"""compare / assert_fixture_close: deliberately wrong outputs are caught, each
verdict agrees with `ocn compare` on the same directories (SPEC §10 rev. 2)."""
import json
import math
import os

import numpy as np
import pytest

import ocnopt
from conftest import REPO, run_ocn

REF = os.path.join(REPO, "fixtures", "mlp-tanh-ce")


def c_verdicts(ref, test, *extra):
    """`ocn compare REF TEST --json`: (exit status, {array: verdict})."""
    js = os.path.join(str(test) + ".report.json")
    p = run_ocn("compare", ref, test, "--json", js, *extra)
    if p.returncode not in (0, 1):
        return p.returncode, p.stderr
    rows = json.load(open(js))["rows"]
    return p.returncode, {r["quantity"].split(" ")[0]: r["verdict"] for r in rows}


def py_verdicts(res):
    return res.exit_status, {r.name: r.verdict for r in res.rows}


def port_outputs(ref):
    """A perfect 'port': the reference's own arrays."""
    return {n: np.array(ref[n]) for n in ref}


def both(ref, arrays, tmp_path, name="t", **kw):
    d = tmp_path / name
    ocnopt.write_fixture(d, ocnopt.load_fixture(ref), arrays, **kw)
    py = ocnopt.compare(ref, d, require=kw.get("require", "all")) if "require" in kw else ocnopt.compare(ref, d)
    return py, c_verdicts(ref, d)


def test_identical_outputs_pass_with_ocn(ocn, tmp_path):
    py, c = both(REF, port_outputs(ocnopt.load_fixture(REF)), tmp_path)
    assert py.passed and py_verdicts(py) == c and c[0] == 0


def test_perturbation_just_above_the_allowed_error_fails_just_below_passes(ocn, tmp_path):
    ref = ocnopt.load_fixture(REF)
    allowed = 300 * 2.0 ** -53 * max(ref.cond("k_t0_n0"), 1)
    # 3·300 = ratio 900: FAILED; 0.05·300 = ratio 15: ok (0.1 sat on the ok/marginal line, ratio 30, and
    # passed or not by the rounding of the stored c)
    for factor, verdict in ((3.0, "FAILED"), (0.05, "ok")):
        arrays = port_outputs(ref)
        k = arrays["k_t0_n0"]
        k += factor * allowed * np.linalg.norm(k) * np.ones_like(k) / math.sqrt(k.size)
        py, c = both(REF, arrays, tmp_path, f"f{factor}")
        assert py["k_t0_n0"].verdict == verdict and c[1]["k_t0_n0"] == verdict
        assert py_verdicts(py) == c


def test_missing_shape_nan_input_all_fail_like_ocn(ocn, tmp_path):
    ref = ocnopt.load_fixture(REF)
    arrays = port_outputs(ref)
    del arrays["K_t1_n0"]
    arrays["k_t2_n0"] = np.append(arrays["k_t2_n0"], 0.0)
    arrays["Vx_t1_n0"] = arrays["Vx_t1_n0"].copy()
    arrays["Vx_t1_n0"][1, 2] = np.nan
    arrays["theta_t0_n0"] = np.nextafter(arrays["theta_t0_n0"], 1.0)   # one ulp: not the same input
    arrays["extra_thing"] = np.zeros(2)
    py, c = both(REF, arrays, tmp_path)
    v = {r.name: r.quantity for r in py.rows}
    assert v["K_t1_n0"] == "K_t1_n0 (missing)"
    assert v["k_t2_n0"] == "k_t2_n0 (shape differs)"
    assert py["k_t2_n0"].test_shape == (22,) and py["k_t2_n0"].ref_shape == (21,)
    assert "reason: shape (22,), reference (21,)" in str(py)
    assert v["theta_t0_n0"] == "theta_t0_n0 (input differs)"
    for n in ("K_t1_n0", "k_t2_n0", "Vx_t1_n0", "theta_t0_n0"):
        assert py[n].verdict == "FAILED" and c[1][n] == "FAILED"
    assert py_verdicts(py) == c and c[0] == 1
    assert ("extra_thing", "only in B") in py.one_side


def test_shapes_printed_by_ocn_too(ocn, tmp_path):
    ref = ocnopt.load_fixture(REF)
    arrays = port_outputs(ref)
    arrays["k_t2_n0"] = np.append(arrays["k_t2_n0"], 0.0)
    ocnopt.write_fixture(tmp_path / "s", ref, arrays)
    p = run_ocn("compare", REF, tmp_path / "s")
    assert p.returncode == 1 and "k_t2_n0 (shape differs)" in p.stdout
    assert "reason: shape (22,), reference (21,)" in p.stdout


def test_require_gains_and_f32(ocn, tmp_path):
    ref = ocnopt.load_fixture(REF)
    gains = {n: ref[n] for n in ref if n.startswith(("k_", "K_", "Vx", "dx_", "theta_new"))}
    py, c = both(REF, gains, tmp_path, "g")
    assert not py.passed and c[0] == 1                        # require all: Q arrays missing
    d = tmp_path / "g"
    py = ocnopt.compare(REF, d, require="gains")
    c = c_verdicts(REF, d, "--require", "gains")
    assert py.passed and py_verdicts(py) == c
    with pytest.raises(ValueError, match="never to nothing"):
        ocnopt.compare(REF, d, require="none")
    # an f32 port: u = 2^-24, so float32 rounding passes where it would fail at f64
    a32 = {n: (ref[n] if ocnopt.is_input(n) else ref[n].astype(np.float32)) for n in ref}
    py64 = ocnopt.compare(REF, a32)
    py32 = ocnopt.compare(REF, a32, precision="f32")
    assert not py64.passed and py32.passed and py32.u == 2.0 ** -24
    ocnopt.write_fixture(tmp_path / "f32", ref, a32, producer={"precision": "f32"})
    assert py_verdicts(ocnopt.compare(REF, tmp_path / "f32")) == c_verdicts(REF, tmp_path / "f32")


def test_games_compared_after_normalisation(ocn, tmp_path, copy_fixture):
    d = copy_fixture("mlp-tanh-ce", "same")
    m = json.loads((d / "manifest.json").read_text())
    m["game"]["optimizer"]["lr"] = 1               # 1 vs 1.0: the same game
    del m["game"]["optimizer"]["eps"]              # an omitted default: the same game
    (d / "manifest.json").write_text(json.dumps(m))
    assert ocnopt.compare(REF, d).passed and run_ocn("compare", REF, d).returncode == 0
    m["game"]["optimizer"]["lr"] = 0.5
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ocnopt.GameMismatch) as e:
        ocnopt.compare(REF, d)
    assert e.value.field == "optimizer.lr" and "game.optimizer.lr" in str(e.value)
    p = run_ocn("compare", REF, d)
    assert p.returncode == 2 and "game.optimizer.lr" in p.stderr


def test_assert_fixture_close_message(ocn):
    ref = ocnopt.load_fixture(REF)
    arrays = port_outputs(ref)
    arrays["k_t0_n0"] = arrays["k_t0_n0"].copy()
    arrays["k_t0_n0"][7] *= 1 + 1e-6
    del arrays["K_t1_n0"]
    ocnopt.assert_fixture_close(REF, port_outputs(ref))          # passes silently
    with pytest.raises(AssertionError) as e:
        ocnopt.assert_fixture_close(REF, arrays)
    msg = str(e.value)
    assert "Fixture mismatch: 2 of" in msg and "arrays FAILED" in msg
    assert "k_t0_n0: relative error" in msg and "allowed <" in msg
    assert "Mismatched elements: 1 / 36 (2.8%)" in msg
    assert "Greatest absolute difference:" in msg and "at index (7,)" in msg
    assert "K_t1_n0 (missing): missing on the tested side (reference shape (4, 42, 6))" in msg


def test_nothing_compared_is_no_pass(ocn, copy_fixture):
    d = copy_fixture("mlp-tanh-ce", "inputs-only")
    m = json.loads((d / "manifest.json").read_text())
    m["arrays"] = {n: e for n, e in m["arrays"].items() if ocnopt.is_input(n)}
    (d / "manifest.json").write_text(json.dumps(m))
    res = ocnopt.compare(d, d)
    assert not res.passed and res.rows == [] and "nothing was compared" in str(res)
    assert c_verdicts(d, d) == (1, {})
    with pytest.raises(AssertionError, match="nothing was compared"):
        ocnopt.assert_fixture_close(d, {})


def test_weak_rows_never_pass(ocn):
    d = os.path.join(REPO, "fixtures", "coop-block-singular-gr")
    ref = ocnopt.load_fixture(d)
    res = ocnopt.compare(d, port_outputs(ref))
    weak = [r.name for r in res.weak]
    assert weak and all(not ref.informative(n) for n in weak)
    assert res.n_passed == len(res.rows) - len(weak)


def test_zero_by_cancellation_uses_zero_scale_like_ocn(ocn, tmp_path, copy_fixture):
    """An all-zero X* whose manifest stores zero_scale (issue 10: a zero the
    perturbation runs did not reproduce) is judged by ‖X‖/zero_scale."""
    d = copy_fixture("mlp-tanh-ce", "zs")
    m = json.loads((d / "manifest.json").read_text())
    ref = ocnopt.load_fixture(REF)
    assert not np.any(ref["dx_t0"])                       # dx_0 = 0 always
    m["arrays"]["dx_t0"]["zero_scale"] = 1e-3
    (d / "manifest.json").write_text(json.dumps(m))
    arrays = port_outputs(ref)
    arrays["dx_t0"] = np.full_like(arrays["dx_t0"], 1e-17)  # ‖X‖ ~ 2e-16: tiny against 1e-3
    ocnopt.write_fixture(tmp_path / "t", ref, arrays)
    py = ocnopt.compare(d, tmp_path / "t")
    assert py["dx_t0"].verdict == "ok" and py_verdicts(py) == c_verdicts(d, tmp_path / "t")
    assert ocnopt.compare(REF, tmp_path / "t")["dx_t0"].verdict == "FAILED"   # without it: relative to 0


def test_no_digit_determined_is_weak_and_finite_err_stays_finite():
    """docs/decisions.md "No digit determined" and "err of a finite answer is
    finite": the same rules as harness/report.c and harness/compare.c."""
    from ocnopt.compare import U64, array_err, verdict_of

    assert verdict_of(1e10, U64, 2.0 / U64)[1] == "weak"
    assert verdict_of(float("nan"), U64, 2.0 / U64)[1] == "FAILED"
    assert verdict_of(1.0, U64, 1e8)[1] == "FAILED"
    assert verdict_of(1e3, U64, 1.01 / (300 * U64))[1] == "weak"
    assert verdict_of(1e3, U64, 0.99 / (300 * U64))[1] == "FAILED"
    big = np.array([1.6e14, -1.5e14, 3.4e14])
    e = array_err(big, np.zeros(3), zero_scale=1.77e31)
    assert np.isfinite(e) and e < 1e-16
    # a zero_scale on a nonzero reference (a tampered manifest) is ignored
    assert array_err(np.full(3, 7.0), np.array([1.0, 2.0, 3.0]), zero_scale=1e300) > 1.0


def test_zero_scale_beside_a_non_zero_reference_is_ignored(ocn, tmp_path, copy_fixture):
    """red team: a zero_scale written into the reference manifest beside a
    non-zero X* (an edited manifest) must not turn err into ‖X‖/zero_scale:
    k_t1_n0 off by 1e-3 stays FAILED, here and in `ocn compare`."""
    d = copy_fixture("mlp-tanh-ce", "zs-big")
    m = json.loads((d / "manifest.json").read_text())
    m["arrays"]["k_t1_n0"]["zero_scale"] = 1e300
    (d / "manifest.json").write_text(json.dumps(m))
    ref = ocnopt.load_fixture(REF)
    arrays = port_outputs(ref)
    arrays["k_t1_n0"] = arrays["k_t1_n0"] * (1 + 1e-3)
    ocnopt.write_fixture(tmp_path / "t", ref, arrays)
    py = ocnopt.compare(d, tmp_path / "t")
    assert py["k_t1_n0"].verdict == "FAILED" and py_verdicts(py) == c_verdicts(d, tmp_path / "t")
