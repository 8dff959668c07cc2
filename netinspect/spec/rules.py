"""``init:`` rules and ``tie:`` entries."""

from __future__ import annotations

from netinspect import yamlpos
from netinspect.errors import Problems, did_you_mean
from netinspect.schemes import SchemeError, SchemeStep, compile_scheme
from netinspect.yamlpos import YMap, YNode, YScalar, YSeq

from .context import Ctx
from .ir import Rule, Tie
from .values import check_keys, describe

RULE_KEYS = ("target", "types", "doc")


def parse_rules(problems: Problems, node: YNode) -> tuple[Rule, ...]:
    """An ``init:`` value: a list of RULEs (or one RULE mapping)."""
    if isinstance(node, YMap):
        items: list[YNode] = [node]
    elif isinstance(node, YSeq):
        items = node.items
    else:
        problems.add(node.pos, "'init:' is a list of rules", "init: [{target: '0', weight: xavier_uniform}]")
        return ()
    rules: list[Rule] = []
    for item in items:
        rule = parse_rule(problems, item)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def parse_rule(problems: Problems, item: YNode) -> Rule | None:
    """One RULE mapping → Rule (None after a reported problem)."""
    if not isinstance(item, YMap):
        problems.add(item.pos, f"an init rule is a mapping, found {describe(item)}", "- {target: '0', weight: xavier_uniform, bias: zeros}")
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
            steps = _scheme(problems, key, value)
            if steps is None:
                ok = False
            else:
                params.append((key, steps))
    if ok and not params:
        problems.add(item.pos, "the rule sets no parameter", "add e.g. weight: xavier_uniform")
        return None
    if not ok:
        return None
    types_pos = item.entries["types"].pos if "types" in item.entries else None
    return Rule(target, types, tuple(params), item.pos, types_pos)


def _scheme(problems: Problems, key: str, value: YNode) -> tuple[SchemeStep, ...] | None:
    """The SCHEME a rule gives parameter ``key`` (a misspelt rule key is hinted as such)."""
    near = did_you_mean(key, RULE_KEYS)
    typo = near and f"is '{key}' a typo? {near}"
    return scheme_steps(problems, value, f"the scheme for '{key}' must be a call string or a list of them", typo, typo)


def scheme_steps(
    problems: Problems, node: YNode, message: str, hint: str | None, error_hint: str | None = None
) -> tuple[SchemeStep, ...] | None:
    """A SCHEME node (a call string or a non-empty list of them) compiled; None after a problem:
    ``message``/``hint`` when it is neither, the scheme's own error (``error_hint`` over its hint) otherwise."""
    raw = yamlpos.plain(node)
    if not (isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw))):
        problems.add(node.pos, message, hint)
        return None
    try:
        return compile_scheme(raw)
    except SchemeError as exc:
        problems.add(node.pos, exc.message, error_hint or exc.hint)
        return None


def parse_ties(ctx: Ctx, node: YNode) -> tuple[Tie, ...]:
    items = node.items if isinstance(node, YSeq) else [node]
    ties: list[Tie] = []
    for item in items:
        if not isinstance(item, YMap):
            ctx.problems.add(item.pos, "a tie is a mapping {param: PATH, to: PATH}", "tie: [{param: head.weight, to: embed.weight}]")
            continue
        check_keys(ctx, item, ("param", "to", "doc"), "tie key")
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
