"""Exceptions of the ocnopt package (one base class, OcnError)."""


class OcnError(Exception):
    """Base class of every error this package raises on purpose."""


class FixtureError(OcnError, ValueError):
    """A fixture directory or manifest that does not follow SPEC §11
    (the message names the file and the field), or arrays that cannot be
    written as one.  `ocn` exits 2 on the same inputs."""


class GameMismatch(FixtureError):
    """The two sides of a comparison describe different games (after
    normalisation by `ocn normalise`); `field` is the first difference."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class Unsupported(OcnError):
    """Something the package does not do (yet), said instead of guessed:
    e.g. comparing a trajectory fixture (SPEC §13), or a v1 fixture whose
    `c` must be re-measured by the C reference (use `ocn compare`)."""


class BinaryNotFound(OcnError, FileNotFoundError):
    """The `ocn` binary is needed (game normalisation, `run`) but was not
    found: set $OCN, put `ocn` on PATH, or build it (`make all`)."""


class CommandFailed(OcnError):
    """`ocn` ran and failed; `status` is its exit status (2 bad input,
    3 I/O), `stderr` its message."""

    def __init__(self, message, status, stderr):
        super().__init__(message)
        self.status = status
        self.stderr = stderr
