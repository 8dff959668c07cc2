"""Plain building blocks of every output: writing lines (rich styling on a terminal, plain text
otherwise), one JSON document, aligned tables, numbers, shapes and lists of paths.

The only module that imports rich.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

Line = tuple[str, str]  # (text, rich style or "")
T = TypeVar("T")


def emit(lines: Iterable[str | Line], *, file: Any = None) -> None:
    """Write lines: styled through rich on a terminal, as plain text (fast, stable) otherwise."""
    out = file or sys.stdout
    items = [(x, "") if isinstance(x, str) else x for x in lines]
    if out.isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console(file=out, highlight=False, soft_wrap=True)
        for text, style in items:
            console.print(Text(text, style=style or ""))
        return
    out.write("".join(text + "\n" for text, _ in items))


def emit_json(doc: Any) -> None:
    """One JSON document on stdout; NaN and infinities (not JSON) become null."""
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_clean(doc), ensure_ascii=False)
    sys.stdout.write(text + "\n")


def _clean(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] | None = None) -> list[Line]:
    """A plain aligned table: a bold header, a rule, then the rows."""
    right = right or set()
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)

    def fmt(row: Sequence[str]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    out: list[Line] = [(fmt(headers), "bold"), ("  ".join("─" * w for w in widths), "dim")]
    out.extend((fmt(r), "") for r in rows)
    return out


def n(x: int) -> str:
    return f"{x:,}"


def shape(s: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def shape_text(s: Any) -> str:
    """A ``shape_tree``: ``[2, 3]``, ``([2, 3], [2])`` for a tuple or list, ``{k: [2, 3]}`` for a dict, ``-`` for None."""
    if s is None:
        return "-"
    if isinstance(s, list) and all(isinstance(d, int) for d in s):
        return shape(s)
    if isinstance(s, list):
        return "(" + ", ".join(shape_text(x) for x in s) + ")"
    if isinstance(s, dict):
        return "{" + ", ".join(f"{k}: {shape_text(v)}" for k, v in s.items()) + "}"
    return str(s)


def fold_runs(children: Sequence[T], expand: bool, foldable: Callable[[T], bool]) -> list[Sequence[T]]:
    """Siblings in groups, in order: a run of three or more with equal ``signature``, each
    ``foldable``, is one group (shown once, ×N); every other child is a group of one (all are with ``expand``)."""
    if expand:
        return [[c] for c in children]
    groups: list[Sequence[T]] = []
    i = 0
    while i < len(children):
        c = children[i]
        j = i + 1
        while j < len(children) and foldable(c) and foldable(children[j]) and children[j].signature == c.signature:  # type: ignore[attr-defined]
            j += 1
        if j - i >= 3:
            groups.append(children[i:j])
        else:
            groups.extend([x] for x in children[i:j])
        i = j
    return groups


def fnum(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}"


SHOWN_PATHS = 4


def some_paths(paths: Iterable[str], count: int) -> str:
    """``a, b, c`` or, past SHOWN_PATHS of the ``count`` paths, ``a, b, c and 1,997 more``
    (``--json`` lists every path). Reads only the paths it shows."""
    shown = list(itertools.islice(paths, count if count <= SHOWN_PATHS else SHOWN_PATHS - 1))
    more = count - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more else "")


def other_paths(paths: list[str], me: str) -> str:
    """``some_paths`` of the paths other than ``me``, without building that list (a Parameter reused N
    times has N rows: N lists of N - 1 paths would be quadratic)."""
    return some_paths((p for p in paths if p != me), len(paths) - 1)


def joined_paths(paths: list[str]) -> str:
    if len(paths) <= SHOWN_PATHS:
        return " = ".join(paths)
    return " = ".join([*paths[: SHOWN_PATHS - 1], "…", paths[-1]]) + f"  ({len(paths):,} paths)"
