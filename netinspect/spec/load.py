"""A model file → ``ModelSpec``: the top-level schema, vars, inputs, shared modules, rules and ties.

Every problem of a file is collected and raised together, as one ``SpecError`` (a
``PartialSpecError`` that also carries the module calls that did parse, so that ``validate``
can report their classes and arguments in the same run).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from netinspect import yamlpos
from netinspect.errors import Pos, Problem, Problems, SpecError, did_you_mean
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .blocks import check_shared_cycles, parse_blocks
from .context import ROOT_SCOPE, Ctx
from .ir import Decl, InputSpec, Leaf, ModelSpec, Rule, count_modules
from .nodes import node
from .recover import map_split
from .rules import parse_rules, parse_ties
from .values import DTYPES, IDENT, INPUT_DTYPES, check_keys, dtype, integer, opt_str, value

SCHEMA_VERSION = 1
MAX_MODULES = 1_000_000
MAX_INPUT_NUMEL = 2**40

TOP_KEYS = ("netinspect", "name", "doc", "input", "dtype", "seed", "vars", "blocks", "shared", "model", "init", "tie")


class PartialSpecError(SpecError):
    """A file's problems, plus the module calls that did parse (so ``validate`` can check their classes too)."""

    def __init__(self, problems: list[Problem], leaves: list[Leaf], block_names: tuple[str, ...] = (), in_forward: bool = False) -> None:
        super().__init__(problems)
        self.leaves = leaves
        self.block_names = block_names
        #: a problem is in a written forward: reported at once, without torch (the classes wait)
        self.in_forward = in_forward


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


def parse_model(text: str, filename: str, granted: Mapping[str, str] | None = None) -> ModelSpec:
    """Parse and expand a whole model file; raises one SpecError holding every problem.
    ``granted``: names a forward may call as functions granted with ``--allow`` (see ``grants``)."""
    # expansion recurses once per nesting level (refused past MAX_DEPTH); leave room for it
    # whoever calls us, not only the command line
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    ctx = Ctx(filename, Problems(), granted=granted or {})
    root = yamlpos.load(text, filename)
    if not isinstance(root, YMap):
        raise SpecError.at(root.pos, f"the top level must be a mapping, not a {root.kind}", "start the file with 'netinspect: 1'")
    check_keys(ctx, root, TOP_KEYS, "top-level key")
    e = root.entries
    _check_required(ctx, root)
    name = opt_str(ctx, e.get("name")) or Path(filename).stem
    doc = opt_str(ctx, e.get("doc"))
    if "vars" in e:
        _parse_vars(ctx, e["vars"])
    dtype_name = dtype(ctx, e["dtype"], DTYPES) if "dtype" in e else None
    seed = _seed(ctx, e["seed"]) if "seed" in e else None
    inputs = _parse_inputs(ctx, e["input"]) if "input" in e else ()
    if "blocks" in e:
        parse_blocks(ctx, e["blocks"])
    shared = _parse_shared(ctx, e["shared"]) if "shared" in e else []
    model: Decl | None = node(ctx, e["model"], ROOT_SCOPE, (), 1) if "model" in e else None
    rules: tuple[Rule, ...] = parse_rules(ctx.problems, e["init"]) if "init" in e else ()
    ties = parse_ties(ctx, e["tie"]) if "tie" in e else ()
    count = 0
    if model is not None:
        memo: dict[int, int] = {}
        count = count_modules(model, memo) + sum(count_modules(d, memo) for _, d in shared)
        if count > MAX_MODULES:
            ctx.problems.add(
                e["model"].pos, f"the model has {count:,} modules, more than the limit of {MAX_MODULES:,}", "reduce repeat counts"
            )
    if ctx.problems:
        raise PartialSpecError(ctx.problems.items, ctx.leaves, tuple(ctx.blocks), ctx.forward_problems)
    assert model is not None
    names = tuple(sorted({*ctx.vars, *(p for blk in ctx.blocks.values() for p in (*blk.params, *blk.required))}))
    return ModelSpec(
        filename,
        name,
        doc,
        inputs,
        dtype_name,
        seed,
        tuple(shared),
        model,
        rules,
        ties,
        count,
        e["dtype"].pos if "dtype" in e else None,
        tuple(ctx.blocks),
        names,
    )


def grants(allow: Iterable[str]) -> dict[str, str]:
    """``--allow pkg.mod:func`` values → the names a forward may call them by (``func``,
    ``pkg.mod.func``) → the grant; malformed grants are left to the command line's check."""
    out: dict[str, str] = {}
    for grant in allow:
        mod, sep, name = grant.partition(":")
        if sep and mod and name.isidentifier():
            out[name] = grant
            out[f"{mod}.{name}"] = grant
    return out


