"""Plain values out of YAML nodes: strings, integers, dtypes and ``${...}`` expressions, each problem located."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from netinspect import yamlpos
from netinspect.errors import did_you_mean
from netinspect.expr import ExprError, parse_expr
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .context import Ctx

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPR = re.compile(r"\$\{(.*)\}\Z", re.S)

#: Parameter dtypes a model file (``dtype:``) or ``--dtype`` may name, with their spellings.
DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float64": "float64",
    "double": "float64",
    "fp64": "float64",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
#: Input dtypes: the parameter dtypes and the integer and boolean ones.
INPUT_DTYPES: dict[str, str] = {
    **DTYPES,
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


def check_keys(ctx: Ctx, node: YMap, allowed: tuple[str, ...], what: str) -> None:
    """Report each key of ``node`` outside ``allowed``, with the closest allowed one."""
    for key in node.entries:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or "allowed: " + ", ".join(allowed)
            ctx.problems.add(node.key_pos[key], f"unknown {what} '{key}'", hint)


def opt_str(ctx: Ctx, node: YNode | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value
    ctx.problems.add(node.pos, f"expected a string, found {describe(node)}")
    return None


def describe(node: YNode) -> str:
    """``int 3``, ``null``, ``a list``: what a node is, for messages."""
    if isinstance(node, YScalar):
        return "null" if node.value is None else f"{type(node.value).__name__} {node.value!r}"
    return "a list" if isinstance(node, YSeq) else "a mapping"


def value(ctx: Ctx, node: YNode, scope: Mapping[str, Any]) -> tuple[bool, Any]:
    """A plain YAML value, where strings written ``${...}`` are expressions. (ok, value)."""
    if isinstance(node, YScalar):
        v = node.value
        if isinstance(v, str):
            m = _EXPR.match(v.strip())
            if m:
                try:
                    return True, parse_expr(m.group(1)).evaluate(scope)
                except ExprError as exc:
                    ctx.problems.add(node.text_pos(1, exc.offset + 2), exc.message, exc.hint)
                    return False, None
        return True, v
    if isinstance(node, YSeq):
        out = []
        ok = True
        for item in node.items:
            good, val = value(ctx, item, scope)
            ok = ok and good
            out.append(val)
        return ok, out
    ok = True
    result: dict[str, Any] = {}
    for key, item in node.entries.items():
        good, val = value(ctx, item, scope)
        ok = ok and good
        result[key] = val
    return ok, result


def integer(ctx: Ctx, node: YNode, scope: Mapping[str, Any], what: str) -> int | None:
    ok, v = value(ctx, node, scope)
    if not ok:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.problems.add(node.pos, f"{what} must be an integer, found {type(v).__name__} {v!r}")
        return None
    return v


def dtype(ctx: Ctx, node: YNode, table: dict[str, str]) -> str | None:
    """A dtype name from ``table`` (``torch.`` prefix allowed)."""
    v = node.value if isinstance(node, YScalar) else None
    if isinstance(v, str):
        key = v.removeprefix("torch.")
        if key in table:
            return table[key]
    hint = did_you_mean(str(v), table) if isinstance(v, str) else None
    ctx.problems.add(node.pos, f"unknown dtype {yamlpos.plain(node)!r}", hint or "one of " + ", ".join(sorted(set(table.values()))))
    return None
