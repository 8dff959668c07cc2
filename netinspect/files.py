"""Writing files whole or not at all (torch-free)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError


def existing_folder(target: Path, flag: str = "--save") -> Path:
    """The folder ``target`` is to be written in; a usage error naming ``flag`` when it does not exist."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError.at(None, f"{flag} {str(target)!r}: folder {str(folder)!r} does not exist")
    return folder


def atomic_write(target: Path, write: Callable[[str], None], flag: str = "--save") -> None:
    """Write through a temporary file in the target's folder; rename only when complete. ``flag``
    names the option in the message when the folder does not exist."""
    target = Path(target)
    folder = existing_folder(target, flag)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
