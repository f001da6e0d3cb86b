"""ocnopt for port authors: read ocnopt fixtures, write your port's outputs
as one, and get the verdict `ocn compare` would give (SPEC §10 rev. 2).

    import ocnopt
    fx = ocnopt.load_fixture("fixtures/mlp-tanh-ce")        # manifest + lazy arrays
    outs = my_port(fx.game, {n: fx[n] for n in fx.inputs})  # your computation
    ocnopt.assert_fixture_close(fx, outs)                    # pytest-style
    res = ocnopt.compare(fx, outs); print(res)               # every row

    ocnopt.write_fixture("out/mlp-tanh-ce", fx, outs)        # then: ocn compare fixtures/mlp-tanh-ce out/mlp-tanh-ce
    fx2 = ocnopt.run("games/mlp-tanh-ce.json", "out/ref")   # `ocn gen` (needs the binary)

docs/port-guide.md walks through it.  Pure Python + numpy; the `ocn` binary
is used for game normalisation and `run` only (found via $OCN, PATH, or the
source tree's build/ocn).
"""
import os
import tempfile

from . import binary
from .binary import find_ocn, normalise
from .compare import Result, Row, assert_fixture_close, compare, informative, rel_err, verdict_of
from .errors import BinaryNotFound, CommandFailed, FixtureError, GameMismatch, OcnError, Unsupported
from .fixture import Fixture, is_input, load_fixture, write_fixture

__version__ = "0.1.0"  # = OCN_VERSION (include/ocn/version.h)

__all__ = ["load_fixture", "write_fixture", "compare", "assert_fixture_close", "run", "normalise", "find_ocn",
           "Fixture", "Result", "Row", "is_input", "informative", "rel_err", "verdict_of", "OcnError",
           "FixtureError", "GameMismatch", "Unsupported", "BinaryNotFound", "CommandFailed", "__version__"]


def run(game, out_dir=None, *, backend="reference", precision="f64", force=False, ocn=None, max_memory=None):
    """Generates the fixture of `game` (a dict or a path to its JSON) with
    `ocn gen` — the C reference, or backend="cpu" for the optimized path —
    and returns it loaded.  out_dir None: a new temporary directory (yours
    to remove).  Raises BinaryNotFound without the binary, FixtureError
    with ocn's message for a bad or refused game (exit 2)."""
    if out_dir is None:
        out_dir = os.path.join(tempfile.mkdtemp(prefix="ocnopt-run-"), "fixture")
    binary.gen(game, out_dir, backend=backend, precision=precision, force=force, ocn=ocn, max_memory=max_memory)
    return load_fixture(out_dir)
