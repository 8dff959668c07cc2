"""Declarations → modules: each module class checked once, then the tree constructed in the order
the equivalent plain-PyTorch code constructs it (shared modules first)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netinspect import layers
from netinspect.errors import Pos, Problem, Problems, SpecError, exc_text
from netinspect.schemes import SchemeError, SchemeStep, apply_steps
from netinspect.spec import Decl, Graph, Leaf, ModelSpec, Ref, Rule, Seq, TensorEntry, walk

from .clone import Recipe, call_key, cloneable
from .fxgraph import GraphModule, check_call, graph_class, resolve_target


@dataclass(slots=True)
class ScopedRule:
    """A rule bound to the module its target is relative to (``cli``: it came from the command line)."""

    rule: Rule
    scope: nn.Module
    scope_path: str
    cli: bool = False


@dataclass(frozen=True, slots=True)
class TensorInit:
    """A graph's ``param:``/``buffer:`` entry, initialised by its scheme when it is constructed."""

    module: nn.Module
    name: str
    steps: tuple[SchemeStep, ...]
    pos: Pos

    def run(self) -> None:
        tensor = getattr(self.module, self.name)
        with torch.no_grad():
            apply_steps(self.steps, tensor, self.module, self.name)


#: What the construction does, in order: a module built by calling a class (its default init runs
#: in its constructor), or a graph's tensor entry filled by its scheme.
Constructed = nn.Module | TensorInit


