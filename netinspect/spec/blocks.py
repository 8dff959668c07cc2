"""``blocks:`` definitions and the cycle checks of blocks and shared modules (a use expands in ``nodes``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from netinspect.errors import Pos
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .context import Block, Ctx
from .ir import Decl, Ref, walk
from .values import IDENT, check_keys, value

BLOCK_KEYS = ("params", "required", "body", "doc")


def parse_blocks(ctx: Ctx, node: YNode) -> None:
    """Record every block of ``blocks:`` in ``ctx.blocks`` (bodies stay YAML until used)."""
    if not isinstance(node, YMap):
        ctx.problems.add(node.pos, "'blocks:' must map block names to definitions")
        return
    for key, body in node.entries.items():
        kpos = node.key_pos[key]
        if not IDENT.match(key):
            ctx.problems.add(kpos, f"block name '{key}' is not an identifier")
            continue
        if isinstance(body, YMap) and "body" in body.entries:
            check_keys(ctx, body, BLOCK_KEYS, "block key")
            params = _params(ctx, body.entries["params"]) if "params" in body.entries else {}
            required = _required(ctx, body.entries["required"], params) if "required" in body.entries else []
            ctx.blocks[key] = Block(key, params, tuple(required), body.entries["body"], kpos)
        else:
            if isinstance(body, YMap) and any(k in body.entries for k in ("params", "required")):
                ctx.problems.add(body.pos, f"block '{key}' has no 'body:'", "blocks: {name: {params: {...}, body: NODE}}")
                continue
            ctx.blocks[key] = Block(key, {}, (), body, kpos)
    _check_block_cycles(ctx)


def _params(ctx: Ctx, pnode: YNode) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if not isinstance(pnode, YMap):
        ctx.problems.add(pnode.pos, "'params:' must map parameter names to defaults", "params: {d_in: 4}")
        return params
    for pname, pval in pnode.entries.items():
        if not IDENT.match(pname):
            ctx.problems.add(pnode.key_pos[pname], f"parameter name '{pname}' is not an identifier")
        ok, v = value(ctx, pval, ctx.vars)
        if ok:
            params[pname] = v
    return params


def _required(ctx: Ctx, rnode: YNode, params: Mapping[str, Any]) -> list[str]:
    required: list[str] = []
    if not isinstance(rnode, YSeq) or not all(isinstance(i, YScalar) and isinstance(i.value, str) for i in rnode.items):
        ctx.problems.add(rnode.pos, "'required:' must be a list of parameter names", "required: [d_out]")
        return required
    for item in rnode.items:
        assert isinstance(item, YScalar)
        if item.value in params:
            ctx.problems.add(item.pos, f"'{item.value}' is both required and has a default")
        elif not IDENT.match(item.value):
            ctx.problems.add(item.pos, f"parameter name '{item.value}' is not an identifier")
        else:
            required.append(item.value)
    return required


def block_signature(block: Block) -> str:
    """How a block is called, for hints: ``block1(d_out, d_in=4)``."""
    parts = list(block.required) + [f"{k}={v!r}" for k, v in block.params.items()]
    return f"{block.name}({', '.join(parts)})"


def _names_in(node: YNode) -> Iterator[tuple[str, Pos]]:
    """Block names a node may use: call-string heads and ``use:`` values (for the cycle check)."""
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, YScalar) and isinstance(n.value, str):
            head = n.value.split("(", 1)[0].strip()
            yield head, n.pos
        elif isinstance(n, YSeq):
            stack.extend(n.items)
        elif isinstance(n, YMap):
            for k, v in n.entries.items():
                if k in ("use", "type") and isinstance(v, YScalar) and isinstance(v.value, str):
                    yield v.value.strip(), v.pos
                elif k in ("sequential", "body"):
                    stack.append(v)
                elif k == "modules" and isinstance(v, YMap):
                    stack.extend(v.entries.values())


def _check_block_cycles(ctx: Ctx) -> None:
    graph = {
        name: [(u, p) for u, p in _names_in(b.body) if u in ctx.blocks] if b.body is not None else [] for name, b in ctx.blocks.items()
    }
    _find_cycles(ctx, graph, "block '{0}' uses itself: {1}", "a block cannot contain itself, directly or through others")


def check_shared_cycles(ctx: Ctx, shared: dict[str, Decl]) -> None:
    graph = {name: [(x.shared, x.pos) for x in walk(d) if isinstance(x, Ref) and x.shared in shared] for name, d in shared.items()}
    _find_cycles(ctx, graph, "shared module '{0}' contains itself: {1}", "a shared module cannot ref itself, directly or through others")


def _find_cycles(ctx: Ctx, graph: Mapping[str, list[tuple[str, Pos]]], message: str, hint: str) -> None:
    """Depth-first search without recursion (a file may chain thousands of blocks); marks ``ctx.cyclic``."""
    state: dict[str, int] = {}
    for start in graph:
        if start in state:
            continue
        path = [start]
        state[start] = 1
        iters = [iter(graph[start])]
        while iters:
            step = next(iters[-1], None)
            if step is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            used, pos = step
            if state.get(used) == 1:
                cycle = path[path.index(used) :] + [used]
                if used not in ctx.cyclic:
                    ctx.problems.add(pos, message.format(used, " -> ".join(cycle)), hint)
                ctx.cyclic.update(cycle)
            elif used not in state:
                state[used] = 1
                path.append(used)
                iters.append(iter(graph[used]))
