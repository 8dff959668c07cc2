"""A graph module's ``forward:`` text → a ``Program``: numbered steps, checked, with positions.

The text is parsed with ``ast`` and compiled here, without torch: every name resolved (inputs,
bound names, children, ``param``/``buffer`` entries, vars and block parameters as constants),
every call checked against the allow-list (``netinspect.ops``), ``for LAYER in CHILD:`` unrolled
over the sequential child, constant conditions decided, constant arithmetic folded. Nothing is
evaluated but constants. A refused construct is a ``ForwardError`` at the offending token; the
build layer turns the steps into one ``torch.fx.Graph`` per distinct program.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from netinspect import ops
from netinspect.errors import did_you_mean
from netinspect.expr import MAX_INT, REFUSED_CONSTRUCTS, ExprError, apply_binop, dotted

from .language import (
    F_NAMESPACE,
    HINT_LANGUAGE,
    OPERATOR_NAMES,
    REFUSED_STATEMENTS,
    TORCH,
    Child,
    Namespace,
    compare,
    describe,
    has_ref,
    is_constant,
)
from .program import ChildInfo, DType, ForwardError, Program, Step, StepRef

__all__ = ["ChildInfo", "DType", "ForwardError", "Program", "Step", "StepRef", "compile_forward"]

MAX_FORWARD_CHARS = 100_000
MAX_STEPS = 100_000
MAX_NESTING = 200

ConstType = Union[int, float, bool, str, None]


@dataclass
class _Compiler:
    inputs: tuple[str, ...]
    children: Mapping[str, ChildInfo]
    entries: frozenset[str]
    constants: Mapping[str, Any]
    granted: Mapping[str, str]
    steps: list[Step] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, StepRef] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    decisions: dict[tuple[int, int], bool] = field(default_factory=dict)
    used_constants: dict[str, Any] = field(default_factory=dict)
    depth: int = 0
    loops: list[ast.For] = field(default_factory=list)  # the loops being unrolled, innermost last

    # --- steps ----------------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """A step name not taken yet: ``hint``, else ``hint_1``, ``hint_2``, …"""
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in hint).strip("_") or "v"
        if base[0].isdigit():
            base = "v_" + base
        name, n = base, self.counters.get(base, 0)
        if n:
            name = f"{base}_{n}"
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.counters[base] = n + 1
        self.taken.add(name)
        return name

    def add(self, op: str, target: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...], node: ast.AST, hint: str) -> StepRef:
        if len(self.steps) >= MAX_STEPS:
            at = self.loops[-1] if self.loops else node
            raise self.error(at, f"the forward unrolls to more than {MAX_STEPS:,} steps", "a 'for' over a very long sequential?")
        name = self.fresh(hint)
        self.steps.append(Step(name, op, target, args, kwargs, getattr(node, "lineno", 0), getattr(node, "col_offset", 0)))
        return StepRef(name)

    def rename_last(self, ref: Any, target: str) -> Any:
        """Name the step that an assignment just created after its target (``out = relu(x)`` → ``out``)."""
        if isinstance(ref, StepRef) and self.steps and self.steps[-1].name == ref.name and self.steps[-1].op != "input":
            step = self.steps[-1]
            self.taken.discard(step.name)  # the last step: nothing refers to it yet
            new = self.fresh(target)
            self.steps[-1] = Step(new, step.op, step.target, step.args, step.kwargs, step.line, step.col)
            return StepRef(new)
        return ref

    def error(self, node: ast.AST, message: str, hint: str | None = None) -> ForwardError:
        """A problem at ``node``; for an attribute (``x.name``), at its name."""
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        if isinstance(node, ast.Attribute) and node.end_lineno == line and node.end_col_offset is not None:
            col = node.end_col_offset - len(node.attr)
        return ForwardError(message, line, col, hint)

    # --- statements -----------------------------------------------------------------------------

    def run(self, body: list[ast.stmt]) -> Any:
        for name in self.inputs:
            self.env[name] = self.add("input", name, (), (), ast.Pass(lineno=0, col_offset=0), name)
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.Return):
                if i != len(body) - 1:
                    raise self.error(stmt, "'return' must be the last statement of the forward", HINT_LANGUAGE)
                if stmt.value is None:
                    raise self.error(stmt, "'return' needs a value", "return EXPR")
                return self.expr(stmt.value)
            self.statement(stmt)
        last = body[-1] if body else None
        raise ForwardError(
            "the forward has no 'return'", getattr(last, "lineno", 1), getattr(last, "col_offset", 0), "end it with return EXPR"
        )

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.error(stmt, "chained assignment (a = b = ...) is not allowed", "one target per assignment")
            self.assign(stmt.targets[0], stmt.value)
        elif isinstance(stmt, ast.For):
            self.loop(stmt)
        elif isinstance(stmt, ast.AugAssign):
            op = OPERATOR_NAMES.get(type(stmt.op), "?")
            raise self.error(stmt, f"augmented assignment '{op}=' is not allowed (on tensors it works in place)", f"write x = x {op} y")
        elif isinstance(stmt, ast.Expr):
            raise self.error(stmt, "a value that is not assigned", "assign it (y = ...) or leave it out: a forward has no side effects")
        elif isinstance(stmt, ast.Return):
            raise self.error(stmt, "'return' inside a loop", HINT_LANGUAGE)
        else:
            what = next((w for k, w in REFUSED_STATEMENTS.items() if isinstance(stmt, k)), type(stmt).__name__)
            raise self.error(stmt, f"{what} is not allowed in forward", HINT_LANGUAGE)

    def bind(self, target: ast.expr, value: Any) -> None:
        if not isinstance(target, ast.Name):
            where = ForwardError("only names can be assigned to", target.lineno, target.col_offset, "write NAME = EXPR or A, B = EXPR")
            raise where
        name = target.id
        self.check_name(target, name)
        if name in self.children:
            raise self.error(target, f"'{name}' is a child module; it cannot be assigned to", "pick another name")
        if name in self.entries:
            raise self.error(target, f"'{name}' is a param/buffer entry; it cannot be assigned to", "pick another name")
        if name in self.constants and name not in self.env:
            raise self.error(target, f"'{name}' is a var or block parameter; it cannot be assigned to", "pick another name")
        if name in ("torch", "F"):
            raise self.error(target, f"'{name}' cannot be assigned to")
        self.env[name] = value

    def assign(self, target: ast.expr, value_node: ast.expr) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            value = self.expr(value_node)
            if isinstance(value, StepRef):
                parts: list[Any] = [
                    self.add("call_function", "getitem", (value, i), (), elt, elt.id if isinstance(elt, ast.Name) else "item")
                    for i, elt in enumerate(target.elts)
                ]
            elif isinstance(value, (tuple, list)) and len(value) == len(target.elts):
                parts = list(value)
            else:
                raise self.error(value_node, f"cannot unpack {describe(value)} into {len(target.elts)} names")
            for elt, part in zip(target.elts, parts, strict=True):
                self.bind(elt, part)
            return
        value = self.expr(value_node)
        if isinstance(target, ast.Name):
            value = self.rename_last(value, target.id)
        self.bind(target, value)

    def loop(self, stmt: ast.For) -> None:
        if stmt.orelse:
            raise self.error(stmt.orelse[0], "'for ... else' is not allowed", HINT_LANGUAGE)
        if not isinstance(stmt.target, ast.Name):
            raise self.error(stmt.target, "the loop variable is one name: for LAYER in CHILD:", HINT_LANGUAGE)
        over = self.expr(stmt.iter) if not isinstance(stmt.iter, ast.Name) else self.lookup(stmt.iter)
        if not (isinstance(over, Child) and over.info.kind == "seq"):
            raise self.error(
                stmt.iter,
                f"'for' runs over a sequential child, not {describe(over)}",
                "for LAYER in CHILD: where CHILD is a list or sequential: in modules:",
            )
        self.loops.append(stmt)
        for name, info in over.info.items:
            if info.exists:
                self.bind(stmt.target, Child(f"{over.path}.{name}", info))
                for inner in stmt.body:
                    self.statement(inner)
        self.loops.pop()

    # --- expressions ----------------------------------------------------------------------------

    def check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") or name.endswith("__"):
            raise self.error(node, f"the name '{name}' is not allowed (dunder names are refused)", HINT_LANGUAGE)

    def lookup(self, node: ast.Name) -> Any:
        name = node.id
        self.check_name(node, name)
        if name in self.env:
            return self.env[name]
        if name in self.children:
            return Child(name, self.children[name])
        if name in self.entries:
            if name not in self.attrs:
                self.attrs[name] = self.add("get_attr", name, (), (), node, name)
            return self.attrs[name]
        if name in self.constants:
            self.used_constants[name] = self.constants[name]
            return self.constants[name]
        if name == "torch":
            return TORCH
        if name == "F":
            return F_NAMESPACE
        known = [*self.env, *self.children, *self.entries, *self.constants]
        raise self.error(node, f"unknown name '{name}'", did_you_mean(name, known) or "names here: " + ", ".join(sorted(known)[:12]))

    def expr(self, node: ast.expr) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.error(node, f"an expression nested deeper than {MAX_NESTING} levels", "bind parts to names")
            return self.expr_at(node)
        finally:
            self.depth -= 1

    def expr_at(self, node: ast.expr) -> Any:
        # what expressions refuse; attributes, calls and subscripts are checked below against the allow-list
        refused = next((w for k, w in REFUSED_CONSTRUCTS.items() if isinstance(node, k)), None)
        if refused is not None:
            raise self.error(node, f"{refused} is not allowed in forward", HINT_LANGUAGE)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (bool, int, float, str, type(None))) or node.value is Ellipsis:
                if isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) > MAX_INT:
                    raise self.error(node, "integer out of range (limit 2**63)")
                return node.value
            raise self.error(node, f"the literal {node.value!r} is not allowed", "numbers, strings, True, False, None")
        if isinstance(node, ast.Name):
            value = self.lookup(node)
            if isinstance(value, Namespace):
                raise self.error(node, f"'{value.name}' is a namespace: call {value.name}.NAME(...)", "`netinspect ops` lists them")
            return value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.expr(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.expr(p) for p in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            return self.condition(node)
        if isinstance(node, ast.IfExp):
            decided = bool(self.condition(node.test))
            self.decisions[(node.lineno, node.col_offset)] = decided
            return self.expr(node.body if decided else node.orelse)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            obj = self.expr(node.value)
            index = self.expr(node.slice)
            if isinstance(obj, StepRef) or has_ref(index):
                return self.add("call_function", "getitem", (obj, index), (), node, "getitem")
            try:
                return obj[index]
            except (TypeError, IndexError, KeyError) as exc:
                raise self.error(node, f"cannot index {describe(obj)}: {exc}") from None
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.error(node, f"{type(node).__name__} is not allowed in forward", HINT_LANGUAGE)

    def binop(self, node: ast.BinOp) -> Any:
        symbol = OPERATOR_NAMES.get(type(node.op))
        if symbol is None:
            raise self.error(node, "this operator is not allowed", "allowed: + - * / // % ** @")
        left, right = self.expr(node.left), self.expr(node.right)
        if is_constant(left) and is_constant(right) and symbol != "@":
            try:
                return apply_binop(node.op, left, right, node.col_offset)
            except ExprError as exc:
                raise self.error(node, exc.message, exc.hint) from None
        for side in (left, right):
            if isinstance(side, (Child, Namespace)):
                raise self.error(node, f"{describe(side)} is not a value", "call it: child(x)")
        return self.add("call_function", f"operator.{ops.BINARY_OPERATORS[symbol]}", (left, right), (), node, ops.BINARY_OPERATORS[symbol])

    def unary(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return self.condition(node)
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.error(node, "this operator is not allowed", "allowed: unary - and +")
        value = self.expr(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else +value
        if not isinstance(value, StepRef):
            raise self.error(node, f"unary minus on {describe(value)}")
        name = ops.UNARY_OPERATORS["-" if isinstance(node.op, ast.USub) else "+"]
        return self.add("call_function", f"operator.{name}", (value,), (), node, name)

    def condition(self, node: ast.expr) -> Any:
        """A constant condition: comparisons, and/or/not over vars, block params and child names (true
        when the child exists). A tensor in a condition is refused: the graph has no control flow."""

        def value(n: ast.expr) -> Any:
            if isinstance(n, ast.Name) and n.id in self.children and n.id not in self.env:
                return self.children[n.id].exists
            if isinstance(n, (ast.Compare, ast.BoolOp)) or (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)):
                return self.condition(n)
            v = self.expr(n)
            if isinstance(v, (StepRef, Child, Namespace, DType)):
                raise self.error(
                    n, f"a condition must be constant; {describe(v)} is not", "conditions see vars, block params and child names"
                )
            return v

        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(value(v) for v in node.values)
            return any(value(v) for v in node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not value(node.operand)
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = value(comp)
                try:
                    ok = compare(op, left, right)
                except TypeError:
                    raise self.error(node, f"cannot compare {describe(left)} and {describe(right)}") from None
                if ok is None:
                    raise self.error(node, "this comparison is not allowed", "allowed: == != < <= > >=")
                if not ok:
                    return False
                left = right
            return True
        return bool(value(node))

    def attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == "torch" and "torch" not in self.env:
            self.check_name(node, node.attr)
            if node.attr in ops.DTYPE_CONSTANTS:
                return DType(node.attr)
            raise self.error(node, f"'torch.{node.attr}' is not allowed here", "torch.NAME(...) calls and torch.<dtype> constants")
        obj = self.expr(node.value)  # the object first: errors come in reading order
        self.check_name(node, node.attr)
        if isinstance(obj, StepRef):
            if node.attr in ops.ATTRIBUTES:
                return self.add("call_function", "getattr", (obj, node.attr), (), node, node.attr)
            hint = did_you_mean(node.attr, ops.ATTRIBUTES) or "allowed attributes: " + ", ".join(ops.ATTRIBUTES)
            raise self.error(node, f"the attribute '.{node.attr}' is not allowed", hint)
        if isinstance(obj, Child):
            raise self.error(node, f"'{obj.path}' is a child module: call it, its attributes are not reachable", "child(x)")
        raise self.error(node, f"'.{node.attr}' on {describe(obj)} is not allowed", HINT_LANGUAGE)

    def arguments(self, node: ast.Call) -> tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]:
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.error(a, "'*' arguments are not allowed", "pass each argument")
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(kw, "'**' arguments are not allowed", "pass each keyword argument")
        args = tuple(self.expr(a) for a in node.args)
        kwargs = tuple((kw.arg, self.expr(kw.value)) for kw in node.keywords if kw.arg is not None)
        for value in (*args, *(v for _, v in kwargs)):
            if isinstance(value, (Child, Namespace)):
                raise self.error(node, f"{describe(value)} cannot be passed as an argument", "pass tensors and constants")
        return args, kwargs

    def call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            head = func.value
            if isinstance(head, ast.Name) and head.id in ("torch", "F") and head.id not in self.env:
                table = ops.TORCH_FUNCTIONS if head.id == "torch" else ops.F_FUNCTIONS
                self.check_name(func, func.attr)
                if func.attr not in table:
                    near = did_you_mean(func.attr, table)
                    raise self.error(
                        func, f"'{head.id}.{func.attr}' is not in the allow-list", near or "`netinspect ops` lists the allowed calls"
                    )
                args, kwargs = self.arguments(node)
                return self.add("call_function", f"{head.id}.{func.attr}", args, kwargs, node, func.attr)
            name = dotted(func)
            if name is not None and name in self.granted:
                args, kwargs = self.arguments(node)
                return self.add("call_function", self.granted_target(name), args, kwargs, node, func.attr)
            obj = self.expr(head)  # the object first: errors come in reading order
            self.check_name(func, func.attr)
            if isinstance(obj, StepRef):
                if func.attr not in ops.METHODS:
                    near = did_you_mean(func.attr, ops.METHODS)
                    raise self.error(
                        func, f"the method '.{func.attr}()' is not in the allow-list", near or "`netinspect ops` lists the methods"
                    )
                args, kwargs = self.arguments(node)
                return self.add("call_method", func.attr, (obj, *args), kwargs, node, func.attr)
            if isinstance(obj, Child):
                raise self.error(func, f"'{obj.path}' is a child module: call it, its methods are not reachable", "child(x)")
            raise self.error(func, f"'.{func.attr}()' on {describe(obj)} is not allowed", HINT_LANGUAGE)
        if isinstance(func, ast.Name):
            if func.id in self.granted and func.id not in self.env and func.id not in self.children:
                args, kwargs = self.arguments(node)
                return self.add("call_function", self.granted_target(func.id), args, kwargs, node, func.id)
            target = self.lookup(func)
            if isinstance(target, Child):
                return self.call_child(node, target)
            if isinstance(target, Namespace):
                raise self.error(func, f"'{target.name}' is a namespace: call {target.name}.NAME(...)")
            hint = "only children are called by name; functions are torch.NAME(...), F.NAME(...) or granted with --allow pkg.mod:func"
            raise self.error(func, f"'{func.id}' is {describe(target)}, not a module", hint)
        raise self.error(func, "only children, torch.NAME, F.NAME and tensor methods can be called", HINT_LANGUAGE)

    def granted_target(self, name: str) -> str:
        return "grant:" + self.granted[name]

    def call_child(self, node: ast.Call, child: Child) -> StepRef:
        info = child.info
        if not info.exists:
            raise self.error(
                node.func, f"the child '{child.path}' does not exist here (its 'if:' is false)", "guard the call: child(x) if child else x"
            )
        args, kwargs = self.arguments(node)
        if info.kind == "seq" and (len(args) != 1 or kwargs):
            raise self.error(node, f"'{child.path}' is a Sequential: it takes one input, got {len(args) + len(kwargs)}", "child(x)")
        if info.kind == "graph":
            names = list(info.inputs)
            given = len(args) + len(kwargs)
            unknown = [k for k, _ in kwargs if k not in names]
            twice = [k for k, _ in kwargs if k in names[: len(args)]]
            if len(args) > len(names) or unknown or twice or given != len(names):
                sig = f"{child.path}({', '.join(names)})"
                raise self.error(node, f"'{child.path}' takes {len(names)} input(s) ({', '.join(names)}), got {given}", f"call it as {sig}")
        self.used.add(child.path)
        return self.add("call_module", child.path, args, kwargs, node, child.path.rsplit(".", 1)[-1])


def compile_forward(
    text: str,
    *,
    inputs: tuple[str, ...],
    children: Mapping[str, ChildInfo],
    entries: frozenset[str],
    constants: Mapping[str, Any],
    granted: Mapping[str, str] | None = None,
) -> Program:
    """Parse and compile forward ``text``; raises ForwardError at the first refused construct."""
    if len(text) > MAX_FORWARD_CHARS:
        raise ForwardError(f"the forward is longer than {MAX_FORWARD_CHARS:,} characters", 1, 0, "split it into blocks")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="exec")
    except SyntaxError as exc:
        line, col = exc.lineno or 1, max((exc.offset or 1) - 1, 0)
        raise ForwardError(f"invalid forward: {exc.msg}", line, col, HINT_LANGUAGE) from None
    except (RecursionError, MemoryError, ValueError):
        raise ForwardError("the forward is nested too deeply", 1, 0) from None
    for name in inputs:
        if name in children or name in entries:
            raise ForwardError(f"the input '{name}' has the name of a child or entry", 1, 0, "rename one of them")
    lines = tuple(text.splitlines())
    compiler = _Compiler(inputs, children, entries, constants, granted or {})
    try:
        output = compiler.run(tree.body)
    except RecursionError:
        raise ForwardError("the forward is nested too deeply", 1, 0) from None
    return Program(
        inputs,
        tuple(compiler.steps),
        output,
        lines,
        frozenset(compiler.used),
        tuple(compiler.decisions.items()),
        tuple(compiler.used_constants.items()),
    )
