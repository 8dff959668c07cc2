"""Model files → frozen dataclasses, with every check that needs no tensor (never imports torch).

``parse_model`` reads YAML (``yamlpos``), checks the schema, evaluates expressions
(``expr``) and expands blocks and repeats into a tree of ``Decl`` nodes. Identical
subtrees are shared objects (a repeat or a block used with the same arguments is
expanded once), so a 2,000-cell repeat costs one expansion. All problems of a file
are collected and raised together as one ``SpecError``.
"""

from __future__ import annotations

import functools
import re
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from . import yamlpos
from .errors import Pos, Problem, Problems, SpecError, did_you_mean
from .expr import CallExpr, ExprError, parse_call, parse_expr
from .schemes import SchemeError, SchemeStep, compile_scheme
from .yamlpos import YMap, YNode, YScalar, YSeq

SCHEMA_VERSION = 1
MAX_DEPTH = 200
MAX_REPEAT = 100_000
MAX_MODULES = 1_000_000
MAX_INPUT_NUMEL = 2**40

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
CONTAINERS = {"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Container"}

TOP_KEYS = ("netinspect", "name", "doc", "input", "dtype", "seed", "vars", "blocks", "shared", "model", "init", "tie")
KIND_KEYS = ("type", "sequential", "use", "ref")
COMMON_KEYS = ("name", "repeat", "init", "frozen", "doc")
EXTRA_KEYS = {"type": ("args", "kwargs"), "sequential": (), "use": ("with",), "ref": ()}
BLOCK_KEYS = ("params", "required", "body", "doc")
RULE_KEYS = ("target", "types", "doc")
_ROOT: Mapping[str, Any] = {}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPR = re.compile(r"\$\{(.*)\}\Z", re.S)


class PartialSpecError(SpecError):
    """A file's problems, plus the module calls that did parse (so ``validate`` can check their classes too)."""

    def __init__(self, problems: list[Problem], leaves: list[Leaf], block_names: tuple[str, ...] = ()) -> None:
        super().__init__(problems)
        self.leaves = leaves
        self.block_names = block_names


@dataclass(frozen=True, slots=True)
class Rule:
    """An init rule: for modules matching ``target`` (relative to ``scope``), of ``types``, set params."""

    target: str
    types: tuple[str, ...]
    params: tuple[tuple[str, tuple[SchemeStep, ...]], ...]
    pos: Pos
    scope: str = ""  # the module path the target is relative to ("" = root)
    types_pos: Pos | None = None

    def scoped(self, path: str) -> Rule:
        return Rule(self.target, self.types, self.params, self.pos, path, self.types_pos)


@dataclass(frozen=True, slots=True)
class Tie:
    param: str
    to: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class InputSpec:
    shape: tuple[int, ...]
    dtype: str | None
    high: int | None
    pos: Pos


@dataclass(frozen=True, slots=True, eq=False)
class Leaf:
    """A module built by calling a class: ``type_name(*args, **kwargs)``."""

    type_name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    pos: Pos
    frozen: bool = False
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Seq:
    """An ``nn.Sequential`` with named children, in order."""

    children: tuple[tuple[str, Decl], ...]
    pos: Pos
    frozen: bool = False
    rules: tuple[Rule, ...] = ()
    child_pos: tuple[Pos, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Ref:
    """The shared instance ``shared`` itself (module reuse)."""

    shared: str
    pos: Pos
    frozen: bool = False
    rules: tuple[Rule, ...] = ()


Decl = Union[Leaf, Seq, Ref]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    file: str
    name: str
    doc: str | None
    inputs: tuple[InputSpec, ...]
    dtype: str | None
    seed: int | None
    shared: tuple[tuple[str, Decl], ...]
    model: Decl
    init: tuple[Rule, ...]
    tie: tuple[Tie, ...]
    module_count: int
    dtype_pos: Pos | None = None
    block_names: tuple[str, ...] = ()
    #: names an expression may use (vars and block parameters): a bare ``d`` in ``args:`` is the
    #: string 'd', and a failed constructor call hints ``${d}``
    names: tuple[str, ...] = ()


_Result = tuple[Union[Decl, None], int, Union[str, None], Union[Pos, None]]  # (decl, repeat, name template, name position)


@dataclass(slots=True)
class _Block:
    name: str
    params: dict[str, Any]
    required: tuple[str, ...]
    body: YNode | None
    pos: Pos


@dataclass(slots=True)
class _Ctx:
    file: str
    problems: Problems
    vars: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, _Block] = field(default_factory=dict)
    shared_names: dict[str, Pos] = field(default_factory=dict)
    memo: dict[tuple[Any, ...], Decl] = field(default_factory=dict)
    cyclic: set[str] = field(default_factory=set)
    depth_reported: bool = False
    # (id(yaml node), id(scope), as list item) -> (result, node, scope); node and scope are kept alive
    node_memo: dict[tuple[int, int, bool], tuple[_Result, YNode, Mapping[str, Any]]] = field(default_factory=dict)
    heights: dict[int, int] = field(default_factory=dict)
    leaves: list[Leaf] = field(default_factory=list)


