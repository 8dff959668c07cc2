"""The parsed model: frozen declaration nodes (``Leaf``, ``Seq``, ``Ref``), rules, ties, inputs and ``ModelSpec``.

Each node kind answers the questions the rest of netinspect asks of any node — its children,
a copy with extra modifiers — so that adding a kind means adding one class here (plus its
parser in ``nodes.py`` and its constructor in ``build.assemble``), not a branch in every walk.
Identical subtrees are shared objects (a repeat or a block used with the same arguments is
expanded once); walks visit each object once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

from netinspect.errors import Pos
from netinspect.schemes import SchemeStep

from .forward import Program


@dataclass(frozen=True, slots=True)
class Rule:
    """An init rule: for modules matching ``target`` (relative to the node that carries the rule),
    of ``types``, set the parameters named by each glob of ``params``."""

    target: str
    types: tuple[str, ...]
    params: tuple[tuple[str, tuple[SchemeStep, ...]], ...]
    pos: Pos
    types_pos: Pos | None = None


@dataclass(frozen=True, slots=True)
class Tie:
    """``tie:`` — parameter ``param`` becomes the Parameter at ``to``."""

    param: str
    to: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of ``forward``: a shape, a dtype (None: the model's), and ``high`` for integer inputs."""

    shape: tuple[int, ...]
    dtype: str | None
    high: int | None
    pos: Pos


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Node:
    """What every declaration has: where it was written, and the modifiers ``frozen:`` and ``init:``."""

    pos: Pos
    frozen: bool = False
    rules: tuple[Rule, ...] = ()

    def children(self) -> tuple[tuple[str, Decl], ...]:
        """(name, node) of the child modules this node declares, in order."""
        return ()

    def arguments(self) -> tuple[Decl, ...]:
        """Modules built to be passed to this node's constructor (``TransformerEncoder(layer, 2)``)."""
        return ()

    def owns_module(self) -> bool:
        """False where the node is another node's module (a ``ref``): it counts no module of its own."""
        return True

    def with_mods(self, frozen: bool, rules: tuple[Rule, ...]) -> Decl:
        """This node with ``frozen``/``rules`` added (the node itself when there is nothing to add)."""
        if not frozen and not rules:
            return self  # type: ignore[return-value]
        return dataclasses.replace(self, frozen=self.frozen or frozen, rules=self.rules + rules)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, eq=False, kw_only=True, repr=False)
class Leaf(Node):
    """A module built by calling a class: ``type_name(*args, **kwargs)``; an argument may be a
    declaration itself (a module built first and passed, as PyTorch code passes one)."""

    type_name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    argument: bool = False  # this call is itself an argument of another

    def arguments(self) -> tuple[Decl, ...]:
        return tuple(a for a in (*self.args, *(v for _, v in self.kwargs)) if isinstance(a, Node))  # type: ignore[misc]

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.type_name}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Seq(Node):
    """An ``nn.Sequential`` with named children, in order; ``child_pos`` is where each child is named."""

    items: tuple[tuple[str, Decl], ...]
    child_pos: tuple[Pos, ...] = ()

    def children(self) -> tuple[tuple[str, Decl], ...]:
        return self.items


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Ref(Node):
    """The shared instance ``shared`` itself (module reuse)."""

    shared: str

    def owns_module(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """A ``param:`` or ``buffer:`` entry of a graph's ``modules:``: a tensor the graph module owns,
    filled by ``init`` when it is constructed."""

    kind: str  # "param" or "buffer"
    shape: tuple[int, ...]
    init: tuple[SchemeStep, ...]
    pos: Pos
    frozen: bool = False
    persistent: bool = True


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Graph(Node):
    """A module with a written forward: ``modules:`` entries constructed in order (children and
    tensors), and the compiled ``program``; ``step_pos`` is each step's position in the file."""

    class_name: str
    entries: tuple[tuple[str, Decl | TensorEntry], ...]
    entry_pos: tuple[Pos, ...]
    program: Program
    step_pos: tuple[Pos, ...]
    absent: tuple[str, ...] = ()  # children whose ``if:`` was false

    def children(self) -> tuple[tuple[str, Decl], ...]:
        return tuple((n, e) for n, e in self.entries if not isinstance(e, TensorEntry))

    def tensors(self) -> tuple[tuple[str, TensorEntry], ...]:
        return tuple((n, e) for n, e in self.entries if isinstance(e, TensorEntry))


Decl = Union[Leaf, Seq, Ref, Graph]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A whole model file, checked and expanded."""

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

    def roots(self) -> list[Decl]:
        """The model and every shared module's declaration."""
        return [self.model, *(d for _, d in self.shared)]

    def granted_functions(self) -> frozenset[str]:
        """The ``--allow pkg.mod:func`` grants that some forward calls."""
        return frozenset(
            s.target.removeprefix("grant:")
            for root in self.roots()
            for d in walk(root)
            if isinstance(d, Graph)
            for s in d.program.steps
            if s.target.startswith("grant:")
        )


def walk(decl: Decl) -> Iterator[Decl]:
    """Every distinct declaration object below and including ``decl``, parents first (shared subtrees once)."""
    seen: set[int] = set()
    stack: list[Decl] = [decl]
    while stack:
        d = stack.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        yield d
        stack.extend(reversed(d.arguments()))
        stack.extend(c for _, c in reversed(d.children()))


def count_modules(decl: Decl, memo: dict[int, int]) -> int:
    """Modules the declaration constructs, each place counted (a shared subtree at each place it sits)."""
    key = id(decl)
    if key not in memo:
        parts = [c for _, c in decl.children()] + list(decl.arguments())
        memo[key] = int(decl.owns_module()) + sum(count_modules(c, memo) for c in parts)
    return memo[key]


def height(decl: Decl, memo: dict[int, int]) -> int:
    """Levels of modules from ``decl`` down to its deepest leaf (a leaf is 1)."""
    if id(decl) not in memo:
        memo[id(decl)] = 1 + max((height(c, memo) for _, c in decl.children()), default=0)
    return memo[id(decl)]
