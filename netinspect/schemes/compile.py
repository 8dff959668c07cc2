"""Scheme text → compiled steps: ``normal(std=0.01)``, ``[uniform(-10, 10), mask_abs_below(5)]``, arguments checked (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from netinspect.errors import did_you_mean
from netinspect.expr import CallExpr, Expr, ExprError, parse_call_list

from .registry import FAN_MODES, NONLINEARITIES, SchemeError, SchemeParam, SchemeStep, lookup, scalar

_ARGS_HINT = "scheme arguments are numbers, arithmetic on numbers, or quoted strings"
_SYNTAX_HINT = "write e.g. xavier_uniform, normal(std=0.01) or [uniform(-10, 10), mask_abs_below(5)]; " + _ARGS_HINT
_SPLIT_HINT = (
    "YAML splits an unquoted flow list at every comma; quote call strings that contain commas, "
    'e.g. ["uniform(-10, 10)", mask_abs_below(5)], or use a block list'
)


def compile_scheme(value: str | Sequence[str]) -> tuple[SchemeStep, ...]:
    """Compile a scheme: one call string, a ``[call, ...]`` chain string, or a list of call strings."""
    if isinstance(value, str):
        steps = tuple(_compile_call(call, value, None) for call in _parse(value, None))
    elif isinstance(value, (list, tuple)):
        if not value:
            raise SchemeError("empty scheme list", "a chain needs at least one scheme, e.g. [normal(std=0.01)]")
        collected: list[SchemeStep] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SchemeError(
                    f"scheme list item {index} is {_type_name(item)}, not a call string",
                    _literal_hint(item),
                    index=index,
                )
            calls = _parse(item, index)
            if len(calls) != 1 or item.lstrip().startswith(("[", "(")):
                raise SchemeError(
                    f"scheme list item {index} is itself a list; chains do not nest",
                    "write each call as its own list item",
                    index=index,
                )
            collected.append(_compile_call(calls[0], item, index))
        steps = tuple(collected)
    else:
        raise SchemeError(f"a scheme is a call string or a list of them, not {_type_name(value)}", _literal_hint(value))
    _check_chain(steps)
    return steps


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", dict: "a mapping"}.get(type(value), type(value).__name__)


def _literal_hint(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"to fill with a number write constant({value})"
    return 'e.g. xavier_uniform, normal(std=0.01) or ["uniform(-10, 10)", mask_abs_below(5)]'


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def _parse(text: str, index: int | None) -> tuple[CallExpr, ...]:
    try:
        return parse_call_list(text)
    except ExprError as exc:
        hint = _SPLIT_HINT if index is not None and text.count("(") != text.count(")") else _SYNTAX_HINT
        raise SchemeError(f"invalid scheme {text.strip()!r}: {exc.message}", hint, index=index, offset=exc.offset + _lead(text)) from None


def _compile_call(call: CallExpr, text: str, index: int | None) -> SchemeStep:
    lead = _lead(text)
    try:
        info = lookup(call.name)
    except SchemeError as exc:
        exc.index, exc.offset = index, call.name_offset + lead
        raise
    params = info.params
    names = [p.name for p in params]

    def fail(message: str, hint: str | None, expr: Expr | None = None) -> SchemeError:
        offset = call.name_offset if expr is None else expr.node.col_offset
        return SchemeError(f"{info.name}: {message}", hint, index=index, offset=offset + lead)

    sig_hint = f"signature: {info.signature()}"
    if len(call.args) > len(params):
        expected = f"at most {len(params)} argument{'s' if len(params) != 1 else ''}" if params else "no arguments"
        raise fail(f"takes {expected}, got {len(call.args)}", sig_hint)
    given: dict[str, tuple[object, Expr]] = {}
    pairs = [(names[i], expr) for i, expr in enumerate(call.args)] + list(call.kwargs)
    for key, expr in pairs:
        if isinstance(expr, CallExpr):
            raise SchemeError(
                f"{info.name}: a call is not allowed in scheme arguments ({expr.source})", _ARGS_HINT, index=index, offset=lead
            )
        if key not in names:
            raise fail(f"unknown argument '{key}'", did_you_mean(key, names) or sig_hint, expr)
        if key in given:
            raise fail(f"got more than one value for '{key}'", sig_hint, expr)
        given[key] = (_evaluate(expr, key, fail), expr)
    for param in params:
        if param.required and param.name not in given:
            raise fail(f"missing required argument '{param.name}'", sig_hint)
        if param.name in given:
            value, expr = given[param.name]
            problem = _type_problem(param, value)
            if problem is not None:
                raise fail(problem[0], problem[1] or sig_hint, expr)
    bound = {p.name: (given[p.name][0] if p.name in given else p.default) for p in params}
    problem = _value_problem(info.name, bound)
    if problem is not None:
        raise fail(problem[0], problem[1])
    args = tuple(given[names[i]][0] for i in range(len(call.args)))
    kwargs = tuple((key, given[key][0]) for key, _ in call.kwargs)
    return SchemeStep(info.name, args, kwargs)


def _evaluate(expr: Expr, key: str, fail: Callable[[str, str | None, Expr | None], SchemeError]) -> object:
    names = sorted(expr.names())
    if names:
        bare = names[0]
        hint = f"quote it: {key}='{bare}'" if bare in NONLINEARITIES or bare in FAN_MODES else _ARGS_HINT
        raise fail(f"unknown name '{bare}' in argument '{key}'", hint, expr)
    try:
        return expr.evaluate({})
    except ExprError as exc:
        raise fail(f"argument '{key}': {exc.message}", _ARGS_HINT, expr) from None


def _type_problem(param: SchemeParam, value: object) -> tuple[str, str | None] | None:
    if param.kind == "choice":
        if isinstance(value, str) and value in param.choices:
            return None
        choices = ", ".join(repr(c) for c in param.choices)
        close = did_you_mean(value, param.choices) if isinstance(value, str) else None
        return f"{param.name} must be one of {choices}, got {value!r}", close or f"e.g. {param.name}={param.default!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        want = "an integer" if param.kind == "int" else "a number"
        return f"{param.name} must be {want}, got {_type_name(value)} {value!r}", None
    if param.kind == "int" and not isinstance(value, int):
        return f"{param.name} must be an integer, got {value!r}", None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{param.name} must be finite, got {value!r}", None
    return None


def _value_problem(name: str, b: dict[str, object]) -> tuple[str, str | None] | None:
    """Values torch would refuse (or silently mishandle), found before anything runs."""

    def f(key: str) -> float:
        return float(scalar(b[key]))

    if name == "uniform" and f("a") > f("b"):
        return f"a must not exceed b, got a={b['a']!r}, b={b['b']!r}", "write uniform(low, high)"
    if name in ("normal", "sparse") and f("std") < 0:
        return f"std must be >= 0, got {b['std']!r}", None
    if name == "trunc_normal":
        if f("std") <= 0:
            return f"std must be > 0, got {b['std']!r}", None
        if f("a") > f("b"):
            return (
                f"a must not exceed b, got a={b['a']!r}, b={b['b']!r}",
                "a and b are absolute bounds, not multiples of std",
            )
    if name in ("xavier_uniform", "xavier_normal") and f("gain") < 0:
        return f"gain must be >= 0, got {b['gain']!r}", None
    if name == "sparse" and not 0 <= f("sparsity") <= 1:
        return (
            f"sparsity must be between 0 and 1, got {b['sparsity']!r}",
            "it is the fraction of each column set to zero",
        )
    if name == "dirac" and f("groups") < 1:
        return f"groups must be >= 1, got {b['groups']!r}", None
    return None


def _check_chain(steps: tuple[SchemeStep, ...]) -> None:
    if len(steps) > 1 and any(s.name == "default" for s in steps):
        raise SchemeError(
            "'default' cannot be combined with other schemes in a chain",
            "write default alone, or chain explicit schemes, e.g. [kaiming_uniform(a=5 ** 0.5), scale(0.5)]",
        )