def read_model_text(path: str) -> tuple[str, str]:
    """(text, display name) of a model file; unreadable files are a located error."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise SpecError.at(Pos(path), "is a directory, not a model file") from None
    except OSError as exc:
        raise SpecError.at(Pos(path), f"cannot read: {exc.strerror or exc}") from None
    return yamlpos.decode(data, path), path


def parse_model(text: str, filename: str) -> ModelSpec:
    """Parse and expand a whole model file; raises one SpecError holding every problem."""
    # expansion recurses once per nesting level (refused past MAX_DEPTH); leave room for it
    # whoever calls us, not only the command line
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    ctx = _Ctx(filename, Problems())
    root = yamlpos.load(text, filename)
    if not isinstance(root, YMap):
        raise SpecError.at(root.pos, f"the top level must be a mapping, not a {root.kind}", "start the file with 'netinspect: 1'")
    _check_keys(ctx, root, TOP_KEYS, "top-level key")
    e = root.entries
    typos = {k for k in e if k not in TOP_KEYS}

    def typo_of(required: str) -> bool:
        return any(did_you_mean(k, [required]) for k in typos)

    if "netinspect" not in e:
        if not typo_of("netinspect"):
            ctx.problems.add(Pos(filename, 1, 1), "missing 'netinspect:' (the schema version)", "add 'netinspect: 1' as the first line")
    else:
        v = e["netinspect"]
        if not (isinstance(v, YScalar) and v.value == SCHEMA_VERSION and not isinstance(v.value, bool)):
            ctx.problems.add(v.pos, f"unsupported schema version {yamlpos.plain(v)!r}", "this netinspect reads 'netinspect: 1'")
    if "model" not in e and not typo_of("model"):
        ctx.problems.add(root.pos, "missing 'model:' (the root module)", "add e.g. model: [Linear(4, 8), ReLU]")
    name = _opt_str(ctx, e.get("name")) or Path(filename).stem
    doc = _opt_str(ctx, e.get("doc"))
    if "vars" in e:
        _parse_vars(ctx, e["vars"])
    dtype, dtype_pos = None, None
    if "dtype" in e:
        dtype, dtype_pos = _dtype(ctx, e["dtype"], DTYPES), e["dtype"].pos
    seed = None
    if "seed" in e:
        seed = _seed(ctx, e["seed"])
    inputs = _parse_inputs(ctx, e["input"]) if "input" in e else ()
    if "blocks" in e:
        _parse_blocks(ctx, e["blocks"])
    shared: list[tuple[str, Decl]] = []
    if "shared" in e:
        node = e["shared"]
        if not isinstance(node, YMap):
            ctx.problems.add(node.pos, "'shared:' must map names to modules", "shared: {tied: Linear(8, 8)}")
        else:
            split, heads = _map_split(ctx, node)
            ctx.shared_names.update({h: node.key_pos[h] for h in heads})
            for key in node.entries:
                if key in split:
                    continue
                if not _IDENT.match(key):
                    ctx.problems.add(node.key_pos[key], f"shared name '{key}' is not an identifier")
                elif key in ctx.blocks:
                    ctx.problems.add(node.key_pos[key], f"'{key}' is both a block and a shared module")
                ctx.shared_names[key] = node.key_pos[key]
            for key, value in node.entries.items():
                if key in split:
                    continue
                decl = _node(ctx, value, _ROOT, (), 1)
                if decl is not None:
                    shared.append((key, decl))
            _check_shared_cycles(ctx, dict(shared))
    model: Decl | None = None
    if "model" in e:
        model = _node(ctx, e["model"], _ROOT, (), 1)
    rules = _parse_rules(ctx, e["init"], "") if "init" in e else ()
    ties = _parse_ties(ctx, e["tie"]) if "tie" in e else ()
    count = 0
    if model is not None:
        memo: dict[int, int] = {}
        count = _count(model, memo) + sum(_count(d, memo) for _, d in shared)
        if count > MAX_MODULES:
            ctx.problems.add(
                e["model"].pos, f"the model has {count:,} modules, more than the limit of {MAX_MODULES:,}", "reduce repeat counts"
            )
    if ctx.problems:
        raise PartialSpecError(ctx.problems.items, ctx.leaves, tuple(ctx.blocks))
    assert model is not None
    names = tuple(sorted({*ctx.vars, *(p for blk in ctx.blocks.values() for p in (*blk.params, *blk.required))}))
    blocks = tuple(ctx.blocks)
    return ModelSpec(filename, name, doc, inputs, dtype, seed, tuple(shared), model, rules, ties, count, dtype_pos, blocks, names)


def parse_rules_file(text: str, filename: str) -> tuple[Rule, ...]:
    """A ``--rules FILE``: a YAML list of RULEs."""
    ctx = _Ctx(filename, Problems())
    root = yamlpos.load(text, filename)
    if isinstance(root, YMap) and set(root.entries) == {"init"}:
        root = root.entries["init"]
    rules = _parse_rules(ctx, root, "")
    ctx.problems.raise_if_any()
    return rules


def walk(decl: Decl) -> Iterator[Decl]:
    """Every distinct declaration object below and including ``decl`` (shared subtrees once)."""
    seen: set[int] = set()
    stack = [decl]
    while stack:
        d = stack.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        yield d
        if isinstance(d, Seq):
            stack.extend(c for _, c in reversed(d.children))


def _count(decl: Decl, memo: dict[int, int]) -> int:
    key = id(decl)
    if key in memo:
        return memo[key]
    if isinstance(decl, Seq):
        n = 1 + sum(_count(c, memo) for _, c in decl.children)
    elif isinstance(decl, Ref):
        n = 0
    else:
        n = 1
    memo[key] = n
    return n


# --- helpers ---------------------------------------------------------------------------------


def _check_keys(ctx: _Ctx, node: YMap, allowed: tuple[str, ...], what: str) -> None:
    for key in node.entries:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or "allowed: " + ", ".join(allowed)
            ctx.problems.add(node.key_pos[key], f"unknown {what} '{key}'", hint)


def _opt_str(ctx: _Ctx, node: YNode | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value
    ctx.problems.add(node.pos, f"expected a string, found {_describe(node)}")
    return None


def _describe(node: YNode) -> str:
    if isinstance(node, YScalar):
        return "null" if node.value is None else f"{type(node.value).__name__} {node.value!r}"
    return "a list" if isinstance(node, YSeq) else "a mapping"


def _expr_pos(node: YScalar, offset: int) -> Pos:
    p = node.pos
    extra = 1 if node.quoted else 0
    return Pos(p.file, p.line, (p.col or 1) + offset + extra)


def _value(ctx: _Ctx, node: YNode, scope: Mapping[str, Any]) -> tuple[bool, Any]:
    """A plain YAML value, where strings written ``${...}`` are expressions. (ok, value)."""
    if isinstance(node, YScalar):
        v = node.value
        if isinstance(v, str):
            m = _EXPR.match(v.strip())
            if m:
                try:
                    return True, parse_expr(m.group(1)).evaluate(scope)
                except ExprError as exc:
                    ctx.problems.add(_expr_pos(node, exc.offset + 2), exc.message, exc.hint)
                    return False, None
        return True, v
    if isinstance(node, YSeq):
        out = []
        ok = True
        for item in node.items:
            good, val = _value(ctx, item, scope)
            ok = ok and good
            out.append(val)
        return ok, out
    ok = True
    result: dict[str, Any] = {}
    for key, item in node.entries.items():
        good, val = _value(ctx, item, scope)
        ok = ok and good
        result[key] = val
    return ok, result


def _scope(ctx: _Ctx, local: Mapping[str, Any]) -> dict[str, Any]:
    if not local:
        return ctx.vars
    return {**ctx.vars, **local}


def _int(ctx: _Ctx, node: YNode, scope: Mapping[str, Any], what: str) -> int | None:
    ok, v = _value(ctx, node, scope)
    if not ok:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.problems.add(node.pos, f"{what} must be an integer, found {type(v).__name__} {v!r}")
        return None
    return v


def _dtype(ctx: _Ctx, node: YNode, table: dict[str, str]) -> str | None:
    v = node.value if isinstance(node, YScalar) else None
    if isinstance(v, str):
        key = v.removeprefix("torch.")
        if key in table:
            return table[key]
    hint = did_you_mean(str(v), table) if isinstance(v, str) else None
    ctx.problems.add(node.pos, f"unknown dtype {yamlpos.plain(node)!r}", hint or "one of " + ", ".join(sorted(set(table.values()))))
    return None


def _seed(ctx: _Ctx, node: YNode) -> int | None:
    v = _int(ctx, node, ctx.vars, "seed")
    if v is not None and not 0 <= v < 2**64:
        ctx.problems.add(node.pos, "seed must be in 0 .. 2**64-1")
        return None
    return v


def _parse_vars(ctx: _Ctx, node: YNode) -> None:
    if not isinstance(node, YMap):
        ctx.problems.add(node.pos, "'vars:' must be a mapping of names to values", "vars: {hidden: 8}")
        return
    for key, value in node.entries.items():
        if not _IDENT.match(key):
            ctx.problems.add(node.key_pos[key], f"var name '{key}' is not an identifier")
            continue
        ok, v = _value(ctx, value, ctx.vars)
        if ok:
            ctx.vars = {**ctx.vars, key: v}


def _parse_inputs(ctx: _Ctx, node: YNode) -> tuple[InputSpec, ...]:
    def one(n: YNode) -> InputSpec | None:
        if isinstance(n, YMap):
            _check_keys(ctx, n, ("shape", "dtype", "high"), "input key")
            if "shape" not in n.entries:
                ctx.problems.add(n.pos, "input needs 'shape:'", "input: {shape: [2, 4], dtype: float32}")
                return None
            shape = shape_of(n.entries["shape"])
            dtype = _dtype(ctx, n.entries["dtype"], INPUT_DTYPES) if "dtype" in n.entries else None
            high = _int(ctx, n.entries["high"], ctx.vars, "high") if "high" in n.entries else None
            if high is not None and high < 1:
                ctx.problems.add(
                    n.entries["high"].pos, f"'high' must be at least 1, found {high}", "integer inputs are drawn from 0 .. high-1"
                )
                high = None
            if shape is None:
                return None
            return InputSpec(shape, dtype, high, n.pos)
        shape = shape_of(n)
        return None if shape is None else InputSpec(shape, None, None, n.pos)

    def shape_of(n: YNode) -> tuple[int, ...] | None:
        ok, v = _value(ctx, n, ctx.vars)
        if not ok:
            return None
        if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v):
            ctx.problems.add(n.pos, f"an input shape is a list of non-negative integers, found {v!r}", "input: [2, 4]")
            return None
        numel = 1
        for d in v:
            numel *= d
        if numel > MAX_INPUT_NUMEL:
            ctx.problems.add(n.pos, f"input of {numel:,} elements is too large")
            return None
        return tuple(v)

    several = isinstance(node, YSeq) and node.items and all(isinstance(i, (YSeq, YMap)) for i in node.items)
    items = node.items if several and isinstance(node, YSeq) else [node]
    out = [one(i) for i in items]
    return tuple(i for i in out if i is not None)


def _parse_blocks(ctx: _Ctx, node: YNode) -> None:
    if not isinstance(node, YMap):
        ctx.problems.add(node.pos, "'blocks:' must map block names to definitions")
        return
    for key, value in node.entries.items():
        kpos = node.key_pos[key]
        if not _IDENT.match(key):
            ctx.problems.add(kpos, f"block name '{key}' is not an identifier")
            continue
        if isinstance(value, YMap) and "body" in value.entries:
            _check_keys(ctx, value, BLOCK_KEYS, "block key")
            params: dict[str, Any] = {}
            if "params" in value.entries:
                pnode = value.entries["params"]
                if not isinstance(pnode, YMap):
                    ctx.problems.add(pnode.pos, "'params:' must map parameter names to defaults", "params: {d_in: 4}")
                else:
                    for pname, pval in pnode.entries.items():
                        if not _IDENT.match(pname):
                            ctx.problems.add(pnode.key_pos[pname], f"parameter name '{pname}' is not an identifier")
                        ok, v = _value(ctx, pval, ctx.vars)
                        if ok:
                            params[pname] = v
            required: list[str] = []
            if "required" in value.entries:
                rnode = value.entries["required"]
                if not isinstance(rnode, YSeq) or not all(isinstance(i, YScalar) and isinstance(i.value, str) for i in rnode.items):
                    ctx.problems.add(rnode.pos, "'required:' must be a list of parameter names", "required: [d_out]")
                else:
                    for item in rnode.items:
                        assert isinstance(item, YScalar)
                        if item.value in params:
                            ctx.problems.add(item.pos, f"'{item.value}' is both required and has a default")
                        elif not _IDENT.match(item.value):
                            ctx.problems.add(item.pos, f"parameter name '{item.value}' is not an identifier")
                        else:
                            required.append(item.value)
            ctx.blocks[key] = _Block(key, params, tuple(required), value.entries["body"], kpos)
        else:
            if isinstance(value, YMap) and any(k in value.entries for k in ("params", "required")):
                ctx.problems.add(value.pos, f"block '{key}' has no 'body:'", "blocks: {name: {params: {...}, body: NODE}}")
                continue
            ctx.blocks[key] = _Block(key, {}, (), value, kpos)
    _check_block_cycles(ctx)


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


def _check_block_cycles(ctx: _Ctx) -> None:
    graph = {
        name: [(u, p) for u, p in _names_in(b.body) if u in ctx.blocks] if b.body is not None else [] for name, b in ctx.blocks.items()
    }
    _find_cycles(ctx, graph, "block '{0}' uses itself: {1}", "a block cannot contain itself, directly or through others")


def _find_cycles(ctx: _Ctx, graph: Mapping[str, list[tuple[str, Pos]]], message: str, hint: str) -> None:
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


def _check_shared_cycles(ctx: _Ctx, shared: dict[str, Decl]) -> None:
    graph = {name: [(x.shared, x.pos) for x in walk(d) if isinstance(x, Ref) and x.shared in shared] for name, d in shared.items()}
    _find_cycles(ctx, graph, "shared module '{0}' contains itself: {1}", "a shared module cannot ref itself, directly or through others")


# --- nodes -----------------------------------------------------------------------------------


def _too_deep(ctx: _Ctx, node: YNode) -> None:
    if not ctx.depth_reported:
        ctx.depth_reported = True
        ctx.problems.add(node.pos, f"modules nested deeper than {MAX_DEPTH} levels", "flatten the structure or use repeat")


def _node(ctx: _Ctx, node: YNode, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    """One NODE → Decl (None after a reported problem).

    A YAML node reached again (an alias) in the same scope gives the same Decl without a second
    expansion, so that aliases cannot multiply the work."""
    return _memoised(ctx, node, local, False, depth, lambda: (_node_fresh(ctx, node, local, stack, depth), 1, None, None))[0]


def _memoised(ctx: _Ctx, node: YNode, local: Mapping[str, Any], as_item: bool, depth: int, expand: Callable[[], _Result]) -> _Result:
    """``expand()`` once per (YAML node, scope, list item or not); a later hit is refused only if
    its subtree, placed at ``depth`` (the depth of its root module), would pass MAX_DEPTH."""
    key = (id(node), id(local), as_item)
    hit = ctx.node_memo.get(key)
    if hit is None:
        result = expand()
        ctx.node_memo[key] = (result, node, local)  # node and scope kept alive: their ids stay theirs
        return result
    result = hit[0]
    if result[0] is not None and depth + _height(result[0], ctx.heights) - 1 > MAX_DEPTH:
        _too_deep(ctx, node)
        return (None, 1, None, None)
    return result


def _height(decl: Decl, memo: dict[int, int]) -> int:
    if id(decl) not in memo:
        memo[id(decl)] = 1 + max((_height(c, memo) for _, c in decl.children), default=0) if isinstance(decl, Seq) else 1
    return memo[id(decl)]


def _node_fresh(ctx: _Ctx, node: YNode, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    if depth > MAX_DEPTH:
        _too_deep(ctx, node)
        return None
    if isinstance(node, YScalar):
        return _call_node(ctx, node, local, stack, depth)
    if isinstance(node, YSeq):
        return _list_node(ctx, node, local, stack, depth)
    return _map_node(ctx, node, local, stack, depth, allow_repeat=False)[0]


def _modifiers(ctx: _Ctx, node: YMap, local: Mapping[str, Any]) -> tuple[bool, tuple[Rule, ...]]:
    frozen = False
    if "frozen" in node.entries:
        f = node.entries["frozen"]
        if isinstance(f, YScalar) and isinstance(f.value, bool):
            frozen = f.value
        else:
            ctx.problems.add(f.pos, f"'frozen:' must be true or false, found {_describe(f)}")
    rules = _parse_rules(ctx, node.entries["init"], "") if "init" in node.entries else ()
    if "doc" in node.entries:
        _opt_str(ctx, node.entries["doc"])
    return frozen, rules


def _with_mods(decl: Decl, frozen: bool, rules: tuple[Rule, ...]) -> Decl:
    if not frozen and not rules:
        return decl
    if isinstance(decl, Leaf):
        return Leaf(decl.type_name, decl.args, decl.kwargs, decl.pos, decl.frozen or frozen, decl.rules + rules)
    if isinstance(decl, Seq):
        return Seq(decl.children, decl.pos, decl.frozen or frozen, decl.rules + rules, decl.child_pos)
    return Ref(decl.shared, decl.pos, decl.frozen or frozen, decl.rules + rules)


def _map_node(
    ctx: _Ctx, node: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int, allow_repeat: bool
) -> tuple[Decl | None, int, str | None, Pos | None]:
    """A mapping NODE → (decl, repeat count, name template, name position)."""
    kinds = [k for k in KIND_KEYS if k in node.entries]
    if len(kinds) != 1:
        if not kinds:
            calls = [k for k in node.entries if "(" in k]
            hint: str | None = "write a call string, a list, or a mapping with one of: type, sequential, use, ref"
            if calls:
                hint = "a call with a comma inside {...} was split by YAML: quote it"
            ctx.problems.add(node.pos, "a module mapping needs one of the keys type, sequential, use, ref", hint)
        else:
            ctx.problems.add(node.pos, f"a module mapping has exactly one of type, sequential, use, ref; found {', '.join(kinds)}")
        return None, 1, None, None
    kind = kinds[0]
    allowed = (kind, *EXTRA_KEYS[kind], *COMMON_KEYS)
    _check_keys(ctx, node, allowed, f"key for a '{kind}' node")
    frozen, rules = _modifiers(ctx, node, local)
    scope = _scope(ctx, local)
    repeat = 1
    if "repeat" in node.entries:
        rnode = node.entries["repeat"]
        if kind == "ref":
            ctx.problems.add(
                node.key_pos["repeat"], "'repeat' is refused on 'ref'", "list the ref several times, or repeat a 'use:' of a block"
            )
        elif not allow_repeat:
            ctx.problems.add(
                node.key_pos["repeat"], "'repeat' only works on an item of a list", "put the node in a list: - {use: block, repeat: 4}"
            )
        else:
            r = _int(ctx, rnode, scope, "repeat")
            if r is not None:
                if r < 0 or r > MAX_REPEAT:
                    ctx.problems.add(rnode.pos, f"repeat {r:,} is outside 0 .. {MAX_REPEAT:,}")
                else:
                    repeat = r
    template, name_pos = None, None
    if "name" in node.entries:
        nnode = node.entries["name"]
        name_pos = nnode.pos
        if isinstance(nnode, YScalar) and isinstance(nnode.value, (str, int)) and not isinstance(nnode.value, bool):
            template = str(nnode.value)
        else:
            ctx.problems.add(nnode.pos, f"'name:' must be a string, found {_describe(nnode)}")
    if kind == "ref":
        target = node.entries["ref"]
        if not (isinstance(target, YScalar) and isinstance(target.value, str)):
            ctx.problems.add(target.pos, "'ref:' names a module under 'shared:'")
            return None, repeat, template, name_pos
        if target.value not in ctx.shared_names:
            hint = did_you_mean(target.value, ctx.shared_names)
            if target.value in ctx.blocks:
                hint = f"'{target.value}' is a block: write use: {target.value} (a new instance)"
            ctx.problems.add(target.pos, f"undefined shared module '{target.value}'", hint or "define it under shared:")
            return None, repeat, template, name_pos
        if frozen or rules:
            ctx.problems.add(
                node.pos, "'frozen'/'init' on a 'ref' would change the shared module everywhere", "put them on its definition under shared:"
            )
        return Ref(target.value, node.pos), repeat, template, name_pos
    if kind == "sequential":
        body = node.entries["sequential"]
        decl: Decl | None
        if isinstance(body, YSeq):
            decl = _list_node(ctx, body, local, stack, depth)
        elif isinstance(body, YMap):
            decl = _named_node(ctx, body, local, stack, depth)
        else:
            ctx.problems.add(body.pos, "'sequential:' takes a list or a mapping of named children")
            decl = None
        return (None if decl is None else _with_mods(decl, frozen, rules)), repeat, template, name_pos
    if kind == "use":
        unode = node.entries["use"]
        if not (isinstance(unode, YScalar) and isinstance(unode.value, str)):
            ctx.problems.add(unode.pos, "'use:' names a block")
            return None, repeat, template, name_pos
        with_args: dict[str, Any] = {}
        ok = True
        if "with" in node.entries:
            wnode = node.entries["with"]
            if not isinstance(wnode, YMap):
                ctx.problems.add(wnode.pos, "'with:' maps block parameters to values", "with: {d_out: 8}")
                ok = False
            else:
                for k, v in wnode.entries.items():
                    good, val = _value(ctx, v, scope)
                    ok = ok and good
                    with_args[k] = val
        if not ok:
            return None, repeat, template, name_pos
        decl = _block_instance(ctx, unode.value, (), with_args, unode.pos, stack, depth, node.key_pos.get("with"))
        return (None if decl is None else _with_mods(decl, frozen, rules)), repeat, template, name_pos
    # type:
    tnode = node.entries["type"]
    if not (isinstance(tnode, YScalar) and isinstance(tnode.value, str)):
        ctx.problems.add(tnode.pos, "'type:' names a module class", "type: Linear")
        return None, repeat, template, name_pos
    tname = tnode.value.strip()
    if "(" in tname:
        ctx.problems.add(
            tnode.pos,
            f"'type:' takes a class name, not a call: {tname!r}",
            "use args: [...] and kwargs: {...}, or write the call string as the node",
        )
        return None, repeat, template, name_pos
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    ok = True
    if "args" in node.entries:
        anode = node.entries["args"]
        good, val = _value(ctx, anode, scope)
        if good and not isinstance(val, list):
            ctx.problems.add(anode.pos, "'args:' must be a list", "args: [4, 8]")
            good = False
        ok = ok and good
        if good:
            args = tuple(val)
    if "kwargs" in node.entries:
        knode = node.entries["kwargs"]
        good, val = _value(ctx, knode, scope)
        if good and not isinstance(val, dict):
            ctx.problems.add(knode.pos, "'kwargs:' must be a mapping", "kwargs: {bias: false}")
            good = False
        ok = ok and good
        if good:
            kwargs = tuple(val.items())
    if not ok:
        return None, repeat, template, name_pos
    decl = _resolve_call(
        ctx, tname, args, dict(kwargs), tnode.pos, stack, depth, has_args="args" in node.entries or "kwargs" in node.entries
    )
    return (None if decl is None else _with_mods(decl, frozen, rules)), repeat, template, name_pos


def _split_call(items: list[YNode], i: int) -> tuple[str, int] | None:
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


def _map_split(ctx: _Ctx, node: YMap) -> tuple[set[str], set[str]]:
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


def _list_node(ctx: _Ctx, node: YSeq, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Seq | None:
    children: list[tuple[str, Decl]] = []
    child_pos: list[Pos] = []
    names: dict[str, Pos] = {}
    ok = True
    i = 0
    items = node.items
    while i < len(items):
        item = items[i]
        split = _split_call(items, i)
        if split is not None:
            joined, end = split
            ctx.problems.add(
                item.pos,
                f"YAML split the call {joined!r} at its commas",
                f'quote call strings with commas inside [...]: ["{joined}"], or use a block list (- {joined})',
            )
            ok = False
            i = end + 1
            continue
        i += 1
        if isinstance(item, YMap):
            expand = functools.partial(_map_node, ctx, item, local, stack, depth + 1, allow_repeat=True)
            decl, repeat, template, name_pos = _memoised(ctx, item, local, True, depth + 1, expand)
        else:
            decl, repeat, template, name_pos = _node(ctx, item, local, stack, depth + 1), 1, None, None
        if decl is None:
            ok = False
            continue
        if template is not None and repeat > 1 and "{i}" not in template:
            ctx.problems.add(name_pos, f"name {template!r} with repeat {repeat} needs '{{i}}'", f'name: "{template}{{i}}"')
            ok = False
            continue
        for k in range(repeat):
            index = len(children)
            cname = str(index)
            if template is not None:
                formatted = _format_name(ctx, template, k, name_pos)
                if formatted is None:
                    ok = False
                    break
                cname = formatted
            where = name_pos or item.pos
            if cname in names:
                ctx.problems.add(where, f"duplicate child name '{cname}'", f"first used at line {names[cname].line}")
                ok = False
                break
            names[cname] = where
            children.append((cname, decl))
            child_pos.append(where)
    if not ok:
        return None
    return Seq(tuple(children), node.pos, child_pos=tuple(child_pos))


def _format_name(ctx: _Ctx, template: str, i: int, pos: Pos | None) -> str | None:
    if "{" not in template and "}" not in template:
        name = template
    else:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if fields - {"i"}:
                raise ValueError(f"unknown field(s) {sorted(fields - {'i'})}")
            name = template.format(i=i)
        except (ValueError, IndexError, KeyError) as exc:
            ctx.problems.add(pos, f"bad name template {template!r}: {exc}", 'the only field is {i}: name: "layer{i}"')
            return None
    return name if _check_child_name(ctx, name, pos) else None


def _check_child_name(ctx: _Ctx, name: str, pos: Pos | None) -> bool:
    if not name:
        ctx.problems.add(pos, "empty child name")
        return False
    if "." in name:
        ctx.problems.add(pos, f"child name '{name}' contains '.'", "PyTorch module names cannot contain dots")
        return False
    return True


def _named_node(ctx: _Ctx, node: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Seq | None:
    children: list[tuple[str, Decl]] = []
    child_pos: list[Pos] = []
    split, _ = _map_split(ctx, node)
    ok = not split
    for key, value in node.entries.items():
        if key in split:
            continue
        kpos = node.key_pos[key]
        if not _check_child_name(ctx, key, kpos):
            ok = False
            continue
        if isinstance(value, YMap):
            if "name" in value.entries:
                ctx.problems.add(value.key_pos["name"], f"child '{key}' is named by its key; 'name:' is not allowed here")
                ok = False
                continue
            if "repeat" in value.entries:
                ctx.problems.add(
                    value.key_pos["repeat"], "'repeat' is refused inside a named mapping", 'use a list with name: "layer{i}" and repeat'
                )
                ok = False
                continue
        decl = _node(ctx, value, local, stack, depth + 1)
        if decl is None:
            ok = False
            continue
        children.append((key, decl))
        child_pos.append(kpos)
    if not ok:
        return None
    return Seq(tuple(children), node.pos, child_pos=tuple(child_pos))


def _call_node(ctx: _Ctx, node: YScalar, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    if not isinstance(node.value, str) or not node.value.strip():
        ctx.problems.add(node.pos, f"expected a module, found {_describe(node)}", "write a call such as Linear(4, 8) or ReLU")
        return None
    text = node.value
    try:
        call = parse_call(text)
    except ExprError as exc:
        hint = exc.hint
        if _container_call(ctx, text.split("(", 1)[0].strip(), node.pos):
            return None
        if text.count("(") != text.count(")"):
            hint = "YAML splits flow lists at commas: quote call strings with commas inside [...]"
        ctx.problems.add(_expr_pos(node, exc.offset), exc.message, hint)
        return None
    scope = _scope(ctx, local)
    if call.name in ctx.blocks:
        try:
            args, kwargs = call.evaluate(scope)
        except ExprError as exc:
            ctx.problems.add(_expr_pos(node, exc.offset), exc.message, exc.hint)
            return None
        return _block_instance(ctx, call.name, args, kwargs, node.pos, stack, depth, None)
    return _leaf_from_call(ctx, call, node, scope, stack, depth)


def _leaf_from_call(ctx: _Ctx, call: CallExpr, node: YScalar, scope: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    try:
        args, kwargs = call.evaluate(scope)
    except ExprError as exc:
        ctx.problems.add(_expr_pos(node, exc.offset), exc.message, exc.hint)
        return None
    return _resolve_call(ctx, call.name, args, kwargs, node.pos, stack, depth, has_args=not call.is_bare())


def _resolve_call(
    ctx: _Ctx, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], pos: Pos, stack: tuple[str, ...], depth: int, has_args: bool
) -> Decl | None:
    if name in ctx.blocks:
        return _block_instance(ctx, name, args, kwargs, pos, stack, depth, None)
    if name in ctx.shared_names:
        ctx.problems.add(pos, f"'{name}' is a shared module, not a class", f"write ref: {name} (the same module) ")
        return None
    if _container_call(ctx, name, pos):
        return None
    leaf = Leaf(name, args, tuple(kwargs.items()), pos)
    ctx.leaves.append(leaf)
    return leaf


def _container_call(ctx: _Ctx, name: str, pos: Pos) -> bool:
    """Report (and say True for) ``Sequential(...)`` and the like, which are not written as calls."""
    short = name.removeprefix("torch.").removeprefix("nn.")
    if short not in CONTAINERS:
        return False
    hint = "write a list, or sequential: [...] / sequential: {name: NODE}"
    ctx.problems.add(pos, f"'{short}' is a container and is not written as a call", hint)
    return True


def _block_instance(
    ctx: _Ctx, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], pos: Pos, stack: tuple[str, ...], depth: int, with_pos: Pos | None
) -> Decl | None:
    block = ctx.blocks.get(name)
    if block is None:
        hint = did_you_mean(name, ctx.blocks)
        if name in ctx.shared_names:
            hint = f"'{name}' is a shared module: write ref: {name}"
        ctx.problems.add(
            pos, f"undefined block '{name}'", hint or ("blocks: " + ", ".join(ctx.blocks) if ctx.blocks else "define it under blocks:")
        )
        return None
    if name in ctx.cyclic or name in stack:
        if name not in ctx.cyclic:
            ctx.problems.add(pos, f"block '{name}' uses itself: {' -> '.join(stack + (name,))}")
            ctx.cyclic.add(name)
        return None
    order = list(block.required) + list(block.params)
    bound: dict[str, Any] = {}
    if len(args) > len(order):
        ctx.problems.add(pos, f"block '{name}' takes {len(order)} positional argument(s), {len(args)} given", _block_sig(block))
        return None
    for pname, value in zip(order, args, strict=False):
        bound[pname] = value
    for kw, value in kwargs.items():
        if kw not in order:
            ctx.problems.add(with_pos or pos, f"block '{name}' has no parameter '{kw}'", did_you_mean(kw, order) or _block_sig(block))
            return None
        if kw in bound:
            ctx.problems.add(with_pos or pos, f"block '{name}' got two values for '{kw}'")
            return None
        bound[kw] = value
    missing = [r for r in block.required if r not in bound]
    if missing:
        ctx.problems.add(pos, f"block '{name}' needs {', '.join(repr(m) for m in missing)}", _block_sig(block))
        return None
    for pname, default in block.params.items():
        bound.setdefault(pname, default)
    try:
        key: tuple[Any, ...] | None = (name, tuple(sorted(bound.items())))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in ctx.memo:
        return ctx.memo[key]
    assert block.body is not None
    decl = _node(ctx, block.body, bound, stack + (name,), depth)
    if decl is not None and key is not None:
        ctx.memo[key] = decl
    return decl


def _block_sig(block: _Block) -> str:
    parts = list(block.required) + [f"{k}={v!r}" for k, v in block.params.items()]
    return f"{block.name}({', '.join(parts)})"


# --- rules and ties --------------------------------------------------------------------------


def _parse_rules(ctx: _Ctx, node: YNode, scope_path: str) -> tuple[Rule, ...]:
    if isinstance(node, YMap):
        items: list[YNode] = [node]
    elif isinstance(node, YSeq):
        items = node.items
    else:
        ctx.problems.add(node.pos, "'init:' is a list of rules", "init: [{target: '0', weight: xavier_uniform}]")
        return ()
    rules: list[Rule] = []
    for item in items:
        rule = parse_rule(ctx.problems, item)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def parse_rule(problems: Problems, item: YNode) -> Rule | None:
    """One RULE mapping → Rule (None after a reported problem)."""
    if not isinstance(item, YMap):
        problems.add(
            item.pos, f"an init rule is a mapping, found {_describe(item)}", "- {target: '0', weight: xavier_uniform, bias: zeros}"
        )
        return None
    target = "*"
    types: tuple[str, ...] = ()
    params: list[tuple[str, tuple[SchemeStep, ...]]] = []
    ok = True
    for key, value in item.entries.items():
        if key == "target":
            if isinstance(value, YScalar) and value.value is not None and not isinstance(value.value, bool):
                target = str(value.value)
            else:
                problems.add(value.pos, "'target:' is a glob over module paths", 'target: "0"  or  target: "0.*"')
                ok = False
        elif key == "types":
            raw = yamlpos.plain(value)
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
                problems.add(value.pos, "'types:' is a list of module class names", "types: [Linear]")
                ok = False
            else:
                types = tuple(raw)
        elif key == "doc":
            continue
        else:
            near = did_you_mean(key, RULE_KEYS)
            raw = yamlpos.plain(value)
            if not (isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw))):
                problems.add(
                    value.pos, f"the scheme for '{key}' must be a call string or a list of them", near and f"is '{key}' a typo? {near}"
                )
                ok = False
                continue
            try:
                steps = compile_scheme(raw)
            except SchemeError as exc:
                hint = exc.hint
                if near:
                    hint = f"is '{key}' a typo? {near}"
                problems.add(value.pos, exc.message, hint)
                ok = False
                continue
            params.append((key, steps))
    if ok and not params:
        problems.add(item.pos, "the rule sets no parameter", "add e.g. weight: xavier_uniform")
        return None
    if not ok:
        return None
    types_pos = item.entries["types"].pos if "types" in item.entries else None
    return Rule(target, types, tuple(params), item.pos, "", types_pos)


def _parse_ties(ctx: _Ctx, node: YNode) -> tuple[Tie, ...]:
    items = node.items if isinstance(node, YSeq) else [node]
    ties: list[Tie] = []
    for item in items:
        if not isinstance(item, YMap):
            ctx.problems.add(item.pos, "a tie is a mapping {param: PATH, to: PATH}", "tie: [{param: head.weight, to: embed.weight}]")
            continue
        _check_keys(ctx, item, ("param", "to", "doc"), "tie key")
        vals = {}
        for key in ("param", "to"):
            v = item.entries.get(key)
            if v is None:
                ctx.problems.add(item.pos, f"a tie needs '{key}:'", "tie: [{param: head.weight, to: embed.weight}]")
            elif not (isinstance(v, YScalar) and isinstance(v.value, str) and v.value.strip()):
                ctx.problems.add(v.pos, f"'{key}:' is a parameter path such as embed.weight")
            else:
                vals[key] = v.value.strip()
        if len(vals) == 2:
            if vals["param"] == vals["to"]:
                ctx.problems.add(item.pos, f"'{vals['param']}' is tied to itself")
                continue
            ties.append(Tie(vals["param"], vals["to"], item.entries["param"].pos))
    return tuple(ties)


def config_doc(path: Path) -> str:
    """The one-line ``doc:`` of a model file (for ``netinspect configs``), read without building."""
    try:
        root = yamlpos.load(yamlpos.decode(path.read_bytes(), str(path)), str(path))
    except (OSError, SpecError):
        return "(unreadable)"
    if isinstance(root, YMap):
        doc = root.entries.get("doc")
        if isinstance(doc, YScalar) and isinstance(doc.value, str):
            return doc.value.strip().splitlines()[0] if doc.value.strip() else ""
    return ""
