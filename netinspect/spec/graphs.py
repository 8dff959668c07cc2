"""Graph NODEs: ``modules:`` (children and ``param:``/``buffer:`` tensors, in construction order)
plus a written ``forward:``, compiled by ``forward.compile_forward`` with positions in the file."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from netinspect import yamlpos
from netinspect.errors import Pos
from netinspect.expr import ExprError, parse_expr
from netinspect.schemes import SchemeStep
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .context import Ctx
from .forward import ChildInfo, ForwardError, compile_forward
from .ir import Decl, Graph, Seq, TensorEntry
from .nodes import named_children, node
from .rules import scheme_steps
from .values import IDENT, check_keys, describe, value

GRAPH_KEYS = ("forward", "inputs", "class")
TENSOR_KEYS = {"param": ("init", "frozen", "doc", "if"), "buffer": ("init", "persistent", "doc", "if")}
MAX_TENSOR_NUMEL = 2**48


def graph_node(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    """``{modules: {...}, forward: |..., inputs: [...], class: Name}`` → a Graph (None after a problem)."""
    mnode = yn.entries["modules"]
    fnode = yn.entries.get("forward")
    ok = True
    if fnode is None:
        ctx.problems.add(yn.pos, "a graph node needs 'forward:'", "forward: | then the forward's lines, ending with return EXPR")
        ok = False
    elif not (isinstance(fnode, YScalar) and isinstance(fnode.value, str) and fnode.value.strip()):
        ctx.problems.add(
            fnode.pos,
            f"'forward:' is the text of a forward, found {describe(fnode)}",
            "forward: | then the forward's lines, ending with return EXPR",
        )
        ok = False
    inputs = _inputs(ctx, yn.entries["inputs"]) if "inputs" in yn.entries else ("x",)
    class_name = _class_name(ctx, yn, stack)
    if inputs is None or class_name is None:
        ok = False
    if not isinstance(mnode, YMap):
        if not (isinstance(mnode, YScalar) and mnode.value is None):
            ctx.problems.add(mnode.pos, "'modules:' maps names to modules or tensors", "modules: {conv1: Conv2d(3, 8, 3)}")
            return None
        mnode = YMap({}, mnode.pos)
    entries: list[tuple[str, Decl | TensorEntry]] = []
    entry_pos: list[Pos] = []
    absent: list[str] = []
    infos: dict[str, ChildInfo] = {}

    def identifier(key: str, kpos: Pos) -> bool:
        if IDENT.match(key):
            return True
        ctx.problems.add(kpos, f"'{key}' is not an identifier: forward refers to it by name", "name it like a Python attribute")
        return False

    named_ok, named = named_children(ctx, mnode, local, identifier)
    ok = ok and named_ok
    for key, kpos, item, present in named:
        if not present:
            ok = ok and present is not None
            absent.append(key)
            infos[key] = ChildInfo(False, "module")
            continue
        if isinstance(item, YMap) and ("param" in item.entries or "buffer" in item.entries):
            tensor = _tensor_entry(ctx, item, local)
            if tensor is None:
                ok = False
                continue
            entries.append((key, tensor))
        else:
            decl = node(ctx, item, local, stack, depth + 1, as_child=True)
            if decl is None:
                ok = False
                continue
            entries.append((key, decl))
            infos[key] = child_info(decl)
        entry_pos.append(kpos)
    if not ok:
        return None
    assert isinstance(fnode, YScalar) and inputs is not None and class_name is not None
    tensors = frozenset(k for k, e in entries if isinstance(e, TensorEntry))
    try:
        program = compile_forward(
            fnode.value, inputs=inputs, children=infos, entries=tensors, constants=ctx.scope(local), granted=ctx.granted
        )
    except ForwardError as exc:
        ctx.problems.add(fnode.text_pos(exc.line, exc.offset), exc.message, exc.hint)
        ctx.forward_problems = True
        return None
    step_pos = tuple(fnode.text_pos(s.line, s.col) if s.line else yn.pos for s in program.steps)
    return Graph(
        pos=yn.pos,
        class_name=class_name,
        entries=tuple(entries),
        entry_pos=tuple(entry_pos),
        program=program,
        step_pos=step_pos,
        absent=tuple(absent),
    )


def child_info(decl: Decl) -> ChildInfo:
    """What a forward may know of a child declaration (its kind, a sequential's items, a graph's inputs)."""
    if isinstance(decl, Seq):
        return ChildInfo(True, "seq", tuple((n, child_info(c)) for n, c in decl.items))
    if isinstance(decl, Graph):
        return ChildInfo(True, "graph", inputs=decl.program.inputs)
    return ChildInfo(True, "module")


def _inputs(ctx: Ctx, inode: YNode) -> tuple[str, ...] | None:
    raw = yamlpos.plain(inode)
    if not (isinstance(raw, list) and raw and all(isinstance(n, str) and IDENT.match(n) for n in raw)):
        ctx.problems.add(inode.pos, "'inputs:' is a list of the forward's argument names", "inputs: [x, mask]")
        return None
    if len(set(raw)) != len(raw):
        ctx.problems.add(inode.pos, "'inputs:' names an argument twice")
        return None
    return tuple(raw)


def _class_name(ctx: Ctx, yn: YMap, stack: tuple[str, ...]) -> str | None:
    """``class:``, else the block's name when this graph is a block's body, else ``Graph``."""
    if "class" in yn.entries:
        cnode = yn.entries["class"]
        if isinstance(cnode, YScalar) and isinstance(cnode.value, str) and IDENT.match(cnode.value):
            return cnode.value
        ctx.problems.add(cnode.pos, f"'class:' is a class name, found {describe(cnode)}", "class: BasicBlock")
        return None
    if stack and ctx.blocks[stack[-1]].body is yn:
        return stack[-1]
    return "Graph"


def _tensor_entry(ctx: Ctx, item: YMap, local: Mapping[str, Any]) -> TensorEntry | None:
    """``{param: SHAPE, init: SCHEME, frozen: BOOL}`` or ``{buffer: SHAPE, init: SCHEME, persistent: BOOL}``."""
    if "param" in item.entries and "buffer" in item.entries:
        ctx.problems.add(item.pos, "an entry is a param or a buffer, not both")
        return None
    kind = "param" if "param" in item.entries else "buffer"
    check_keys(ctx, item, (kind, *TENSOR_KEYS[kind]), f"key for a '{kind}' entry")
    shape = _shape(ctx, item.entries[kind], local)
    steps: tuple[SchemeStep, ...] | None = (SchemeStep("zeros"),)
    if "init" in item.entries:
        message = "'init:' of a tensor entry is a SCHEME: a call string or a list of them"
        steps = scheme_steps(ctx.problems, item.entries["init"], message, "init: normal(std=0.02)")
    flags = {}
    for key in ("frozen", "persistent"):
        if key in item.entries:
            f = item.entries[key]
            if isinstance(f, YScalar) and isinstance(f.value, bool):
                flags[key] = f.value
            else:
                ctx.problems.add(f.pos, f"'{key}:' must be true or false, found {describe(f)}")
                return None
    if shape is None or steps is None:
        return None
    return TensorEntry(kind, shape, steps, item.pos, flags.get("frozen", False), flags.get("persistent", True))


def _shape(ctx: Ctx, snode: YNode, local: Mapping[str, Any]) -> tuple[int, ...] | None:
    """A SHAPE: a list whose items are integers or expressions (``[1, 1, hidden]``)."""
    if not isinstance(snode, YSeq):
        ctx.problems.add(snode.pos, f"a shape is a list, found {describe(snode)}", "param: [1, 1, hidden]")
        return None
    scope = ctx.scope(local)
    dims: list[int] = []
    for item in snode.items:
        if isinstance(item, YScalar) and isinstance(item.value, str) and not item.value.strip().startswith("${"):
            try:
                v: Any = parse_expr(item.value).evaluate(scope)
            except ExprError as exc:
                ctx.problems.add(item.text_pos(1, exc.offset), exc.message, exc.hint)
                return None
        else:
            good, v = value(ctx, item, scope)
            if not good:
                return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            ctx.problems.add(item.pos, f"a shape's sizes are non-negative integers, found {v!r}")
            return None
        dims.append(v)
    if math.prod(dims) > MAX_TENSOR_NUMEL:
        ctx.problems.add(snode.pos, f"a tensor of {math.prod(dims):,} elements is too large")
        return None
    return tuple(dims)
