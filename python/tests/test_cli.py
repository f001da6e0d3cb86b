"""The package and the binary: one version, `run` through `ocn gen`, the
installed package under `make python-test`."""
import json
import os
import re

import numpy as np
import pytest

import ocnopt
from conftest import REPO, run_ocn


def test_one_version_everywhere(ocn):
    header = open(os.path.join(REPO, "include", "ocn", "version.h")).read()
    v = re.search(r'#define OCN_VERSION "([^"]+)"', header).group(1)
    assert ocnopt.__version__ == v
    assert ocnopt.binary.version() == v
    assert re.search(r'^version = "([^"]+)"', open(os.path.join(REPO, "python", "pyproject.toml")).read(),
                     re.M).group(1) == v


def test_run_calls_ocn_gen_and_matches_the_shipped_fixture(ocn, tmp_path):
    fx = ocnopt.run(os.path.join(REPO, "games", "mlp-tanh-ce.json"), tmp_path / "gen")
    assert fx.producer["name"] == "ocnopt reference" and fx.producer["version"] == ocnopt.__version__
    shipped = ocnopt.load_fixture(os.path.join(REPO, "fixtures", "mlp-tanh-ce"))
    assert sorted(fx) == sorted(shipped) and all(np.array_equal(fx[n], shipped[n]) for n in fx.inputs)
    assert ocnopt.compare(shipped, fx).passed          # outputs: the same to §10 accuracy
    game = json.load(open(os.path.join(REPO, "games", "mlp-tanh-ce.json")))
    game["batch"] = -1
    with pytest.raises(ocnopt.FixtureError, match="batch"):
        ocnopt.run(game, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_missing_binary_is_said(monkeypatch, tmp_path):
    monkeypatch.setenv("OCN", str(tmp_path / "no-ocn"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(ocnopt.binary, "_TREE_BINARY", str(tmp_path / "none"))
    with pytest.raises(ocnopt.BinaryNotFound, match="set \\$OCN"):
        ocnopt.run({"name": "x"})


def test_installed_package_is_the_one_tested():
    venv = os.environ.get("OCNOPT_INSTALLED")
    if not venv:
        pytest.skip("run from the tree (make python-test tests the installed package)")
    assert os.path.realpath(ocnopt.__file__).startswith(os.path.realpath(venv))
