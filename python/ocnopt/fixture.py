"""Fixture directories (SPEC §11, format version 2; docs/fixtures.md).

    fx = load_fixture("fixtures/mlp-tanh-ce")
    fx.game["optimizer"]["lr"]          # the normalised §12 game
    fx["k_t0_n0"]                       # read on first use, then cached
    fx.cond("k_t0_n0")                  # §10 rev. 2 measured sensitivity c

    write_fixture("out/mlp-tanh-ce", fx.game, {"k_t0_n0": k, ...})

Reading follows the C reader (src/fixture.c): the same manifest checks, the
same messages' content (file, field), inputs with NaN/Inf refused, every
array's dtype and shape checked against the manifest when it is read.
Writing is atomic as `ocn gen` is: a temporary sibling DIR.tmp.XXXXXX is
filled, then renamed into place (an existing fixture, with force=True, is
swapped with renameat2(RENAME_EXCHANGE) where the kernel has it).
"""
import collections.abc
import ctypes
import ctypes.util
import errno
import json
import math
import os
import re
import shutil
import tempfile
import warnings

import numpy as np

from . import binary
from .errors import BinaryNotFound, FixtureError

FORMAT = "ocnopt-fixture"
VERSION = 2
MAX_NDIM = 8  # OCN_MAX_NDIM (include/ocn/arrays.h)


def is_input(name):
    """§11: the inputs a port reads (all others are outputs it computes);
    §13: also a trajectory's initial parameters theta_s0_… and a stream's
    batches x0_s…, y_s… (ocn_array_is_input, src/fixture.c)."""
    return name in ("x0", "y") or name.startswith(("theta_t", "Wfix_", "theta_s0_", "x0_s", "y_s"))


def is_input_of(name, trajectory):
    """is_input for a fixture of either kind (ocn_array_is_input_of): in a §13
    trajectory theta_t… (the last step's parameters) are computed by the steps
    before it, so they are outputs there."""
    return is_input(name) and not (trajectory and name.startswith("theta_t"))


def is_derived(name):
    """§13 derived arrays dtheta_s{s}_t{t}_n{n} (ocn_array_is_derived): formed
    by the tools, never stored as files; their c in the manifest's "derived"."""
    return name.startswith("dtheta_s")


_THETA_S = re.compile(r"^theta_s(\d+)_(t\d+_n\d+)$")


def traj_derived(names, get, steps=None):
    """The §13 steps Δ_s = theta_s{s+1} − theta_s{s} of the arrays `names`
    (ocn_traj_add_derived): name -> float64 array, for every pair stored on
    this side.  `steps` (the reference's pairs, name -> size m) restricts
    the steps formed to those and skips a side whose θ has another size, as
    the C tools do (the row is then reported as missing)."""
    have = set(names)
    out = {}
    if steps is None:
        steps = {}
        for n in names:
            mt = _THETA_S.match(n)
            if mt and f"theta_s{int(mt.group(1)) + 1}_{mt.group(2)}" in have:
                steps[f"dtheta_s{mt.group(1)}_{mt.group(2)}"] = None
    for dn, m in steps.items():
        mt = re.match(r"^dtheta_s(\d+)_(t\d+_n\d+)$", dn)
        a0, a1 = f"theta_s{mt.group(1)}_{mt.group(2)}", f"theta_s{int(mt.group(1)) + 1}_{mt.group(2)}"
        if a0 not in have or a1 not in have:
            continue  # absent: listed as missing
        x0 = np.asarray(get(a0), dtype=np.float64).ravel()
        x1 = np.asarray(get(a1), dtype=np.float64).ravel()
        if m is not None and (x0.size != m or x1.size != m):
            continue
        if x0.size != x1.size:
            continue
        out[dn] = x1 - x0
    return out


def cond_at_entry(entry, u, c_measured, cond):
    """ocn_cond_at on one manifest entry (arrays.NAME or derived.NAME): at
    float32 (u > 1e-10) its positive `cond_f32` of a measured manifest, else
    `cond` (already resolved by the caller)."""
    c32 = entry.get("cond_f32")
    if u > 1e-10 and c_measured and not isinstance(c32, bool) and isinstance(c32, (int, float)) and c32 > 0:
        return float(c32)
    return cond


