"""Diagnostics for what YAML and habit get wrong: calls YAML split at their commas, containers written as calls."""

from __future__ import annotations

from netinspect.errors import Pos
from netinspect.yamlpos import YMap, YNode, YScalar

from .context import Ctx

#: torch.nn containers: never written as calls (a list or ``sequential:`` is a Sequential).
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Container"})


def split_call(items: list[YNode], i: int) -> tuple[str, int] | None:
    """If item i is a call string YAML split at commas (``Linear(4`` ``8)``), the rejoined text and the end."""
    first = items[i]
    if not (isinstance(first, YScalar) and isinstance(first.value, str) and not first.quoted):
        return None
    text = first.value
    depth = text.count("(") - text.count(")")
    if depth <= 0:
        return None
    j = i
    parts = [text]
    while depth > 0 and j + 1 < len(items):
        j += 1
        nxt = items[j]
        piece = str(nxt.value) if isinstance(nxt, YScalar) else "..."
        parts.append(piece)
        depth += piece.count("(") - piece.count(")")
    return ", ".join(parts), j


def map_split(ctx: Ctx, node: YMap) -> tuple[set[str], set[str]]:
    """Keys of a flow mapping that YAML split out of a call (``{a: Linear(4, 8)}`` → ``a: Linear(4``, ``8)``).

    Reports one error per split call and returns (the keys to skip, the keys whose value was split)."""
    skip: set[str] = set()
    heads: set[str] = set()
    keys = list(node.entries)
    i = 0
    while i < len(keys):
        value = node.entries[keys[i]]
        if isinstance(value, YScalar) and isinstance(value.value, str) and not value.quoted:
            depth = value.value.count("(") - value.value.count(")")
            if depth > 0 and i + 1 < len(keys):
                parts = [value.value]
                j = i
                while depth > 0 and j + 1 < len(keys):
                    j += 1
                    parts.append(keys[j])
                    skip.add(keys[j])
                    depth += keys[j].count("(") - keys[j].count(")")
                joined = ", ".join(parts)
                ctx.problems.add(
                    value.pos,
                    f"YAML split the call {joined!r} at its commas",
                    f'quote call strings with commas inside {{...}}: {keys[i]}: "{joined}", or use block style',
                )
                skip.add(keys[i])
                heads.add(keys[i])
                i = j
        i += 1
    return skip, heads


def container_call(ctx: Ctx, name: str, pos: Pos) -> bool:
    """Report (and say True for) ``Sequential(...)`` and the like, which are not written as calls."""
    short = name.removeprefix("torch.").removeprefix("nn.")
    if short not in CONTAINERS:
        return False
    hint = "write a list, or sequential: [...] / sequential: {name: NODE}"
    ctx.problems.add(pos, f"'{short}' is a container and is not written as a call", hint)
    return True
