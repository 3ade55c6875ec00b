"""Errors that reach the user as one clear line and exit code 2 (see console/cli.py)."""


class UserError(Exception):
    """Bad input from the user: a file, a config, a CLI argument. The message names where."""


class InputFileError(UserError):
    """A malformed line in an input file; formats as `path:line: what is wrong`."""

    def __init__(self, path, line: int, what: str):
        self.path, self.line, self.what = str(path), line, what
        super().__init__(f"{self.path}:{line}: {what}")