class Fixture(collections.abc.Mapping):
    """A fixture read from `dir`: a read-only mapping name -> numpy array
    (float64, read lazily and cached), plus its manifest."""

    def __init__(self, directory, manifest):
        self.dir = os.fspath(directory)
        self.manifest = manifest
        self._cache = {}

    # -- manifest fields --------------------------------------------------
    @property
    def name(self):
        return self.game.get("name", os.path.basename(os.path.normpath(self.dir)))

    @property
    def game(self):
        """The §12 game description (normalised in v2 manifests)."""
        return self.manifest["game"]

    @property
    def version(self):
        return self.manifest["version"]

    @property
    def kind(self):
        """"step" (one optimizer step) or "trajectory" (SPEC §13)."""
        return self.manifest.get("kind", "step")

    @property
    def producer(self):
        return self.manifest.get("producer", {})

    @property
    def precision(self):
        return self.producer.get("precision", "f64")

    @property
    def tolerance(self):
        return self.manifest.get("tolerance", {})

    @property
    def c_measured(self):
        """True when the arrays' `cond` is SPEC §10 rev. 2's measured c (a
        v2 manifest with tolerance.rule "measured"); a v1 `cond` was a bound
        and is not used (src/fixture.c)."""
        return self.version >= 2 and self.tolerance.get("rule") == "measured"

    @property
    def derived(self):
        """Trajectory fixtures (§13): the `derived` table (e.g. the steps
        dtheta_s{s}_t{t}_n{n} with their cond/informative); {} otherwise."""
        return self.manifest.get("derived", {})

    @property
    def fit_for_ports(self):
        return self.manifest.get("fit_for_ports", True)

    def entry(self, name):
        """The manifest's arrays.NAME object (file, dtype, shape, cond, ...)."""
        return self.manifest["arrays"][name]

    def shape(self, name):
        return tuple(self.entry(name)["shape"])

    def cond(self, name):
        """The array's §10 c as the C tools use it: the stored `cond` of a
        measured (rev. 2) manifest, 0 when there is none."""
        c = self.entry(name).get("cond")
        if not self.c_measured or isinstance(c, bool) or not isinstance(c, (int, float)):
            return 0.0
        return float(c)

    def cond_at(self, name, u):
        """The c a comparison at unit roundoff u uses (ocn_cond_at): at float32
        the manifest's `cond_f32` where recorded (c measured with u₃₂-sized
        perturbation runs, docs/decisions.md), else `cond`."""
        return cond_at_entry(self.entry(name), u, self.c_measured, self.cond(name))

    def zero_scale(self, name):
        """§10 zero by cancellation: an all-zero array whose perturbation runs
        were not zero is compared against the size of the cancelled terms
        (ocn_array_err); 0 when the manifest stores none."""
        z = self.entry(name).get("zero_scale")
        if isinstance(z, bool) or not isinstance(z, (int, float)) or not (z > 0) or not math.isfinite(z):
            return 0.0
        return float(z)

    def informative(self, name):
        return self.entry(name).get("informative", True)

    @property
    def inputs(self):
        return [n for n in self.manifest["arrays"] if is_input_of(n, self.kind == "trajectory")]

    @property
    def outputs(self):
        return [n for n in self.manifest["arrays"] if not is_input_of(n, self.kind == "trajectory")]

    # -- arrays (lazy) ----------------------------------------------------
    def __getitem__(self, name):
        if name not in self._cache:
            e = self.manifest["arrays"][name]  # KeyError for unknown names, as a dict
            self._cache[name] = _read_array(self.dir, name, e)
        return self._cache[name]

    def __iter__(self):
        return iter(self.manifest["arrays"])

    def __len__(self):
        return len(self.manifest["arrays"])

    def loaded(self):
        """Names of the arrays read so far (laziness is observable)."""
        return list(self._cache)

    def __repr__(self):
        return (f"Fixture({self.dir!r}, game={self.name!r}, kind={self.kind!r}, "
                f"{len(self)} arrays, producer={self.producer.get('name', '?')!r})")


def _fail(msg):
    raise FixtureError(msg)


