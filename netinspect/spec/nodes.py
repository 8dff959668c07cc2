"""NODEs → declarations: call strings, lists, mappings of each kind, block uses, repeats and names.

Expansion is memoised twice: a block used with the same arguments expands once (``ctx.memo``),
and a YAML node reached again through an alias in the same scope gives the same declaration
(``ctx.node_memo``), so neither repeats nor aliases multiply the work.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from netinspect.errors import Pos, did_you_mean
from netinspect.expr import CallExpr, ExprError, parse_call
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .blocks import block_signature
from .context import Ctx, Result
from .ir import Decl, Leaf, Ref, Rule, Seq, height
from .recover import container_call, map_split, split_call
from .rules import parse_rules
from .values import check_keys, describe, integer, opt_str, value

MAX_DEPTH = 200
MAX_REPEAT = 100_000

COMMON_KEYS = ("name", "repeat", "init", "frozen", "doc")


def node(ctx: Ctx, yn: YNode, local: Mapping[str, Any], stack: tuple[str, ...], depth: int, as_child: bool = False) -> Decl | None:
    """One NODE → Decl (None after a reported problem). ``local``: the block parameters in scope;
    ``stack``: the blocks being expanded (for cycles); ``depth``: the module depth of this node;
    ``as_child``: it is placed as a child (so an ``if:`` on it was already decided by the container).

    A YAML node reached again (an alias) in the same scope gives the same Decl without a second
    expansion, so that aliases cannot multiply the work."""
    return memoised(ctx, yn, local, False, depth, lambda: (_fresh(ctx, yn, local, stack, depth, as_child), 1, None, None))[0]


def memoised(ctx: Ctx, yn: YNode, local: Mapping[str, Any], as_item: bool, depth: int, expand: Callable[[], Result]) -> Result:
    """``expand()`` once per (YAML node, scope, list item or not); a later hit is refused only if
    its subtree, placed at ``depth`` (the depth of its root module), would pass MAX_DEPTH."""
    key = (id(yn), id(local), as_item)
    hit = ctx.node_memo.get(key)
    if hit is None:
        result = expand()
        ctx.node_memo[key] = (result, yn, local)  # node and scope kept alive: their ids stay theirs
        return result
    result = hit[0]
    if result[0] is not None and depth + height(result[0], ctx.heights) - 1 > MAX_DEPTH:
        _too_deep(ctx, yn)
        return (None, 1, None, None)
    return result


def _too_deep(ctx: Ctx, yn: YNode) -> None:
    if not ctx.depth_reported:
        ctx.depth_reported = True
        ctx.problems.add(yn.pos, f"modules nested deeper than {MAX_DEPTH} levels", "flatten the structure or use repeat")


def _fresh(ctx: Ctx, yn: YNode, local: Mapping[str, Any], stack: tuple[str, ...], depth: int, as_child: bool) -> Decl | None:
    if depth > MAX_DEPTH:
        _too_deep(ctx, yn)
        return None
    if isinstance(yn, YScalar):
        return _call_node(ctx, yn, local, stack, depth)
    if isinstance(yn, YSeq):
        return list_node(ctx, yn, local, stack, depth)
    return map_node(ctx, yn, local, stack, depth, allow_repeat=False, as_child=as_child)[0]


def child_condition(ctx: Ctx, yn: YNode, local: Mapping[str, Any]) -> bool | None:
    """A child's ``if:`` (True when it has none); None after a reported problem."""
    if not isinstance(yn, YMap) or "if" not in yn.entries:
        return True
    cnode = yn.entries["if"]
    ok, v = value(ctx, cnode, ctx.scope(local))
    if not ok:
        return None
    if not isinstance(v, bool):
        ctx.problems.add(cnode.pos, f"'if:' must be true or false, found {type(v).__name__} {v!r}", "if: ${stride != 1}")
        return None
    return v


# --- mappings: one parser per kind ---------------------------------------------------------------

#: A kind's parser: (ctx, the mapping, block parameters, block stack, depth) → its Decl (None after a problem).
KindParser = Callable[[Ctx, YMap, Mapping[str, Any], tuple[str, ...], int], "Decl | None"]


