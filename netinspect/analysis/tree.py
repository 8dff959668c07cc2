"""The figures of ``analyse`` in module-tree order, with what folding identical siblings needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from netinspect.queries import object_paths

from .costs import Costs, ModuleCost


@dataclass(slots=True)
class Row:
    """One module path: its class and arguments, the parameters of its subtree (each once) and
    the cost of the calls at this path (None when it was never called)."""

    name: str
    path: str
    type: str
    args: str
    params: int
    cost: ModuleCost | None
    shared: bool  # the module object is reachable by several paths
    children: list[Row] = field(default_factory=list)
    signature: tuple[Any, ...] = ()


def summary_tree(root: nn.Module, costs: Costs) -> Row:
    """Rows for ``root.named_modules(remove_duplicate=False)``, parents before children."""
    mpaths, _ = object_paths(root)
    subtree_ids: dict[int, frozenset[int]] = {}
    numel: dict[int, int] = {}

    def ids_of(m: nn.Module) -> frozenset[int]:
        got = subtree_ids.get(id(m))
        if got is None:
            own: set[int] = set()
            for p in m._parameters.values():
                if p is not None:
                    own.add(id(p))
                    numel.setdefault(id(p), p.numel())
            for c in m._modules.values():
                if c is not None:
                    own |= ids_of(c)
            got = subtree_ids[id(m)] = frozenset(own)
        return got

    def build(name: str, path: str, m: nn.Module) -> Row:
        params = sum(numel[i] for i in ids_of(m))
        cost = costs.modules.get(path)
        row = Row(name, path, type(m).__name__, m.extra_repr(), params, cost, len(mpaths.get(id(m), ())) > 1)
        prefix = path + "." if path else ""
        for cname, c in m._modules.items():
            if c is not None:
                row.children.append(build(cname, prefix + cname, c))
        figures = None if cost is None else (cost.calls, repr(cost.output_shape), cost.output_bytes, cost.flops, cost.flops_backward)
        kids = tuple((c.name, c.signature) for c in row.children)
        row.signature = (row.type, row.args, params, figures, row.shared, kids)
        return row

    return build("", "", root)