def _check_manifest(m, mpath):
    """The C reader's schema checks (ocn_fixture_parse_manifest)."""
    if not isinstance(m, dict):
        _fail(f"{mpath}: the manifest must be a JSON object")
    if m.get("format") != FORMAT:
        _fail(f'{mpath}: format must be "{FORMAT}"')
    v = m.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2:
        _fail(f"{mpath}: version must be 1 or 2 (SPEC §11)")
    if "producer" in m and not isinstance(m["producer"], dict):
        _fail(f"{mpath}: producer must be an object")
    arrays = m.get("arrays")
    if not isinstance(arrays, dict):
        _fail(f"{mpath}: 'arrays' must be an object")
    for name, e in arrays.items():
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not isinstance(e.get("dtype"), str) \
                or not isinstance(e.get("shape"), list):
            _fail(f"{mpath}: arrays.{name} needs string 'file', 'dtype' and array 'shape'")
        fn = e["file"]
        if not name or len(name) >= 64 or "/" in fn or fn.startswith(".") or not fn:
            _fail(f"{mpath}: arrays.{name}: file '{fn}' must be a plain name inside the fixture")
        if len(e["shape"]) > MAX_NDIM:
            _fail(f"{mpath}: arrays.{name}: more than {MAX_NDIM} dimensions")
        for d, x in enumerate(e["shape"]):
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                _fail(f"{mpath}: arrays.{name}.shape[{d}] must be a non-negative integer")
    if not isinstance(m.get("game"), dict):
        _fail(f"{mpath}: game must be an object (the SPEC §12 description)")
    kind = m.get("kind", "step")
    if kind not in ("step", "trajectory"):
        _fail(f'{mpath}: kind must be "step" or "trajectory"')
    if "derived" in m and not isinstance(m["derived"], dict):
        _fail(f"{mpath}: derived must be an object (SPEC §13)")


