"""Errors that reach the user as one clear line and exit code 2 (see console/cli.py), and the faults a
running core pauses on instead of failing."""

import errno


class UserError(Exception):
    """Bad input from the user: a file, a config, a CLI argument. The message names where."""


class InputFileError(UserError):
    """A malformed line in an input file; formats as `path:line: what is wrong`."""

    def __init__(self, path, line: int, what: str):
        self.path, self.line, self.what = str(path), line, what
        super().__init__(f"{self.path}:{line}: {what}")


# OSError numbers of faults an operator can fix while the core waits: a full disk or quota, a file system
# remounted read-only, a permission, too many open files. The engine pauses on them (core/engine.py).
FIXABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EMFILE, errno.ENFILE})


def fixable(e: BaseException) -> bool:
    """True for an OSError the operator can fix (FIXABLE_ERRNOS), the run pausing until they have."""
    return isinstance(e, OSError) and e.errno in FIXABLE_ERRNOS

