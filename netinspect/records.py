"""The plain records that queries return and render draws (torch-free): a module tree, parameter
rows and totals, state_dict entries, shared groups. A built model and a checkpoint both give them;
a field is None where a checkpoint file does not say (``requires_grad``, ``kind``, ``device``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar


@dataclass(slots=True)
class TreeNode:
    name: str
    path: str
    type: str
    args: str
    params_own: int
    params_total: int
    children: list[TreeNode] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # every path of this module object (one list per object)
    tied: list[str] = field(default_factory=list)  # "weight = embed.weight" for own parameters tied by tie:
    frozen: bool = False
    signature: tuple[Any, ...] = ()

    @property
    def shared_paths(self) -> list[str]:
        """The other paths of the same module object (built on demand: a module reused N times has N
        nodes, and N lists of N - 1 paths would be quadratic)."""
        return [p for p in self.paths if p != self.path] if len(self.paths) > 1 else []


class _Tree(Protocol):
    @property
    def children(self) -> Sequence[Any]: ...


N = TypeVar("N", bound=_Tree)


def walk_tree(node: N) -> Iterator[N]:
    """Every node of a tree of ``children`` (a module tree, a summary's rows), parents first (without recursion)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


@dataclass(slots=True)
class ParamRow:
    name: str
    shape: list[int]
    dtype: str
    device: str | None
    requires_grad: bool | None
    numel: int
    grad: str | None
    paths: list[str]  # every path of this Parameter (one list per Parameter)

    @property
    def shared_with(self) -> list[str]:
        """The other paths of the same Parameter (built on demand, see TreeNode.shared_paths)."""
        return [p for p in self.paths if p != self.name] if len(self.paths) > 1 else []


@dataclass(slots=True)
class Totals:
    unique: int
    by_path: int
    trainable: int | None
    frozen: int | None
    bytes: int
    buffers: int | None
    buffer_bytes: int | None
    tensors: int


@dataclass(slots=True)
class StateEntry:
    key: str
    shape: list[int]
    dtype: str
    device: str | None
    kind: str | None
    tensor: Any  # a torch.Tensor, or None for a checkpoint entry whose values were not read
    numel: int = 0


@dataclass(slots=True)
class SharedGroup:
    paths: list[str]
    shape: list[int]
    numel: int
    cause: str
    modules: list[str]


def shape_tree(x: Any) -> Any:
    """Shapes as lists of ints, in the structure of ``x`` (tuples and lists as lists, dicts as dicts);
    anything with a ``shape`` (a tensor, a recorded tensor's metadata) gives its shape, the rest None."""
    if isinstance(x, (tuple, list)):
        return [shape_tree(i) for i in x]
    if isinstance(x, dict):
        return {k: shape_tree(v) for k, v in x.items()}
    shape = getattr(x, "shape", None)
    if shape is not None and not isinstance(x, type):
        return [int(d) for d in shape]
    return None
