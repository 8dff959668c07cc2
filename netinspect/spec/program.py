"""What a written forward compiles to: numbered steps that refer to each other, and what the
compiler may know of a graph's children. Torch-free: the build layer turns a ``Program`` into
one ``torch.fx.Graph``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netinspect.errors import TextError


class ForwardError(TextError):
    """A problem in forward text; ``line`` (1-based) and ``offset`` (0-based column) place it."""

    offset: int

    def __init__(self, message: str, line: int, col: int, hint: str | None = None) -> None:
        super().__init__(message, hint, offset=col)
        self.line = line


@dataclass(frozen=True, slots=True)
class StepRef:
    """The value of an earlier step (an fx node, once built)."""

    name: str


@dataclass(frozen=True, slots=True)
class DType:
    """A ``torch.<dtype>`` constant, named (``float32``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Step:
    """One operation of the compiled forward.

    ``op`` is one of ``input``, ``get_attr`` (an own param/buffer entry), ``call_module`` (``target``
    is the child's path, e.g. ``layers.0``), ``call_function`` (``target`` is ``torch.cat``,
    ``F.relu``, ``operator.add``, ``getattr``, ``getitem`` or a granted ``pkg.mod:func``) and
    ``call_method`` (``target`` is the tensor method). Arguments hold constants, ``DType``s,
    ``StepRef``s and tuples/lists/slices of them. ``line``/``col`` place the step in the forward text.
    """

    name: str
    op: str
    target: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled forward: its inputs, its steps in order, what it returns, and the text's lines."""

    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    output: Any
    lines: tuple[str, ...]
    used: frozenset[str] = frozenset()  # child paths it calls
    #: the constant conditions of ``A if COND else B``, by (line, column) of the expression: True for A
    decisions: tuple[tuple[tuple[int, int], bool], ...] = ()
    #: the vars and block parameters it uses, with their values
    constants: tuple[tuple[str, Any], ...] = ()

    def key(self) -> Any:
        """Equal for programs that compile to the same graph (wherever they were written)."""
        steps = tuple((s.name, s.op, s.target, hashable(s.args), hashable(s.kwargs)) for s in self.steps)
        return (self.inputs, steps, hashable(self.output))


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """What the forward may know of a child: whether it exists, how it is called, its children
    (for ``for`` over a sequential), and for a graph child its input names."""

    exists: bool
    kind: str  # "seq", "graph", "module" (a class or a ref: arity checked when built)
    items: tuple[tuple[str, ChildInfo], ...] = ()
    inputs: tuple[str, ...] = ()


def hashable(value: Any) -> Any:
    if isinstance(value, list):
        return ("list", tuple(hashable(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(hashable(v) for v in value))
    if isinstance(value, slice):
        return ("slice", hashable(value.start), hashable(value.stop), hashable(value.step))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)
