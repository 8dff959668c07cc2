"""The state of one parse: the file's problems, vars, blocks, shared names and the memo tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from netinspect.errors import Pos, Problems
from netinspect.yamlpos import YNode

from .ir import Decl, Leaf

#: What expanding one YAML node gives: (decl, repeat count, name template, name position).
Result = tuple[Union[Decl, None], int, Union[str, None], Union[Pos, None]]

#: The scope of a node outside any block.
ROOT_SCOPE: Mapping[str, Any] = {}


@dataclass(slots=True)
class Block:
    """A ``blocks:`` entry, its body still YAML (expanded at each use with the arguments bound)."""

    name: str
    params: dict[str, Any]
    required: tuple[str, ...]
    body: YNode | None
    pos: Pos


@dataclass(slots=True)
class Ctx:
    file: str
    problems: Problems
    vars: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    shared_names: dict[str, Pos] = field(default_factory=dict)
    memo: dict[tuple[Any, ...], Decl] = field(default_factory=dict)  # (block, bound arguments) -> its expansion
    cyclic: set[str] = field(default_factory=set)
    depth_reported: bool = False
    # (id(yaml node), id(scope), as list item) -> (result, node, scope); node and scope are kept alive
    node_memo: dict[tuple[int, int, bool], tuple[Result, YNode, Mapping[str, Any]]] = field(default_factory=dict)
    heights: dict[int, int] = field(default_factory=dict)
    leaves: list[Leaf] = field(default_factory=list)  # every call that parsed (validate checks their classes)
    granted: Mapping[str, str] = field(default_factory=dict)
    forward_problems: bool = False  # a written forward has a problem  # names of functions granted with --allow -> "pkg.mod:func"

    def scope(self, local: Mapping[str, Any]) -> Mapping[str, Any]:
        """The names an expression sees: vars, then the block parameters of ``local``."""
        if not local:
            return self.vars
        return {**self.vars, **local}
