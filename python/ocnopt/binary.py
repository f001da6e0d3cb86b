"""The `ocn` binary: found, run, its answers parsed.

Game normalisation (every default filled in, SPEC §11 v2) is `ocn
normalise`'s job, never re-implemented here: two implementations of the
defaults would drift, and the normalised form is what decides whether two
fixtures describe the same game.

Where `ocn` is looked for, first hit wins: the `ocn=` argument, $OCN, `ocn`
on PATH, then `build/ocn` of the source tree this package sits in
(python/ocnopt/ -> ../../build/ocn), so tests run from the tree work.
"""
import json
import os
import shutil
import subprocess
import tempfile

from .errors import BinaryNotFound, CommandFailed, FixtureError

_TREE_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "build", "ocn")


def find_ocn(ocn=None, required=True):
    """Path of the `ocn` binary, or None (required=False) when there is none."""
    for cand in (ocn, os.environ.get("OCN"), shutil.which("ocn"), _TREE_BINARY):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    if required:
        raise BinaryNotFound("the ocn binary was not found: set $OCN, put ocn on PATH, "
                             "or build it in the source tree (make all)")
    return None


def _run(argv, what):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        msg = p.stderr.strip() or p.stdout.strip() or f"exit status {p.returncode}"
        exc = FixtureError if p.returncode == 2 else CommandFailed
        if exc is FixtureError:
            raise FixtureError(f"{what}: {msg}")
        raise CommandFailed(f"{what}: {msg}", p.returncode, p.stderr)
    return p.stdout


def version(ocn=None):
    """`ocn --version`'s version string (e.g. '0.1.0')."""
    out = _run([find_ocn(ocn), "--version"], "ocn --version")
    return out.split()[1] if len(out.split()) > 1 else out.strip()


def _game_file(game, tmpdir):
    """A path to game as a JSON file (game: a path, or a dict written to tmpdir)."""
    if isinstance(game, (str, os.PathLike)):
        return os.fspath(game)
    path = os.path.join(tmpdir, "game.json")
    with open(path, "w") as f:
        json.dump(game, f)
    return path


_NORMALISED = {}


def normalise(game, ocn=None):
    """The SPEC §11 v2 normalised form of a game (a dict, or a path to its
    JSON), as `ocn normalise` prints it.  Bad games raise FixtureError with
    ocn's message (the field, the stage or player)."""
    binary = find_ocn(ocn)
    key = None
    if not isinstance(game, (str, os.PathLike)):
        key = (binary, json.dumps(game, sort_keys=True))
        if key in _NORMALISED:
            return json.loads(_NORMALISED[key])
    with tempfile.TemporaryDirectory(prefix="ocnopt-") as tmp:
        out = _run([binary, "normalise", _game_file(game, tmp)], "ocn normalise")
    if key:
        _NORMALISED[key] = out
    return json.loads(out)


def gen(game, out_dir, backend="reference", precision="f64", force=False, ocn=None, max_memory=None):
    """Runs `ocn gen GAME -o OUT_DIR` (the reference, or --backend cpu)."""
    binary = find_ocn(ocn)
    with tempfile.TemporaryDirectory(prefix="ocnopt-") as tmp:
        argv = [binary, "gen", _game_file(game, tmp), "-o", os.fspath(out_dir)]
        if backend != "reference":
            argv += ["--backend", backend]
        if precision != "f64":
            argv += ["--precision", precision]
        if force:
            argv.append("--force")
        if max_memory:
            argv += ["--max-memory", str(max_memory)]
        _run(argv, "ocn gen")
    return os.fspath(out_dir)
