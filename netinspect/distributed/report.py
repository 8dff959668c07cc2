"""``init``'s table for a sharded model: the rows ``queries.init_report`` gives in one process.

What a row says of the scheme is known on meta before anything is drawn (``queries.init_row_plans``);
the statistics are computed by torch on each whole parameter, which the rank that owns it receives
(``Group.deliver``), so they are the figures one process prints; rank 0 collects them.
"""

from __future__ import annotations

from torch import nn

from netinspect.queries import RowPlan, init_row_plans
from netinspect.schemes import SchemeStep


def plan_rows(module: nn.Module, chains: dict[tuple[int, str], list[SchemeStep]]) -> list[RowPlan]:
    """One row per distinct Parameter, in ``init_report``'s order, from the meta model; ``chains``
    are keyed by (id(owner), name) of each parameter's first owner."""
    by_param: dict[int, list[SchemeStep]] = {}
    for m in module.modules():
        for pname, p in m._parameters.items():
            if p is not None and (id(m), pname) in chains:
                by_param[id(p)] = chains[(id(m), pname)]
    return init_row_plans(module, by_param)
