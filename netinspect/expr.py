"""The restricted expression language of model files, evaluated over Python's ``ast`` (never ``eval``).

Allowed: literals (int, float, str, bool, None, lists, tuples), names from the scope,
``+ - * / // % **``, unary ``-``/``+``, and the constant conditions of SPEC §1.2: comparisons
``== != < <= > >=``, ``and``, ``or``, ``not``, ``A if COND else B``. Everything else (attribute
access, calls, subscripts, comprehensions, lambdas) is refused. Results are bounded so
that no expression can hang or exhaust memory.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import TextError, did_you_mean

MAX_INT = 2**63
MAX_SOURCE = 2_000
MAX_NODES = 500
MAX_SEQ = 10_000

BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
}

#: Python constructs no model-file expression, nor a written forward, may use
REFUSED_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Dict: "a dict literal",
    ast.Set: "a set literal",
    ast.Starred: "a starred expression",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Call: "a call",
    ast.Subscript: "a subscript",
    **REFUSED_CONSTRUCTS,
}


class ExprError(TextError):
    """An expression that cannot be parsed or evaluated; ``offset`` is 0-based in the source."""

    offset: int

    def __init__(self, message: str, offset: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint, offset=offset)


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed, checked expression; ``evaluate`` it against a scope."""

    source: str
    node: ast.expr

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _eval(self.node, scope)

    def names(self) -> set[str]:
        """The free names the expression refers to."""
        return {n.id for n in ast.walk(self.node) if isinstance(n, ast.Name)}


