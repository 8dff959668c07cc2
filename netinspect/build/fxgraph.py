"""Compiled forwards: a graph declaration's steps → one ``torch.fx.Graph``, its generated Python
``forward``, and a module class that prints as the declared class.

Each distinct program is turned into an fx graph and compiled once (``fx.Graph.python_code``);
every graph declaration gets one ``nn.Module`` subclass named after its ``class:`` whose
``forward`` is that compiled code, shared by all its instances. Instances are plain modules whose
constructor registers the ``modules:`` entries in order, exactly as a hand-written class does:
``print(model)``, ``state_dict()`` order and ``named_parameters()`` are those of the hand-written
class. (An ``fx.GraphModule`` instance per module would copy only the children its graph uses, in
first-use order, make a class per instance and print its code; the class keeps ``graph`` and
``code`` for those who want them.) While ``netinspect.tracing`` has a listener, a graph module
runs its graph node by node and reports each step.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import itertools
import linecache
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import fx, nn

from netinspect import tracing
from netinspect.errors import Pos, Problem
from netinspect.spec import Graph
from netinspect.spec.forward import DType, Program, Step, StepRef

_COUNTER = itertools.count()


@dataclass(frozen=True, slots=True)
class Compiled:
    """A program compiled once: its fx graph, generated source and forward function, and for each
    generated source line the step it runs (for the position of a failing step)."""

    graph: fx.Graph
    code: str
    forward: Callable[..., Any]
    filename: str
    line_steps: dict[int, int]  # line of the generated source -> index into the program's steps


_COMPILED: dict[Any, Compiled] = {}


class GraphModule(nn.Module):
    """Base of every compiled graph class: a module whose forward is a compiled fx graph."""

    graph: ClassVar[fx.Graph]
    code: ClassVar[str]
    program: ClassVar[Program]
    step_pos: ClassVar[tuple[Pos, ...]]
    _compiled: ClassVar[Compiled]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if tracing.active():
            return _Stepper(self).run(*_positional(type(self).program.inputs, args, kwargs))
        return type(self)._compiled.forward(self, *args, **kwargs)

    @classmethod
    def failing_step(cls, exc: BaseException) -> Pos | None:
        """Where in the file the step that raised ``exc`` (in this class's forward) was written."""
        stepped = getattr(exc, "netinspect_step", None)
        if isinstance(stepped, Pos):
            return stepped
        tb, line = exc.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == cls._compiled.filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        index = cls._compiled.line_steps.get(line) if line is not None else None
        return cls.step_pos[index] if index is not None else None


def graph_class(decl: Graph, resolve: Callable[[str], Callable[..., Any]]) -> type[GraphModule]:
    """The module class of a graph declaration (its program compiled once per process)."""
    program = decl.program
    key = program.key()
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = _compile(program, resolve)
    attrs = {
        "__module__": "netinspect.graphs",
        "__qualname__": decl.class_name,
        "__doc__": f"{decl.class_name}: a module compiled from a written forward.",
        "graph": compiled.graph,
        "code": compiled.code,
        "program": program,
        "step_pos": decl.step_pos,
        "_compiled": compiled,
    }
    return type(decl.class_name, (GraphModule,), attrs)


def _compile(program: Program, resolve: Callable[[str], Callable[..., Any]]) -> Compiled:
    graph = fx.Graph()
    nodes: dict[str, fx.Node] = {}

    def arg(value: Any) -> Any:
        if isinstance(value, StepRef):
            return nodes[value.name]
        if isinstance(value, DType):
            return getattr(torch, value.name)
        if isinstance(value, tuple):
            return tuple(arg(v) for v in value)
        if isinstance(value, list):
            return [arg(v) for v in value]
        if isinstance(value, slice):
            return slice(arg(value.start), arg(value.stop), arg(value.step))
        return value

    order: dict[fx.Node, int] = {}
    for index, step in enumerate(program.steps):
        args = tuple(arg(a) for a in step.args)
        kwargs = {k: arg(v) for k, v in step.kwargs}
        if step.op == "input":
            node = graph.placeholder(step.name)
        elif step.op == "get_attr":
            node = graph.get_attr(step.target)
        elif step.op == "call_module":
            node = graph.create_node("call_module", step.target, args, kwargs, name=step.name)
        elif step.op == "call_method":
            node = graph.create_node("call_method", step.target, args, kwargs, name=step.name)
        else:
            node = graph.create_node("call_function", resolve(step.target), args, kwargs, name=step.name)
        node.meta["netinspect_step"] = index
        nodes[step.name] = node
        order[node] = index
    graph.output(arg(program.output))
    graph.lint()
    python = graph.python_code(root_module="self")
    filename = f"<netinspect graph {next(_COUNTER)}>"
    namespace: dict[str, Any] = dict(python.globals)
    exec(compile(python.src, filename, "exec"), namespace)  # fx's generated code, from our own graph
    linecache.cache[filename] = (len(python.src), None, python.src.splitlines(keepends=True), filename)
    node_list = list(graph.nodes)
    start = python._prologue_start if python._prologue_start else 0
    line_steps: dict[int, int] = {}
    for line, node_index in (python._lineno_map or {}).items():
        if node_index is not None and 0 <= node_index < len(node_list) and node_list[node_index] in order:
            line_steps[line + start] = order[node_list[node_index]]
    return Compiled(graph, python.src, namespace["forward"], filename, line_steps)


def _positional(inputs: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The forward's arguments in input order (the interpreter takes them positionally)."""
    values = list(args)
    for name in inputs[len(args) :]:
        if name not in kwargs:
            raise TypeError(f"forward() missing required argument: '{name}'")
        values.append(kwargs[name])
    return values


class _Stepper(fx.Interpreter):
    """Runs a graph module's graph node by node, reporting each call to ``tracing``."""

    def __init__(self, module: GraphModule) -> None:
        super().__init__(module, garbage_collect_values=True, graph=type(module).graph)
        self.gm = module
        self.extra_traceback = False  # the exception as the compiled forward would raise it

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as exc:
            if not hasattr(exc, "netinspect_step"):  # the innermost graph's step
                exc.netinspect_step = type(self.gm).step_pos[n.meta["netinspect_step"]]  # type: ignore[attr-defined]
            raise
        unpacking = n.target is operator.getitem and isinstance(self.env.get(n.args[0]), (tuple, list))  # type: ignore[arg-type]
        if n.op in ("call_function", "call_method") and not unpacking:
            cls = type(self.gm)
            index = n.meta["netinspect_step"]
            step: Step = cls.program.steps[index]
            line = step.line
            text = cls.program.lines[line - 1].strip() if 0 < line <= len(cls.program.lines) else ""
            tracing.emit(tracing.Step(self.gm, n.name, display_op(step), line, text, result))
        return result


def display_op(step: Step) -> str:
    """What a step calls, as a user wrote it: ``add``, ``torch.cat``, ``F.relu``, ``.view``, ``[]``."""
    if step.op == "call_method":
        return f".{step.target}"
    target = step.target
    if target.startswith("operator."):
        return target.removeprefix("operator.")
    if target == "getitem":
        return "[]"
    if target == "getattr":
        return f".{step.args[1]}"
    if target.startswith("grant:"):
        return target.removeprefix("grant:").replace(":", ".")
    return target


_BUILTIN_TARGETS: dict[str, Callable[..., Any]] = {"getattr": builtins.getattr, "getitem": operator.getitem}


def resolve_target(target: str, pos: Pos) -> Callable[..., Any] | Problem:
    """A call_function step's target → the function (the forward language names only allow-listed
    ones; a ``grant:`` target imports what ``--allow pkg.mod:func`` granted)."""
    if target in _BUILTIN_TARGETS:
        return _BUILTIN_TARGETS[target]
    namespace, _, name = target.partition(".")
    if namespace == "operator":
        return getattr(operator, name)  # type: ignore[no-any-return]
    if namespace == "torch":
        return getattr(torch, name)  # type: ignore[no-any-return]
    if namespace == "F":
        return getattr(nn.functional, name)  # type: ignore[no-any-return]
    grant = target.removeprefix("grant:")
    mod_name, _, func_name = grant.partition(":")
    try:
        module = sys.modules.get(mod_name) or importlib.import_module(mod_name)
    except Exception as exc:  # the user asked for this import; any failure is theirs to see
        return Problem(f"--allow {grant!r}: cannot import {mod_name!r}: {exc}", pos)
    func = getattr(module, func_name, None)
    if not callable(func) or isinstance(func, type):
        return Problem(
            f"--allow {grant!r}: {func_name!r} is not a function in {mod_name}", pos, "a forward calls functions; classes go under modules:"
        )
    return func  # type: ignore[no-any-return]


def check_call(cls: type[nn.Module], step: Step) -> str | None:
    """Whether a child of class ``cls`` can be called with this step's arguments (its forward's
    signature); the reason when it cannot."""
    try:
        sig = inspect.signature(cls.forward)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(None, *step.args, **dict(step.kwargs))
    except TypeError as exc:
        params = [p for p in sig.parameters.values() if p.name != "self"]
        return f"{cls.__name__}.forward({', '.join(str(p) for p in params)}): {exc}"
    return None
