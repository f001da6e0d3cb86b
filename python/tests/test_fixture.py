"""load_fixture / write_fixture (SPEC §11 v2, docs/fixtures.md)."""
import json
import os

import numpy as np
import pytest

import ocnopt
from conftest import FIXTURES, REPO, run_ocn


def test_every_shipped_fixture_loads_lazily():
    for d in FIXTURES:
        fx = ocnopt.load_fixture(d)
        assert fx.loaded() == []                      # nothing read yet
        traj = fx.manifest["game"]["optimizer"].get("steps", 1) > 1  # SPEC §13 trajectory fixtures ship too
        assert fx.version == 2 and fx.kind == ("trajectory" if traj else "step") and fx.c_measured
        name = fx.outputs[0]
        a = fx[name]
        assert fx.loaded() == [name]
        assert a.dtype == np.float64 and a.shape == fx.shape(name)
        assert not a.flags.writeable
        assert set(fx.inputs) >= {"x0", "y"}


def test_arrays_equal_an_independent_npy_read():
    fx = ocnopt.load_fixture(os.path.join(REPO, "fixtures", "mlp-tanh-ce"))
    for n in fx:
        raw = np.load(os.path.join(fx.dir, n + ".npy"))
        assert np.array_equal(fx[n], raw)
    assert fx.cond("k_t0_n0") == fx.entry("k_t0_n0")["cond"] > 0
    assert fx.game["optimizer"]["lr"] == 1.0      # the normalised game: every default present
    assert "refresh_every" in fx.game["optimizer"]


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format="other"), 'format must be "ocnopt-fixture"'),
    (lambda m: m.update(version=3), "version must be 1 or 2"),
    (lambda m: m["arrays"]["k_t0_n0"].update(file="../x.npy"), "arrays.k_t0_n0: file '../x.npy' must be a plain name"),
    (lambda m: m["arrays"]["k_t0_n0"].update(shape=[-1]), "arrays.k_t0_n0.shape[0] must be a non-negative integer"),
    (lambda m: m.update(kind="movie"), 'kind must be "step" or "trajectory"'),
])
def test_bad_manifest_named(copy_fixture, edit, message):
    d = copy_fixture("mlp-tanh-ce")
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ocnopt.FixtureError) as e:
        ocnopt.load_fixture(d)
    assert message in str(e.value) and "manifest.json" in str(e.value)


def test_bad_array_named_on_first_use(copy_fixture):
    d = copy_fixture("mlp-tanh-ce")
    np.save(d / "k_t0_n0.npy", np.zeros(3))
    x0 = np.load(d / "x0.npy")
    x0[0, 0] = np.nan
    np.save(d / "x0.npy", x0)
    fx = ocnopt.load_fixture(d)                  # lazy: the manifest is fine
    with pytest.raises(ocnopt.FixtureError, match=r"k_t0_n0.npy: shape \(3,\) does not match .*arrays.k_t0_n0.shape"):
        fx["k_t0_n0"]
    with pytest.raises(ocnopt.FixtureError, match="input array 'x0' contains NaN or Inf"):
        fx["x0"]


def test_write_roundtrip_is_accepted_by_ocn(ocn, tmp_path):
    ref = ocnopt.load_fixture(os.path.join(REPO, "fixtures", "separable-2lane-gr"))
    out = tmp_path / "port"
    ocnopt.write_fixture(out, ref, {n: ref[n] for n in ref}, producer={"name": "test"})
    back = ocnopt.load_fixture(out)
    assert back.version == 2 and back.producer["name"] == "test" and back.producer["version"] == ocnopt.__version__
    assert sorted(back) == sorted(ref) and all(np.array_equal(back[n], ref[n]) for n in ref)
    p = run_ocn("compare", ref.dir, out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not [f for f in os.listdir(tmp_path) if ".tmp." in f]   # no temporary left


def test_write_is_refused_or_replaced_safely(ocn, tmp_path):
    ref = ocnopt.load_fixture(os.path.join(REPO, "fixtures", "mlp-tanh-ce"))
    out = tmp_path / "f"
    ocnopt.write_fixture(out, ref, {"k_t0_n0": ref["k_t0_n0"]})
    with pytest.raises(ocnopt.FixtureError, match="exists"):
        ocnopt.write_fixture(out, ref, {"k_t0_n0": ref["k_t0_n0"]})
    ocnopt.write_fixture(out, ref, {"k_t1_n0": ref["k_t1_n0"]}, force=True)   # a fixture: replaced
    assert sorted(os.listdir(out)) == ["k_t1_n0.npy", "manifest.json"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ocnopt.FixtureError, match="notes.txt"):                # not only a fixture: kept
        ocnopt.write_fixture(out, ref, {"k_t0_n0": ref["k_t0_n0"]}, force=True)
    assert (out / "notes.txt").exists()
    os.symlink(out, tmp_path / "link")
    with pytest.raises(ocnopt.FixtureError, match="symbolic link"):
        ocnopt.write_fixture(tmp_path / "link", ref, {}, force=True)
    with pytest.raises(ocnopt.FixtureError, match="NaN"):
        ocnopt.write_fixture(tmp_path / "g", ref, {"x0": np.full((2, 2), np.nan)})
    assert not (tmp_path / "g").exists()
    with pytest.raises(ocnopt.FixtureError, match="not real"):
        ocnopt.write_fixture(tmp_path / "g", ref, {"k_t0_n0": np.array(["a"])})


def test_write_normalises_through_ocn(ocn, tmp_path):
    game = json.load(open(os.path.join(REPO, "games", "mlp-tanh-ce.json")))
    del game["optimizer"]["lr"], game["optimizer"]["eps"]             # defaults left out
    ocnopt.write_fixture(tmp_path / "f", game, {})
    m = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert m["game"] == ocnopt.normalise(os.path.join(REPO, "games", "mlp-tanh-ce.json"))
    assert m["game"]["optimizer"]["lr"] == 1.0
    bad = dict(game, batch=0)
    with pytest.raises(ocnopt.FixtureError, match="batch"):
        ocnopt.write_fixture(tmp_path / "h", bad, {})


def test_shipped_trajectory_compares_with_itself_and_forms_its_steps():
    """§13: the steps Δ_s are formed from theta_s (not read) with the derived
    table's c; theta_t are outputs and theta_s0_/x0_s… inputs."""
    d = os.path.join(REPO, "fixtures", "traj-rho0-kfac")
    fx = ocnopt.load_fixture(d)
    assert "theta_t0_n0" in fx.outputs and "theta_s0_t0_n0" in fx.inputs and "x0_s1" in fx.inputs
    res = ocnopt.compare(d, d)
    r = res["dtheta_s1_t0_n0"]
    assert r.err == 0 and r.c == fx.derived["dtheta_s1_t0_n0"]["cond"] and res.passed
    assert "theta_t0_n0" in res.verdicts() and "theta_s0_t0_n0" not in res.verdicts()
