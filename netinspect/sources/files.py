"""Careful reading for checkpoint files (torch-free): regular files only, bounded reads, and JSON that
refuses duplicate names and deep nesting. Every failure is a ``SpecError`` naming the file."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from typing import Any

from netinspect.errors import Pos, Problem, SpecError

#: The largest safetensors header (and index or DCP metadata file) read: the reference's own cap.
HEADER_CAP = 100_000_000
#: JSON nesting allowed in a header or index (a real one is 3 deep).
JSON_DEPTH = 64


def fail(where: str, message: str, hint: str | None = None) -> SpecError:
    """The error for a bad checkpoint file: ``FILE: error: message``."""
    return SpecError(Problem(message, Pos(where), hint))


def file_size(path: str, shown: str | None = None) -> int:
    """The size of a regular file (following links); anything else is an error that names it."""
    shown = shown or path
    try:
        st = os.stat(path)
    except OSError as exc:
        raise fail(shown, _os_message(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise fail(shown, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise fail(shown, "not a regular file", "a checkpoint is made of plain files")
    return st.st_size


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "cannot open: a loop of symbolic links"
    if exc.errno == errno.ENOENT:
        return "no such file"
    return f"cannot read: {exc.strerror or exc}"


def read_at(path: str, offset: int, length: int, shown: str | None = None) -> bytearray:
    """Exactly ``length`` bytes at ``offset`` (unbuffered: nothing beyond them is read)."""
    shown = shown or path
    buf = bytearray(length)
    view = memoryview(buf)
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            done = 0
            while done < length:
                got = f.readinto(view[done:])
                if not got:
                    raise fail(shown, f"truncated: expected {length:,} bytes at offset {offset:,}, the file ends after {done:,}")
                done += got
    except OSError as exc:
        raise fail(shown, _os_message(exc)) from None
    return buf


class _Duplicate(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _stack_depth() -> int:
    frame = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def load_json(data: bytes | bytearray, shown: str, what: str) -> Any:
    """Parse ``data`` as strict JSON: UTF-8, no duplicate names, no NaN, at most JSON_DEPTH levels
    (the decoder's recursion is bounded for the call, so deep nesting is an error, not a crash)."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(shown, f"{what} is not UTF-8 (byte {exc.start:,})") from None
    saved = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(_stack_depth() + JSON_DEPTH + 20)
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_json)
    except RecursionError:
        raise fail(shown, f"{what} is nested more than {JSON_DEPTH} levels deep") from None
    except _Duplicate as exc:
        raise fail(shown, f"{what} names {exc.name!r} twice", "each name may appear once") from None
    except json.JSONDecodeError as exc:
        raise fail(shown, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer with too many digits
        raise fail(shown, f"{what} is not valid JSON: {exc}") from None
    finally:
        sys.setrecursionlimit(saved)


def inside(folder: str, name: str, shown_folder: str, shown: str, what: str) -> str:
    """The path of ``name``, a plain file name in ``folder`` (no separators, no ``..``, no absolute
    path, no link that leads outside the folder), which must exist: an error otherwise."""
    if not isinstance(name, str) or not name:
        raise fail(shown, f"{what} names {name!r}, which is not a file name")
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name or os.path.isabs(name):
        raise fail(shown, f"{what} names {name!r}, which is not a plain file name in {shown_folder}", "shards must sit beside it")
    path = os.path.join(folder, name)
    real_folder = os.path.realpath(folder)
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise fail(shown, f"{what} names {name!r}: a loop of symbolic links") from None
        raise fail(shown, f"{what} names {name!r}, which does not exist in {shown_folder}") from None
    if os.path.dirname(real) != real_folder:
        raise fail(shown, f"{what} names {name!r}, a link that leads outside {shown_folder}", "shards must sit beside it")
    return path