def _kind_type(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    tnode = yn.entries["type"]
    if not (isinstance(tnode, YScalar) and isinstance(tnode.value, str)):
        ctx.problems.add(tnode.pos, "'type:' names a module class", "type: Linear")
        return None
    tname = tnode.value.strip()
    if "(" in tname:
        ctx.problems.add(
            tnode.pos,
            f"'type:' takes a class name, not a call: {tname!r}",
            "use args: [...] and kwargs: {...}, or write the call string as the node",
        )
        return None
    scope = ctx.scope(local)
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    ok = True
    if "args" in yn.entries:
        anode = yn.entries["args"]
        good, val = value(ctx, anode, scope)
        if good and not isinstance(val, list):
            ctx.problems.add(anode.pos, "'args:' must be a list", "args: [4, 8]")
            good = False
        ok = ok and good
        if good:
            args = tuple(val)
    if "kwargs" in yn.entries:
        knode = yn.entries["kwargs"]
        good, val = value(ctx, knode, scope)
        if good and not isinstance(val, dict):
            ctx.problems.add(knode.pos, "'kwargs:' must be a mapping", "kwargs: {bias: false}")
            good = False
        ok = ok and good
        if good:
            kwargs = tuple(val.items())
    if not ok:
        return None
    return _resolve_call(ctx, tname, args, dict(kwargs), tnode.pos, stack, depth)


def _kind_sequential(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    body = yn.entries["sequential"]
    if isinstance(body, YSeq):
        return list_node(ctx, body, local, stack, depth)
    if isinstance(body, YMap):
        return _named_node(ctx, body, local, stack, depth)
    ctx.problems.add(body.pos, "'sequential:' takes a list or a mapping of named children")
    return None


def _kind_use(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    unode = yn.entries["use"]
    if not (isinstance(unode, YScalar) and isinstance(unode.value, str)):
        ctx.problems.add(unode.pos, "'use:' names a block")
        return None
    with_args: dict[str, Any] = {}
    if "with" in yn.entries:
        wnode = yn.entries["with"]
        if not isinstance(wnode, YMap):
            ctx.problems.add(wnode.pos, "'with:' maps block parameters to values", "with: {d_out: 8}")
            return None
        ok = True
        scope = ctx.scope(local)
        for k, v in wnode.entries.items():
            good, val = value(ctx, v, scope)
            ok = ok and good
            with_args[k] = val
        if not ok:
            return None
    return block_instance(ctx, unode.value, (), with_args, unode.pos, stack, depth, yn.key_pos.get("with"))


def _kind_ref(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    target = yn.entries["ref"]
    if not (isinstance(target, YScalar) and isinstance(target.value, str)):
        ctx.problems.add(target.pos, "'ref:' names a module under 'shared:'")
        return None
    if target.value not in ctx.shared_names:
        hint = did_you_mean(target.value, ctx.shared_names)
        if target.value in ctx.blocks:
            hint = f"'{target.value}' is a block: write use: {target.value} (a new instance)"
        ctx.problems.add(target.pos, f"undefined shared module '{target.value}'", hint or "define it under shared:")
        return None
    return Ref(shared=target.value, pos=yn.pos)


def _kind_graph(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    from .graphs import graph_node  # graphs.py builds on this module

    return graph_node(ctx, yn, local, stack, depth)


#: The kinds of a mapping NODE: its kind key → (the other keys it takes, its parser).
KINDS: dict[str, tuple[tuple[str, ...], KindParser]] = {
    "type": (("args", "kwargs"), _kind_type),
    "sequential": ((), _kind_sequential),
    "use": (("with",), _kind_use),
    "ref": ((), _kind_ref),
    "modules": (("forward", "inputs", "class"), _kind_graph),
}


def map_node(
    ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int, allow_repeat: bool, as_child: bool = False
) -> tuple[Decl | None, int, str | None, Pos | None]:
    """A mapping NODE → (decl, repeat count, name template, name position). ``as_child``: its
    container decides its ``if:`` (anywhere else an ``if:`` is refused)."""
    kinds = [k for k in KINDS if k in yn.entries]
    names = ", ".join(KINDS)
    if len(kinds) != 1:
        if not kinds:
            calls = [k for k in yn.entries if "(" in k]
            hint: str | None = f"write a call string, a list, or a mapping with one of: {names}"
            if calls:
                hint = "a call with a comma inside {...} was split by YAML: quote it"
            ctx.problems.add(yn.pos, f"a module mapping needs one of the keys {names}", hint)
        else:
            ctx.problems.add(yn.pos, f"a module mapping has exactly one of {names}; found {', '.join(kinds)}")
        return None, 1, None, None
    kind = kinds[0]
    extra, parse = KINDS[kind]
    if "if" in yn.entries and not (as_child or allow_repeat):
        ctx.problems.add(yn.key_pos["if"], "'if:' stands on a child", "put it on an item of a list, a sequential: or modules:")
    check_keys(ctx, yn, (kind, *extra, *COMMON_KEYS, "if"), f"key for a '{kind}' node")
    frozen, rules = _modifiers(ctx, yn)
    repeat = _repeat(ctx, yn, kind, local, allow_repeat)
    template, name_pos = _name(ctx, yn)
    decl = parse(ctx, yn, local, stack, depth)
    if isinstance(decl, Ref):
        if frozen or rules:
            ctx.problems.add(
                yn.pos, "'frozen'/'init' on a 'ref' would change the shared module everywhere", "put them on its definition under shared:"
            )
    elif decl is not None:
        decl = decl.with_mods(frozen, rules)
    return decl, repeat, template, name_pos


def _modifiers(ctx: Ctx, yn: YMap) -> tuple[bool, tuple[Rule, ...]]:
    """``frozen:`` and ``init:`` of a node (and a check of ``doc:``)."""
    frozen = False
    if "frozen" in yn.entries:
        f = yn.entries["frozen"]
        if isinstance(f, YScalar) and isinstance(f.value, bool):
            frozen = f.value
        else:
            ctx.problems.add(f.pos, f"'frozen:' must be true or false, found {describe(f)}")
    rules = parse_rules(ctx.problems, yn.entries["init"]) if "init" in yn.entries else ()
    if "doc" in yn.entries:
        opt_str(ctx, yn.entries["doc"])
    return frozen, rules


def _repeat(ctx: Ctx, yn: YMap, kind: str, local: Mapping[str, Any], allow_repeat: bool) -> int:
    if "repeat" not in yn.entries:
        return 1
    rnode = yn.entries["repeat"]
    if kind == "ref":
        ctx.problems.add(yn.key_pos["repeat"], "'repeat' is refused on 'ref'", "list the ref several times, or repeat a 'use:' of a block")
    elif not allow_repeat:
        ctx.problems.add(
            yn.key_pos["repeat"], "'repeat' only works on an item of a list", "put the node in a list: - {use: block, repeat: 4}"
        )
    else:
        r = integer(ctx, rnode, ctx.scope(local), "repeat")
        if r is not None:
            if 0 <= r <= MAX_REPEAT:
                return r
            ctx.problems.add(rnode.pos, f"repeat {r:,} is outside 0 .. {MAX_REPEAT:,}")
    return 1


def _name(ctx: Ctx, yn: YMap) -> tuple[str | None, Pos | None]:
    if "name" not in yn.entries:
        return None, None
    nnode = yn.entries["name"]
    if isinstance(nnode, YScalar) and isinstance(nnode.value, (str, int)) and not isinstance(nnode.value, bool):
        return str(nnode.value), nnode.pos
    ctx.problems.add(nnode.pos, f"'name:' must be a string, found {describe(nnode)}")
    return None, nnode.pos


# --- lists and named mappings --------------------------------------------------------------------


def list_node(ctx: Ctx, yn: YSeq, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Seq | None:
    """A list NODE → a Sequential with children 0, 1, 2, … (or their ``name:``), repeats expanded.
    An item whose ``if:`` is false is left out and keeps its index (``add_module(str(i), …)``)."""
    children: list[tuple[str, Decl]] = []
    child_pos: list[Pos] = []
    names: dict[str, Pos] = {}
    ok = True
    i = 0
    index = 0  # the next default child name
    items = yn.items
    while i < len(items):
        item = items[i]
        split = split_call(items, i)
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
        present = child_condition(ctx, item, local)
        if present is None:
            ok = False
            continue
        if not present:
            index += _skipped_count(ctx, item, local)
            continue
        if isinstance(item, YMap):
            expand = functools.partial(map_node, ctx, item, local, stack, depth + 1, allow_repeat=True)
            decl, repeat, template, name_pos = memoised(ctx, item, local, True, depth + 1, expand)
        else:
            decl, repeat, template, name_pos = node(ctx, item, local, stack, depth + 1), 1, None, None
        if decl is None:
            ok = False
            continue
        if template is not None and repeat > 1 and "{i}" not in template:
            ctx.problems.add(name_pos, f"name {template!r} with repeat {repeat} needs '{{i}}'", f'name: "{template}{{i}}"')
            ok = False
            continue
        for k in range(repeat):
            cname = str(index)
            index += 1
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
    return Seq(items=tuple(children), pos=yn.pos, child_pos=tuple(child_pos))


def _skipped_count(ctx: Ctx, item: YNode, local: Mapping[str, Any]) -> int:
    """How many indices an item left out by ``if: false`` holds (its ``repeat``, else 1)."""
    if isinstance(item, YMap) and "repeat" in item.entries:
        r = integer(ctx, item.entries["repeat"], ctx.scope(local), "repeat")
        return r if r is not None and 0 <= r <= MAX_REPEAT else 1
    return 1


def _format_name(ctx: Ctx, template: str, i: int, pos: Pos | None) -> str | None:
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
    return name if check_child_name(ctx, name, pos) else None


def check_child_name(ctx: Ctx, name: str, pos: Pos | None) -> bool:
    """A child name PyTorch accepts (no dots, not empty)."""
    if not name:
        ctx.problems.add(pos, "empty child name")
        return False
    if "." in name:
        ctx.problems.add(pos, f"child name '{name}' contains '.'", "PyTorch module names cannot contain dots")
        return False
    return True


def named_children(
    ctx: Ctx, yn: YMap, local: Mapping[str, Any], key_ok: Callable[[str, Pos], bool] | None = None
) -> tuple[bool, Iterator[tuple[str, Pos, YNode, bool | None]]]:
    """A map of named children: whether YAML split none of its calls, and its other entries in file
    order as (key, key position, entry, present), checked one by one as the caller goes (the child
    name, ``key_ok`` if given, the entry itself, its ``if:``); present is None after a problem."""
    split, _ = map_split(ctx, yn)

    def entries() -> Iterator[tuple[str, Pos, YNode, bool | None]]:
        for key, item in yn.entries.items():
            if key in split:
                continue
            kpos = yn.key_pos[key]
            if not check_child_name(ctx, key, kpos) or (key_ok is not None and not key_ok(key, kpos)) or not named_child_ok(ctx, key, item):
                yield key, kpos, item, None
            else:
                yield key, kpos, item, child_condition(ctx, item, local)

    return not split, entries()


def _named_node(ctx: Ctx, yn: YMap, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Seq | None:
    """``sequential: {name: NODE, ...}`` → a Sequential with those children, in file order."""
    children: list[tuple[str, Decl]] = []
    child_pos: list[Pos] = []
    ok, named = named_children(ctx, yn, local)
    for key, kpos, child, present in named:
        if not present:
            ok = ok and present is not None
            continue
        decl = node(ctx, child, local, stack, depth + 1, as_child=True)
        if decl is None:
            ok = False
            continue
        children.append((key, decl))
        child_pos.append(kpos)
    if not ok:
        return None
    return Seq(items=tuple(children), pos=yn.pos, child_pos=tuple(child_pos))


def named_child_ok(ctx: Ctx, key: str, child: YNode) -> bool:
    """A child named by its key takes no ``name:`` and no ``repeat:``."""
    if isinstance(child, YMap):
        if "name" in child.entries:
            ctx.problems.add(child.key_pos["name"], f"child '{key}' is named by its key; 'name:' is not allowed here")
            return False
        if "repeat" in child.entries:
            hint = 'use a list with name: "layer{i}" and repeat'
            ctx.problems.add(child.key_pos["repeat"], "'repeat' is refused inside a named mapping", hint)
            return False
    return True


# --- calls and block uses ------------------------------------------------------------------------


def _call_node(ctx: Ctx, yn: YScalar, local: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> Decl | None:
    if not isinstance(yn.value, str) or not yn.value.strip():
        ctx.problems.add(yn.pos, f"expected a module, found {describe(yn)}", "write a call such as Linear(4, 8) or ReLU")
        return None
    text = yn.value
    try:
        call = parse_call(text)
    except ExprError as exc:
        hint = exc.hint
        if container_call(ctx, text.split("(", 1)[0].strip(), yn.pos):
            return None
        if text.count("(") != text.count(")"):
            hint = "YAML splits flow lists at commas: quote call strings with commas inside [...]"
        ctx.problems.add(yn.text_pos(1, exc.offset), exc.message, hint)
        return None
    return _call(ctx, call, yn, local, stack, depth, False)


def _call(
    ctx: Ctx, call: CallExpr, yn: YScalar, local: Mapping[str, Any], stack: tuple[str, ...], depth: int, argument: bool
) -> Decl | None:
    """A parsed call → a block use or a Leaf; an argument that is a call becomes the declaration of
    the module it builds (built first, then passed)."""
    try:
        args, kwargs = call.evaluate(ctx.scope(local))
    except ExprError as exc:
        ctx.problems.add(yn.text_pos(1, exc.offset), exc.message, exc.hint)
        return None
    values = [*args, *kwargs.values()]
    if any(isinstance(v, CallExpr) for v in values):
        built = [_call(ctx, v, yn, local, stack, depth, True) if isinstance(v, CallExpr) else v for v in values]
        if any(b is None for b, v in zip(built, values, strict=True) if isinstance(v, CallExpr)):
            return None
        args, kwargs = tuple(built[: len(args)]), dict(zip(kwargs, built[len(args) :], strict=True))
    return _resolve_call(ctx, call.name, args, kwargs, yn.pos, stack, depth, argument)


def _resolve_call(
    ctx: Ctx, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], pos: Pos, stack: tuple[str, ...], depth: int, argument: bool = False
) -> Decl | None:
    """A call by name: a block use, or a module class (checked against torch later, in ``build``)."""
    if name in ctx.blocks:
        return block_instance(ctx, name, args, kwargs, pos, stack, depth, None)
    if name in ctx.shared_names:
        ctx.problems.add(pos, f"'{name}' is a shared module, not a class", f"write ref: {name} (the same module) ")
        return None
    if container_call(ctx, name, pos):
        return None
    leaf = Leaf(type_name=name, args=args, kwargs=tuple(kwargs.items()), pos=pos, argument=argument)
    ctx.leaves.append(leaf)
    return leaf


def block_instance(
    ctx: Ctx,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pos: Pos,
    stack: tuple[str, ...],
    depth: int,
    with_pos: Pos | None,
) -> Decl | None:
    """A use of block ``name``: bind the arguments (positional to ``required`` then ``params``) and expand its body."""
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
        ctx.problems.add(pos, f"block '{name}' takes {len(order)} positional argument(s), {len(args)} given", block_signature(block))
        return None
    for pname, val in zip(order, args, strict=False):
        bound[pname] = val
    for kw, val in kwargs.items():
        if kw not in order:
            ctx.problems.add(with_pos or pos, f"block '{name}' has no parameter '{kw}'", did_you_mean(kw, order) or block_signature(block))
            return None
        if kw in bound:
            ctx.problems.add(with_pos or pos, f"block '{name}' got two values for '{kw}'")
            return None
        bound[kw] = val
    missing = [r for r in block.required if r not in bound]
    if missing:
        ctx.problems.add(pos, f"block '{name}' needs {', '.join(repr(m) for m in missing)}", block_signature(block))
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
    decl = node(ctx, block.body, bound, stack + (name,), depth)
    if decl is not None and key is not None:
        ctx.memo[key] = decl
    return decl