def _read_array(directory, name, e):
    path = os.path.join(directory, e["file"])
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        _fail(f"{path}: missing (listed as arrays.{name})")
    except (OSError, ValueError) as x:
        _fail(f"{path}: not a readable .npy file ({x})")
    if not isinstance(a, np.ndarray):
        _fail(f"{path}: not a single .npy array")
    if a.dtype.str not in ("<f8", "<f4"):
        _fail(f"{path}: dtype '{a.dtype.str}' not supported (need '<f8' or '<f4')")
    if a.dtype.str != e["dtype"]:
        _fail(f"{path}: dtype {a.dtype.str}, but the manifest says {e['dtype']}")
    if list(a.shape) != list(e["shape"]):
        _fail(f"{path}: shape {tuple(a.shape)} does not match the manifest's arrays.{name}.shape {tuple(e['shape'])}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if is_input(name) and not np.all(np.isfinite(a)):
        _fail(f"{path}: input array '{name}' contains NaN or Inf")
    a.setflags(write=False)
    return a


def load_fixture(directory):
    """Reads DIR/manifest.json (checked as `ocn` checks it); the arrays are
    read on first access.  Raises FixtureError naming the file and field."""
    directory = os.fspath(directory)
    mpath = os.path.join(directory, "manifest.json")
    if not os.path.isdir(directory):
        _fail(f"{directory}: not a fixture directory")
    try:
        with open(mpath, "rb") as f:
            text = f.read(256 << 20)
    except OSError as x:
        _fail(f"{mpath}: cannot read ({x.strerror})")
    try:
        m = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as x:
        _fail(f"{mpath}: malformed JSON: {x}")
    _check_manifest(m, mpath)
    return Fixture(directory, m)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key '{k}'")
        d[k] = v
    return d


# ---------------------------------------------------------------- writing

_NAME = re.compile(r"^[A-Za-z0-9_]{1,63}$")


def _as_array(name, a):
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.dtype.kind == "c":
        _fail(f"arrays['{name}']: dtype {a.dtype} is not real (fixtures hold float64)")
    a = np.ascontiguousarray(a, dtype="<f8")
    if a.ndim > MAX_NDIM:
        _fail(f"arrays['{name}']: {a.ndim} dimensions (at most {MAX_NDIM})")
    if is_input(name) and not np.all(np.isfinite(a)):
        _fail(f"arrays['{name}']: input array contains NaN or Inf")
    return a


def _renameat2_exchange(a, b):
    """Atomically swaps paths a and b (Linux renameat2 RENAME_EXCHANGE);
    False when the C library or file system lacks it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), b)


def _replaceable(dest):
    """--force's rule (docs/fixtures.md): only a directory holding a
    manifest and the files it lists is replaced."""
    try:
        with open(os.path.join(dest, "manifest.json")) as f:
            m = json.load(f)
        listed = {e["file"] for e in m["arrays"].values()} | {"manifest.json"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        _fail(f"{dest}: exists and is not a fixture; not replaced")
    other = sorted(set(os.listdir(dest)) - listed)
    if other:
        _fail(f"{dest}: holds '{other[0]}', which is not part of its fixture; not replaced")


def write_fixture(directory, game, arrays, *, producer=None, force=False, kind=None, cond=None, normalise=True,
                  ocn=None):
    """Writes `arrays` (name -> array-like, stored as '<f8' C order) as a
    format-v2 fixture of `game` at DIR, atomically.

    game: a dict (the §12 description), a path to its JSON, or a Fixture
    (its game and kind are used).  It is normalised by `ocn normalise` when
    the binary is found (normalise=False, or no binary: stored as given —
    `ocn compare` normalises both sides anyway).  producer: merged into
    {"name": "ocnopt-python", "backend": "numpy", "precision": "f64"};
    "precision": "f32" makes `ocn compare` use u = 2^-24.  cond: optional
    name -> measured c (only a producer that measured it per SPEC §10
    should pass it).  An existing DIR is refused unless force=True, and then
    replaced only when it holds nothing but a fixture.  Returns DIR."""
    from . import __version__

    directory = os.fspath(directory).rstrip("/") or "/"
    if isinstance(game, collections.abc.Mapping) and not isinstance(game, dict) and hasattr(game, "manifest"):
        kind = kind or game.kind
        game = game.game
    if isinstance(game, (str, os.PathLike)):
        with open(game) as f:
            game = json.load(f)
    if not isinstance(game, dict):
        _fail("game must be a dict, a path to a game JSON file or a Fixture")
    if normalise:
        try:
            game = binary.normalise(game, ocn)
        except BinaryNotFound:
            warnings.warn("ocnopt.write_fixture: no ocn binary, the game is stored as given (not normalised)")
    kind = kind or "step"
    if kind not in ("step", "trajectory"):
        _fail('kind must be "step" or "trajectory"')
    prod = {"name": "ocnopt-python", "backend": "numpy", "precision": "f64", "version": __version__}
    prod.update(producer or {})
    if prod["precision"] not in ("f64", "f32"):
        _fail("producer precision must be 'f64' or 'f32'")
    data = {}
    for name in sorted(arrays):
        if not _NAME.match(name):
            _fail(f"array name '{name}': letters, digits and '_' only, at most 63 characters")
        data[name] = _as_array(name, arrays[name])
    manifest = {"format": FORMAT, "version": VERSION, "kind": kind, "game": game, "producer": prod, "arrays": {}}
    for name, a in data.items():
        e = {"file": f"{name}.npy", "dtype": "<f8", "shape": list(a.shape)}
        if cond and name in cond:
            e["cond"] = float(cond[name])
        manifest["arrays"][name] = e
    if cond:
        manifest["tolerance"] = {"rule": "measured"}

    if os.path.islink(directory):
        _fail(f"{directory}: is a symbolic link; not followed (give the real path)")
    exists = os.path.lexists(directory)
    if exists and not force:
        _fail(f"{directory}: exists (force=True replaces a fixture)")
    if exists:
        if not os.path.isdir(directory):
            _fail(f"{directory}: exists and is not a directory")
        _replaceable(directory)
    parent = os.path.dirname(os.path.abspath(directory))
    if not os.path.isdir(parent):
        _fail(f"{directory}: the parent directory {parent} does not exist")
    base = os.path.basename(os.path.abspath(directory))
    tmp = tempfile.mkdtemp(prefix=f"{base}.tmp.", dir=parent)
    try:
        for name, a in data.items():
            with open(os.path.join(tmp, f"{name}.npy"), "wb") as f:
                np.lib.format.write_array(f, a, version=(1, 0), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        if not exists:
            os.rename(tmp, directory)  # refuses to replace a directory that appeared meanwhile
        elif _renameat2_exchange(tmp, directory):
            shutil.rmtree(tmp)  # now the old fixture
        else:
            old = tempfile.mkdtemp(prefix=f"{base}.old.", dir=parent)
            os.rename(directory, os.path.join(old, "x"))
            os.rename(tmp, directory)
            shutil.rmtree(old)
        tmp = None
    except OSError as x:
        raise FixtureError(f"{directory}: cannot write the fixture ({x.strerror or x})") from x
    finally:
        if tmp and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m