def _noop(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Skip ``torch.nn.init`` work while building on meta (it would import torch._dynamo)."""
    init = nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, _noop)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def resolve_classes(spec: ModelSpec, allowed: dict[str, type[nn.Module]]) -> dict[int, type[nn.Module]]:
    """Class and signature of every distinct Leaf, checked once (not per repeat copy)."""
    problems = Problems()
    classes: dict[int, type[nn.Module]] = {}
    seen: set[int] = set()
    checked: dict[Any, type[nn.Module]] = {}  # the same call written on many lines is checked once
    for root in spec.roots():
        for d in walk(root):
            if len(problems.items) >= Problems.CAP:
                break
            if not isinstance(d, Leaf) or id(d) in seen:
                continue
            seen.add(id(d))
            args = call_key(d)
            call = None if args is None else (d.type_name, args)
            known = checked.get(call) if call is not None else None
            if known is not None:
                classes[id(d)] = known
                continue
            found = layers.resolve(d.type_name, allowed, d.pos, spec.block_names)
            if isinstance(found, Problem):
                if d.argument:  # eval(...), open(...): a call in an argument must build a module
                    found = Problem(f"the call {d!r} is not allowed as an argument: {found.message}", found.pos, found.hint)
                problems.extend([found])  # Problems keeps one line per problem
                continue
            if issubclass(found, nn.modules.lazy.LazyModuleMixin) and not spec.inputs:
                problems.add(
                    d.pos,
                    f"{found.__name__} has no shapes until its first forward pass, and the file declares no input:",
                    f"add input: [batch, ...] (a first forward then gives it its shapes), or use {found.__name__[4:]} with explicit sizes",
                )
                continue
            bad = layers.check_args(found, d.args, dict(d.kwargs), d.pos)
            if bad is not None:
                problems.extend([bad])
                continue
            classes[id(d)] = found
            if call is not None:
                checked[call] = found
    problems.raise_if_any()
    return classes


class Assembler:
    """Constructs the module tree from declarations, in plain-PyTorch construction order."""

    def __init__(
        self, spec: ModelSpec, classes: dict[int, type[nn.Module]], problems: Problems, clone: bool = False, init_now: bool = False
    ) -> None:
        self.spec = spec
        self.init_now = init_now  # run tensor entries' schemes as they are constructed (not on meta)
        #: (class, arguments) -> the first module built from them, when copies of its state may
        #: stand in for further constructions (meta builds: no values, so no random numbers to draw).
        self.protos: dict[Any, Recipe] | None = {} if clone else None
        self.keys: dict[int, Any] = {}  # Leaf id -> its key in protos (None: not hashable)
        self.classes = classes
        self.problems = problems
        self.created: list[Constructed] = []  # in construction order
        self.origin: dict[int, Pos] = {}  # id(module) -> where it was declared
        self.scoped: list[ScopedRule] = []
        self.frozen: list[nn.Module] = []
        self.shared: dict[str, nn.Module] = {}
        self.shared_decls = dict(spec.shared)
        self.failed: set[int] = set()
        self.checked_calls: set[int] = set()
        self.lazy: set[int] = set()  # ids of the lazy modules constructed
        #: a constructor took a module (TransformerEncoder copies its layer): its default init cannot
        #: be replayed module by module, the model is constructed for real on the device
        self.passes_modules = False
        self.graph_classes: dict[int, type[GraphModule]] = {}  # id(Graph decl) -> its class
        self.makers: dict[type, Callable[[Any, str], nn.Module | None]] = {
            Leaf: self._leaf,
            Seq: self._seq,
            Ref: self._ref,
            Graph: self._graph,
        }

    def run(self) -> nn.Module | None:
        for name, _ in self.spec.shared:
            self._shared(name)
        return self.make(self.spec.model, "")

    def make(self, decl: Decl, path: str) -> nn.Module | None:
        """The module of ``decl`` at ``path`` (None after a reported problem)."""
        slot = len(self.scoped)  # a node's rules come before its children's
        m = self.makers[type(decl)](decl, path)
        if m is None or isinstance(decl, Ref):
            return m
        self.origin[id(m)] = decl.pos
        self.scoped[slot:slot] = [ScopedRule(rule, m, path) for rule in decl.rules]
        if decl.frozen:
            self.frozen.append(m)
        return m

    def _shared(self, name: str) -> nn.Module | None:
        if name not in self.shared:
            decl = self.shared_decls.get(name)
            if decl is None:
                return None
            m = self.make(decl, f"<shared {name}>")
            if m is None:
                return None
            self.shared[name] = m
        return self.shared[name]

    def _ref(self, decl: Ref, path: str) -> nn.Module | None:
        return self._shared(decl.shared)

    def _key(self, decl: Leaf, cls: type[nn.Module]) -> Any:
        if id(decl) not in self.keys:
            args = call_key(decl)
            self.keys[id(decl)] = None if args is None else (cls, args)
        return self.keys[id(decl)]

    def _leaf(self, decl: Leaf, path: str) -> nn.Module | None:
        if id(decl) in self.failed:
            return None
        cls = self.classes[id(decl)]
        args, kwargs = decl.args, dict(decl.kwargs)
        if decl.arguments():  # modules passed as arguments are built first, as Python evaluates them
            self.passes_modules = True
            made = [self.make(a, f"{path}<argument>") if isinstance(a, (Leaf, Seq, Ref, Graph)) else a for a in (*args, *kwargs.values())]
            if any(m is None for m in made):
                return None
            args, kwargs = tuple(made[: len(args)]), dict(zip(kwargs, made[len(args) :], strict=True))
        key = self._key(decl, cls) if self.protos is not None else None
        recipe = self.protos.get(key) if self.protos is not None and key is not None else None
        if recipe is not None:
            m = recipe.make()
        else:
            try:
                m = cls(*args, **kwargs)
            except Exception as exc:
                self.failed.add(id(decl))
                bare = [a for a in (*decl.args, *(v for _, v in decl.kwargs)) if isinstance(a, str) and a in self.spec.names]
                hint = f"'{bare[0]}' is the string '{bare[0]}' here; write '${{{bare[0]}}}' for its value" if bare else None
                self.problems.add(decl.pos, f"{layers.call_text(cls, decl.args, decl.kwargs)} failed: {exc_text(exc)}", hint)
                return None
            if self.protos is not None and key is not None and cloneable(m):
                self.protos[key] = Recipe(m)
        self.created.append(m)
        if isinstance(m, nn.modules.lazy.LazyModuleMixin):
            self.lazy.add(id(m))
        return m

    def _seq(self, decl: Seq, path: str) -> nn.Module | None:
        m = nn.Sequential()
        ok = True
        for (name, child), cpos in zip(decl.items, decl.child_pos or [decl.pos] * len(decl.items), strict=False):
            ok = self._child(m, name, child, path, cpos) and ok
        return m if ok else None

    def _child(self, m: nn.Module, name: str, decl: Decl, path: str, pos: Pos) -> bool:
        """Make the child ``decl`` and register it as ``name`` of ``m`` (False after a problem)."""
        sub = self.make(decl, f"{path}.{name}" if path else name)
        if sub is None:
            return False
        try:
            m.add_module(name, sub)
        except (KeyError, TypeError) as exc:
            self.problems.add(pos, f"bad child name '{name}': {exc_text(exc)}", "pick another name")
            return False
        return True

    def _graph(self, decl: Graph, path: str) -> nn.Module | None:
        cls = self._graph_class(decl)
        if cls is None:
            return None
        m = cls()
        ok = True
        for (name, entry), epos in zip(decl.entries, decl.entry_pos, strict=True):
            if isinstance(entry, TensorEntry):
                self._tensor(m, name, entry, epos)
            else:
                ok = self._child(m, name, entry, path, epos) and ok
        if ok and id(decl) not in self.checked_calls:
            self.checked_calls.add(id(decl))
            self._check_calls(decl, m)
        return m if ok else None

    def _graph_class(self, decl: Graph) -> type[GraphModule] | None:
        cls = self.graph_classes.get(id(decl))
        if cls is None:
            functions: dict[str, Any] = {}
            for step, pos in zip(decl.program.steps, decl.step_pos, strict=True):
                if step.op == "call_function" and step.target not in functions:
                    found = resolve_target(step.target, pos)
                    if isinstance(found, Problem):
                        self.problems.extend([found])
                        return None
                    functions[step.target] = found
            cls = self.graph_classes[id(decl)] = graph_class(decl, functions.__getitem__)
        return cls

    def _tensor(self, m: nn.Module, name: str, entry: TensorEntry, pos: Pos) -> None:
        data = torch.empty(entry.shape)
        if entry.kind == "param":
            m.register_parameter(name, nn.Parameter(data, requires_grad=not entry.frozen))
        else:
            m.register_buffer(name, data, persistent=entry.persistent)
        init = TensorInit(m, name, entry.init, pos)
        self.created.append(init)
        if self.init_now:
            try:
                init.run()
            except SchemeError as exc:
                self.problems.add(pos, exc.message, exc.hint)

    def _check_calls(self, decl: Graph, m: nn.Module) -> None:
        """Each call of a child built from a class fits that class's forward (checked once per declaration)."""
        for step, pos in zip(decl.program.steps, decl.step_pos, strict=True):
            if step.op != "call_module":
                continue
            child = m.get_submodule(step.target)
            if isinstance(child, (GraphModule, nn.Sequential)):
                continue  # checked when the forward was compiled
            why = check_call(type(child), step)
            if why is not None:
                self.problems.add(pos, f"'{step.target}' cannot be called this way: {why}", "match the arguments of its forward")


def first_forward(root: nn.Module, draw: Callable[[], list[torch.Tensor]], origin: dict[int, Pos], at: Pos) -> list[nn.Module]:
    """Run the forward once on inputs from ``draw()`` (after the construction, as D2L draws ``X``), so
    that lazy modules take their shapes (and, off meta, their values): the lazy modules in the order
    they were initialised. A failure is a located SpecError."""
    order: list[nn.Module] = []
    stack: list[nn.Module] = []

    def pre(m: nn.Module, args: Any) -> None:
        stack.append(m)
        if isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params():
            order.append(m)

    def post(m: nn.Module, args: Any, out: Any) -> None:
        stack.pop()

    inputs = draw()
    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    try:
        with torch.no_grad():
            root(*inputs)
    except Exception as exc:
        where = next((origin[id(m)] for m in reversed(stack) if id(m) in origin), at)
        message = f"the first forward pass, which gives lazy modules their shapes, failed in {type(stack[-1]).__name__}" if stack else ""
        raise SpecError.at(where, f"{message or 'the first forward pass failed'}: {exc_text(exc)}", "check input: and the sizes") from None
    finally:
        h1.remove()
        h2.remove()
    return order