def _check_required(ctx: Ctx, root: YMap) -> None:
    """``netinspect:`` and ``model:`` are there (unless a misspelling of them was reported already)."""
    e = root.entries
    typos = {k for k in e if k not in TOP_KEYS}

    def typo_of(required: str) -> bool:
        return any(did_you_mean(k, [required]) for k in typos)

    if "netinspect" not in e:
        if not typo_of("netinspect"):
            ctx.problems.add(Pos(ctx.file, 1, 1), "missing 'netinspect:' (the schema version)", "add 'netinspect: 1' as the first line")
    else:
        v = e["netinspect"]
        if not (isinstance(v, YScalar) and v.value == SCHEMA_VERSION and not isinstance(v.value, bool)):
            ctx.problems.add(v.pos, f"unsupported schema version {yamlpos.plain(v)!r}", "this netinspect reads 'netinspect: 1'")
    if "model" not in e and not typo_of("model"):
        ctx.problems.add(root.pos, "missing 'model:' (the root module)", "add e.g. model: [Linear(4, 8), ReLU]")


def _parse_shared(ctx: Ctx, yn: YNode) -> list[tuple[str, Decl]]:
    """``shared:``: names first (a ``ref`` may name a later one), then each declaration, then cycles."""
    shared: list[tuple[str, Decl]] = []
    if not isinstance(yn, YMap):
        ctx.problems.add(yn.pos, "'shared:' must map names to modules", "shared: {tied: Linear(8, 8)}")
        return shared
    split, heads = map_split(ctx, yn)
    ctx.shared_names.update({h: yn.key_pos[h] for h in heads})
    for key in yn.entries:
        if key in split:
            continue
        if not IDENT.match(key):
            ctx.problems.add(yn.key_pos[key], f"shared name '{key}' is not an identifier")
        elif key in ctx.blocks:
            ctx.problems.add(yn.key_pos[key], f"'{key}' is both a block and a shared module")
        ctx.shared_names[key] = yn.key_pos[key]
    for key, item in yn.entries.items():
        if key in split:
            continue
        decl = node(ctx, item, ROOT_SCOPE, (), 1)
        if decl is not None:
            shared.append((key, decl))
    check_shared_cycles(ctx, dict(shared))
    return shared


def _seed(ctx: Ctx, yn: YNode) -> int | None:
    v = integer(ctx, yn, ctx.vars, "seed")
    if v is not None and not 0 <= v < 2**64:
        ctx.problems.add(yn.pos, "seed must be in 0 .. 2**64-1")
        return None
    return v


def _parse_vars(ctx: Ctx, yn: YNode) -> None:
    if not isinstance(yn, YMap):
        ctx.problems.add(yn.pos, "'vars:' must be a mapping of names to values", "vars: {hidden: 8}")
        return
    for key, item in yn.entries.items():
        if not IDENT.match(key):
            ctx.problems.add(yn.key_pos[key], f"var name '{key}' is not an identifier")
            continue
        ok, v = value(ctx, item, ctx.vars)
        if ok:
            ctx.vars = {**ctx.vars, key: v}


def _parse_inputs(ctx: Ctx, yn: YNode) -> tuple[InputSpec, ...]:
    def one(n: YNode) -> InputSpec | None:
        if isinstance(n, YMap):
            check_keys(ctx, n, ("shape", "dtype", "high"), "input key")
            if "shape" not in n.entries:
                ctx.problems.add(n.pos, "input needs 'shape:'", "input: {shape: [2, 4], dtype: float32}")
                return None
            shape = shape_of(n.entries["shape"])
            dt = dtype(ctx, n.entries["dtype"], INPUT_DTYPES) if "dtype" in n.entries else None
            high = integer(ctx, n.entries["high"], ctx.vars, "high") if "high" in n.entries else None
            if high is not None and high < 1:
                ctx.problems.add(
                    n.entries["high"].pos, f"'high' must be at least 1, found {high}", "integer inputs are drawn from 0 .. high-1"
                )
                high = None
            if shape is None:
                return None
            return InputSpec(shape, dt, high, n.pos)
        shape = shape_of(n)
        return None if shape is None else InputSpec(shape, None, None, n.pos)

    def shape_of(n: YNode) -> tuple[int, ...] | None:
        ok, v = value(ctx, n, ctx.vars)
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

    several = isinstance(yn, YSeq) and yn.items and all(isinstance(i, (YSeq, YMap)) for i in yn.items)
    items = yn.items if several and isinstance(yn, YSeq) else [yn]
    out = [one(i) for i in items]
    return tuple(i for i in out if i is not None)


def parse_rules_file(text: str, filename: str) -> tuple[Rule, ...]:
    """A ``--rules FILE``: a YAML list of RULEs (or a mapping whose only key is ``init``)."""
    problems = Problems()
    root = yamlpos.load(text, filename)
    if isinstance(root, YMap) and set(root.entries) == {"init"}:
        root = root.entries["init"]
    rules = parse_rules(problems, root)
    problems.raise_if_any()
    return rules


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
