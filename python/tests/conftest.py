"""Shared pytest fixtures.  The tests run against the package as imported
(the installed one under `make python-test`, the tree's with PYTHONPATH=python)
and against the `ocn` binary of this tree ($OCN, default build/ocn)."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
OCN = os.path.abspath(os.environ.get("OCN", os.path.join(REPO, "build", "ocn")))
FIXTURES = sorted(os.path.join(REPO, "fixtures", d) for d in os.listdir(os.path.join(REPO, "fixtures"))
                  if os.path.isfile(os.path.join(REPO, "fixtures", d, "manifest.json")))


@pytest.fixture(scope="session")
def ocn():
    if not os.access(OCN, os.X_OK):
        pytest.fail(f"{OCN} is not built (make all)")
    os.environ["OCN"] = OCN  # the package finds the same binary
    return OCN


@pytest.fixture
def copy_fixture(tmp_path):
    """A writable copy of a shipped fixture."""
    def make(name, dest=None):
        d = tmp_path / (dest or name)
        shutil.copytree(os.path.join(REPO, "fixtures", name), d)
        return d
    return make


def run_ocn(*args):
    return subprocess.run([OCN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
