"""Naming user input in an error: the text of a file the user named (a run config, a seed file,
models.toml), and key paths into what it holds.

`read_text`: every way reading can fail becomes one UserError that names the file, so no caller sees an
OSError or a UnicodeDecodeError:

    missing         `WHAT PATH: no such file`
    a directory     `WHAT PATH: is a directory, not a file`
    unreadable      `WHAT PATH: cannot read it (Permission denied)`
    too big         `WHAT PATH: N bytes, over the limit of M for a WHAT`
    not UTF-8       `PATH:LINE: not UTF-8 text (byte 0xff at column C)`
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import InputFileError, UserError


def read_text(path: str | Path, what: str, max_bytes: int | None = None, missing_hint: str = "") -> str:
    """The file's text, decoded as UTF-8 (a BOM is dropped); UserError as above. `missing_hint` is
    appended to the no-such-file message (e.g. which presets exist)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{what} {p}: is a directory, not a file")
    if not p.exists():
        raise UserError(f"{what} {p}: no such file{missing_hint}")
    try:
        if max_bytes is not None and (size := p.stat().st_size) > max_bytes:
            raise UserError(f"{what} {p}: {size} bytes, over the limit of {max_bytes} for a {what}")
        data = p.read_bytes()
    except OSError as e:
        raise UserError(f"{what} {p}: cannot read it ({e.strerror or e})") from None
    return decode_utf8(data, p)


def decode_utf8(data: bytes, where: str | Path) -> str:
    """`data` as UTF-8 text; InputFileError at the line and column of the first undecodable byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        raise InputFileError(where, line, f"not UTF-8 text (byte 0x{data[e.start]:02x} at column "
                                          f"{e.start - line_start + 1})") from None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(parts) -> str:
    """A key path for a message, `train.methods.0`: plain keys as they are, any other key quoted as
    TOML and JSON quote it (`tools.0.parameters.properties."a b"`), so that a key holding a dot, a
    quote or a newline can neither be misread nor break the one-line error."""
    return ".".join(str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(str(p))
                    else json.dumps(str(p)) for p in parts)