@dataclass(frozen=True, slots=True)
class CallExpr:
    """``name(args..., key=value...)`` with unevaluated arguments; a bare ``name`` has none. An
    argument that is itself a call (``TransformerEncoder(TransformerEncoderLayer(64, 4), 2)``) is
    a CallExpr: the caller decides what it builds (the model-file layer: a module argument)."""

    name: str
    args: tuple[Expr | CallExpr, ...]
    kwargs: tuple[tuple[str, Expr | CallExpr], ...]
    source: str
    name_offset: int = 0

    def evaluate(self, scope: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments' values; a call argument stays its CallExpr."""
        args = tuple(a if isinstance(a, CallExpr) else a.evaluate(scope) for a in self.args)
        kwargs = {k: v if isinstance(v, CallExpr) else v.evaluate(scope) for k, v in self.kwargs}
        return args, kwargs

    def is_bare(self) -> bool:
        return not self.args and not self.kwargs


def _parse(source: str) -> ast.expr:
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters")
    if not source.strip():
        raise ExprError("empty expression")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings of odd literals: the error says enough
            tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        offset = max((exc.offset or 1) - 1, 0)
        raise ExprError(f"invalid expression {_clip(source.strip())!r}: {exc.msg}", offset) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression too deeply nested") from None
    count = 0
    for _ in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise ExprError(f"expression has more than {MAX_NODES} parts")
    return tree.body


_REFUSED_TYPES = tuple(_REFUSED)


def _check(node: ast.expr) -> None:
    """Refuse everything outside the language, before anything is evaluated."""
    for sub in ast.walk(node):
        if isinstance(sub, _REFUSED_TYPES):
            what = next(w for k, w in _REFUSED.items() if isinstance(sub, k))
            raise ExprError(
                f"{what} is not allowed in expressions",
                getattr(sub, "col_offset", 0),
                "expressions allow literals, names of vars and block params, arithmetic, comparisons, and/or/not, A if C else B",
            )
        if isinstance(sub, ast.Constant) and not isinstance(sub.value, (int, float, str, bool, type(None))):
            raise ExprError(f"literal {sub.value!r} is not allowed", sub.col_offset)
        if isinstance(sub, ast.BinOp) and type(sub.op) not in BINOPS:
            raise ExprError("operator not allowed", sub.col_offset, "allowed: + - * / // % **")
        if isinstance(sub, ast.UnaryOp) and not isinstance(sub.op, (ast.USub, ast.UAdd, ast.Not)):
            raise ExprError("operator not allowed", sub.col_offset, "allowed: unary - and +, not")
        if isinstance(sub, ast.Compare) and not all(type(op) in COMPARISONS for op in sub.ops):
            raise ExprError("comparison not allowed", sub.col_offset, "allowed: == != < <= > >=")


def parse_expr(source: str) -> Expr:
    """Parse and check one expression."""
    node = _parse(source)
    _check(node)
    return Expr(source.strip(), node)


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of a name or an attribute chain; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _call_from_node(node: ast.expr, source: str) -> CallExpr:
    if isinstance(node, ast.Call):
        name = dotted(node.func)
        if name is None:
            raise ExprError(f"the call {_clip(_segment(source, node))!r} is not allowed: only NAME(...) or pkg.NAME(...)", node.col_offset)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExprError("starred arguments are not allowed", arg.col_offset)
        for kw in node.keywords:
            if kw.arg is None:
                raise ExprError("'**' arguments are not allowed", kw.value.col_offset)
        args = tuple(_argument(a, source) for a in node.args)
        kwargs = tuple((kw.arg, _argument(kw.value, source)) for kw in node.keywords if kw.arg)
        return CallExpr(name, args, kwargs, source.strip(), node.func.col_offset)
    name = dotted(node)
    if name is None:
        raise ExprError(
            f"{source.strip()!r} is not a name or a call",
            getattr(node, "col_offset", 0),
            "write a call such as Linear(4, 8) or a bare name such as ReLU",
        )
    return CallExpr(name, (), (), source.strip(), node.col_offset)


def _argument(node: ast.expr, source: str) -> Expr | CallExpr:
    """A call's argument: an expression, or a call of its own (a module built to be passed)."""
    if isinstance(node, ast.Call):
        return _call_from_node(node, source)
    _check(node)
    return Expr(_segment(source, node), node)


def _segment(source: str, node: ast.expr) -> str:
    if node.lineno == node.end_lineno == 1 and node.end_col_offset is not None:
        return source[node.col_offset : node.end_col_offset]
    return ast.get_source_segment(source, node) or ""


@lru_cache(maxsize=4096)
def parse_call(source: str) -> CallExpr:
    """Parse ``Name``, ``Name(...)`` or ``a.b.Name(...)``; arguments are checked expressions."""
    stripped = source.strip()
    return _call_from_node(_parse(stripped), stripped)


def parse_call_list(source: str) -> tuple[CallExpr, ...]:
    """Parse one call, or a ``[call, call, ...]`` list of them (init scheme chains)."""
    stripped = source.strip()
    node = _parse(stripped)
    if isinstance(node, (ast.List, ast.Tuple)):
        if not node.elts:
            raise ExprError("empty list of calls")
        return tuple(_call_from_node(e, stripped) for e in node.elts)
    return (_call_from_node(node, stripped),)


def _bound(value: Any, offset: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ExprError(f"integer out of range (limit 2**63): {_short(value)}", offset)
    if isinstance(value, float) and math.isinf(value):
        raise ExprError("float overflow", offset)
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SEQ:
        raise ExprError(f"value longer than {MAX_SEQ} elements", offset)
    return value


def _short(value: int) -> str:
    text = str(value) if value.bit_length() < 200 else f"about 2**{value.bit_length()}"
    return text


def _pow(left: Any, right: Any, offset: int) -> Any:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if isinstance(right, int) and isinstance(left, int) and not isinstance(left, bool) and right > 0:
            if abs(left) > 1 and right * math.log2(abs(left)) > 64:
                raise ExprError("result of '**' too large (limit 2**63)", offset)
        elif abs(right) > 1 and abs(left) > 1:
            try:
                if abs(float(right)) * math.log2(abs(float(left))) > 1000:
                    raise ExprError("result of '**' too large", offset)
            except (OverflowError, ValueError):
                raise ExprError("result of '**' too large", offset) from None
    try:
        result = left**right
    except ZeroDivisionError:
        raise ExprError("zero raised to a negative power", offset) from None
    except OverflowError:
        raise ExprError("result of '**' too large", offset) from None
    if isinstance(result, complex):
        raise ExprError("result of '**' is complex", offset)
    return result


def _binop(op: ast.operator, left: Any, right: Any, offset: int) -> Any:
    symbol = BINOPS[type(op)]
    if symbol == "**":
        return _pow(left, right, offset)
    if symbol == "*" and isinstance(left, (str, list, tuple)) != isinstance(right, (str, list, tuple)):
        seq, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if isinstance(count, int) and len(seq) * max(count, 0) > MAX_SEQ:
            raise ExprError(f"value longer than {MAX_SEQ} elements", offset)
    try:
        if symbol == "+":
            return left + right
        if symbol == "-":
            return left - right
        if symbol == "*":
            return left * right
        if symbol == "/":
            return left / right
        if symbol == "//":
            return left // right
        return left % right
    except ZeroDivisionError:
        raise ExprError("division by zero", offset) from None
    except OverflowError:
        raise ExprError(f"result of '{symbol}' too large", offset) from None
    except TypeError:
        raise ExprError(f"unsupported operand types for {symbol}: {type(left).__name__} and {type(right).__name__}", offset) from None


def apply_binop(op: ast.operator, left: Any, right: Any, offset: int = 0) -> Any:
    """``left OP right`` for constants (an operator of ``BINOPS``), bounded as expressions are (ExprError otherwise)."""
    return _bound(_binop(op, left, right, offset), offset)


def _eval(node: ast.expr, scope: Mapping[str, Any]) -> Any:
    offset = getattr(node, "col_offset", 0)
    if isinstance(node, ast.Constant):
        return _bound(node.value, offset)
    if isinstance(node, ast.Name):
        if node.id not in scope:
            raise ExprError(f"unknown name '{node.id}'", offset, did_you_mean(node.id, scope) or _names_hint(scope))
        return scope[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, scope)
    if isinstance(node, ast.BoolOp):  # and/or: Python's short-circuit, Python's result
        result = _eval(node.values[0], scope)
        for value_node in node.values[1:]:
            if bool(result) != isinstance(node.op, ast.And):
                return result
            result = _eval(value_node, scope)
        return result
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, scope) else node.orelse, scope)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, scope)
            try:
                ok = COMPARISONS[type(op)](left, right)
            except TypeError:
                raise ExprError(f"cannot compare {type(left).__name__} and {type(right).__name__}", offset) from None
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, scope)
        if not isinstance(value, (int, float)):
            raise ExprError(f"unary operator on {type(value).__name__}", offset)
        return _bound(-value if isinstance(node.op, ast.USub) else +value, offset)
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, scope)
        right = _eval(node.right, scope)
        return _bound(_binop(node.op, left, right, offset), offset)
    if isinstance(node, ast.List):
        return [_eval(e, scope) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, scope) for e in node.elts)
    raise ExprError(f"{type(node).__name__} is not allowed in expressions", offset)


def _names_hint(scope: Mapping[str, Any]) -> str:
    if not scope:
        return "define it under vars: or as a block parameter"
    names = ", ".join(sorted(scope)[:10])
    return f"names in scope: {names}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
