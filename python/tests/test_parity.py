"""The package's verdicts against the C harness's on real port output: the
numpy port (examples/port_numpy.py, ci/port_mutants.sh) run clean and with
each of its planted bugs over every shipped fixture, every output compared
by `ocn compare --json` and by ocnopt.compare — the same verdict for every
array, the same exit status, and every planted bug caught by both."""
import concurrent.futures
import filecmp
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import ocnopt
from conftest import FIXTURES, REPO, run_ocn

PORT = os.path.join(REPO, "examples", "port_numpy.py")


def port(out_root, mutant=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    argv = [sys.executable, PORT, "--out-root", str(out_root)] + (["--mutant", mutant] if mutant else []) + FIXTURES
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def same_arrays(a, b):
    names = sorted(f for f in os.listdir(a) if f.endswith(".npy"))
    if names != sorted(f for f in os.listdir(b) if f.endswith(".npy")):
        return False
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def c_side(ref, test):
    js = str(test) + ".json"
    p = run_ocn("compare", ref, test, "--json", js)
    if p.returncode not in (0, 1):
        return p.returncode, p.stderr.strip()
    rows = json.load(open(js))["rows"]
    return p.returncode, {r["quantity"]: r["verdict"] for r in rows}


def py_side(ref, test):
    try:
        res = ocnopt.compare(ref, test)
    except ocnopt.FixtureError as e:
        return 2, str(e)
    return res.exit_status, res.verdicts()


@pytest.fixture(scope="session")
def port_outputs(tmp_path_factory, ocn):
    """(mutant or 'clean', fixture dir, output dir) for every output the port
    wrote; a mutant's output byte-identical to the clean one is left out
    (both sides would agree trivially, as ci/port_mutants.sh does)."""
    root = tmp_path_factory.mktemp("port")
    mutants = subprocess.run([sys.executable, PORT, "--list-mutants"], stdout=subprocess.PIPE, text=True,
                             check=True).stdout.split("\n")
    mutants = [m.split()[0] for m in mutants if m.strip()]
    assert {"decay-drop", "refresh-shift"} <= set(mutants)  # the §13 state mutants, caught on trajectories only
    runs = [("clean", None)] + [(f"m{i}", m) for i, m in enumerate(mutants)]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda r: port(root / r[0], r[1]), runs))
    out = []
    for key, m in runs:
        for d in FIXTURES:
            o = root / key / os.path.basename(d)
            if not o.is_dir():
                continue
            if m and same_arrays(o, root / "clean" / os.path.basename(d)):
                continue
            out.append((m or "clean", d, o))
    return mutants, out


def test_python_verdicts_equal_ocn_compare_on_port_mutants(port_outputs):
    mutants, outs = port_outputs
    assert len(outs) > len(FIXTURES)               # the clean port and the mutants' differing outputs
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        c = list(ex.map(lambda t: c_side(t[1], t[2]), outs))
    disagree, rows, failed = [], 0, 0
    caught_c, caught_py = set(), set()
    for (m, d, o), cv in zip(outs, c):
        pv = py_side(d, o)
        if pv != cv:
            diff = {k: (cv[1].get(k), pv[1].get(k)) for k in set(cv[1]) | set(pv[1])
                    if cv[1].get(k) != pv[1].get(k)} if isinstance(cv[1], dict) and isinstance(pv[1], dict) else (cv, pv)
            disagree.append(f"{m} {os.path.basename(d)}: exit C {cv[0]} py {pv[0]}; (C, py) {diff}")
        if isinstance(pv[1], dict):
            rows += len(pv[1])
            failed += sum(v == "FAILED" for v in pv[1].values())
        if cv[0] == 1:
            caught_c.add(m)
        if pv[0] == 1:
            caught_py.add(m)
    assert not disagree, "\n".join(disagree[:20])
    assert "clean" not in caught_c                 # the clean port passes everywhere, on both sides
    assert caught_py == caught_c == set(mutants)   # every planted bug caught by both
    assert failed > 0 and rows > 1000
    traj = [(m, d) for m, d, o in outs if os.path.basename(d).startswith("traj-")]
    assert {os.path.basename(d) for m, d in traj if m == "clean"} == \
        {os.path.basename(d) for d in FIXTURES if os.path.basename(d).startswith("traj-")}
    for m in ("decay-drop", "refresh-shift"):  # §13 state bugs: caught on trajectory fixtures by both
        assert any(mm == m for mm, d in traj), m
    print(f"parity: {len(outs)} port outputs ({len(traj)} trajectories), {rows} rows, {failed} FAILED, "
          "verdicts identical")


@pytest.mark.parametrize("target", ["theta_s1_t0_n0", "theta_t1_n0"])
def test_tampered_trajectory_fails_in_both(port_outputs, tmp_path, target):
    """One stored θ of the clean port's trajectory output moved by 1e-9
    relative: far above 300·u·c, so FAILED (the θ row and, for theta_s, the
    two steps Δ formed from it) — the same rows, the same exit, in C and here."""
    _, outs = port_outputs
    done = 0
    for m, d, o in outs:
        if m != "clean" or not os.path.basename(d).startswith("traj-"):
            continue
        t = tmp_path / os.path.basename(d)
        shutil.copytree(o, t)
        if not os.path.exists(t / f"{target}.npy"):
            continue
        a = np.load(t / f"{target}.npy")
        a[0] += 1e-9 * np.linalg.norm(a)
        np.save(t / f"{target}.npy", a)
        cv, pv = c_side(d, t), py_side(d, t)
        assert cv == pv
        assert cv[0] == 1 and cv[1][target] == "FAILED"
        if target.startswith("theta_s"):
            assert cv[1]["dtheta_s0_t0_n0"] == cv[1]["dtheta_s1_t0_n0"] == "FAILED"
        done += 1
    assert done >= 3
