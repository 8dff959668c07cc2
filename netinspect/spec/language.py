"""The forward language's vocabulary: what the compiler refuses and how it names things."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from netinspect.expr import BINOPS, COMPARISONS

from .program import ChildInfo, DType, StepRef


@dataclass(frozen=True, slots=True)
class Child:
    path: str
    info: ChildInfo


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name


TORCH = Namespace("torch")
F_NAMESPACE = Namespace("F")

REFUSED_STATEMENTS: dict[type[ast.AST], str] = {
    ast.If: "an 'if' statement (write 'A if COND else B' with a constant COND, or 'if:' on a child)",
    ast.While: "a 'while' loop",
    ast.Import: "'import'",
    ast.ImportFrom: "'import'",
    ast.Global: "'global'",
    ast.Nonlocal: "'nonlocal'",
    ast.Delete: "'del'",
    ast.With: "'with'",
    ast.AsyncWith: "'async with'",
    ast.Try: "'try'",
    ast.Raise: "'raise'",
    ast.Assert: "'assert'",
    ast.FunctionDef: "a function definition",
    ast.AsyncFunctionDef: "a function definition",
    ast.ClassDef: "a class definition",
    ast.AsyncFor: "'async for'",
    ast.Pass: "'pass'",
    ast.Break: "'break'",
    ast.Continue: "'continue'",
    ast.AnnAssign: "an annotated assignment",
}
OPERATOR_NAMES: dict[type[ast.operator], str] = {**BINOPS, ast.MatMult: "@"}
HINT_LANGUAGE = "the forward language: assignments, 'for LAYER in CHILD:', one final 'return'; `netinspect ops` lists the calls"


def is_constant(v: Any) -> bool:
    return isinstance(v, (int, float)) or isinstance(v, str)


def has_ref(value: Any) -> bool:
    if isinstance(value, StepRef):
        return True
    if isinstance(value, (tuple, list)):
        return any(has_ref(v) for v in value)
    if isinstance(value, slice):
        return any(has_ref(v) for v in (value.start, value.stop, value.step))
    return False


def compare(op: ast.cmpop, left: Any, right: Any) -> bool | None:
    fn = COMPARISONS.get(type(op))
    return None if fn is None else fn(left, right)


def describe(value: Any) -> str:
    if isinstance(value, StepRef):
        return f"the value '{value.name}'"
    if isinstance(value, Child):
        return f"the child module '{value.path}'"
    if isinstance(value, Namespace):
        return f"the namespace '{value.name}'"
    if isinstance(value, DType):
        return f"torch.{value.name}"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return f"{type(value).__name__} {value!r}"
