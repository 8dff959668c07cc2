"""Error types and exit codes: every user-facing failure carries a position, a message and a hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (SPEC §4)."""

    OK = 0
    RUNTIME = 1
    USAGE = 2
    INVALID = 3
    DEVICE = 4
    INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based position in a file; ``line``/``col`` are None for files without lines (weights)."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One error found in the user's input: where, what, and what to do about it."""

    message: str
    pos: Pos | None = None
    hint: str | None = None

    def format(self, level: str = "error") -> str:
        """The one line a user sees: ``FILE:LINE:COL: error: message; hint: ...`` (``level``: error or warning)."""
        where = f"{self.pos}: " if self.pos is not None else "netinspect: "
        text = f"{where}{level}: {self.message}"
        if self.hint:
            text += f"; hint: {self.hint}"
        return text

    def as_json(self) -> dict[str, object]:
        """The SPEC §3 error object."""
        pos = self.pos
        return {
            "file": pos.file if pos else None,
            "line": pos.line if pos else None,
            "column": pos.col if pos else None,
            "message": self.message,
            "hint": self.hint,
        }


class NetinspectError(Exception):
    """Base of every error the CLI turns into messages and an exit code."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))

    @classmethod
    def at(cls, pos: Pos | None, message: str, hint: str | None = None) -> NetinspectError:
        """One problem at one position."""
        return cls(Problem(message, pos, hint))


class SpecError(NetinspectError):
    """An invalid model, rules or weights file (exit 3)."""

    exit_code = ExitCode.INVALID


class UsageError(NetinspectError):
    """A bad command line (exit 2)."""

    exit_code = ExitCode.USAGE


class DeviceError(NetinspectError):
    """The device is absent or cannot hold the model (exit 4)."""

    exit_code = ExitCode.DEVICE


class RunFailure(NetinspectError):
    """A runtime failure such as a forward pass that raises (exit 1)."""

    exit_code = ExitCode.RUNTIME


class Problems:
    """Collects problems so that all errors of a file are reported in one run (up to a cap)."""

    CAP = 50

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self._seen: set[str] = set()  # one line per problem, however often its place is expanded

    def add(self, pos: Pos | None, message: str, hint: str | None = None) -> None:
        self.extend([Problem(message, pos, hint)])

    def extend(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            line = p.format()
            if len(self.items) < self.CAP and line not in self._seen:
                self._seen.add(line)
                self.items.append(p)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, kind: type[NetinspectError] = SpecError) -> None:
        if self.items:
            raise kind(self.items)


class TextError(Exception):
    """A problem inside one piece of text (an expression, a scheme, a forward line), found before the
    caller knows the file position: ``offset`` (0-based, None if unknown) places it within the text,
    and the caller turns it into a located ``Problem``."""

    def __init__(self, message: str, hint: str | None = None, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.offset = offset


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, KeyError) and len(text) > 1 and text[0] in "'\"" and text[-1] == text[0]:
        text = text[1:-1]
    return text[:limit] if text else type(exc).__name__


def exc_text(exc: BaseException) -> str:
    """``Type: first line`` of an exception, as a message shows a failure that torch raised."""
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str | None:
    """A "did you mean" hint from the closest valid names, or None."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
