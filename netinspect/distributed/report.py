"""``init``'s table for a sharded model: the same rows ``queries.init_report`` gives in one process.

What a row says of the scheme (its chain, its expected std) is known on meta before anything is drawn;
the statistics are computed by torch on each whole parameter, which the rank that owns it receives
(``Group.deliver``), so they are the figures one process prints; rank 0 collects them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from netinspect.queries import InitRow, iter_unique_params, shape_of
from netinspect.schemes import SchemeStep, TensorStats, expected_std


@dataclass(frozen=True, slots=True)
class RowPlan:
    """A row before its statistics: the parameter's first path, shape, scheme text, expected std,
    other paths, and (id(owner), name) of its first owner, which finds its shard once sharded."""

    name: str
    shape: list[int]
    scheme: str | None
    expected_std: float | None
    shared_with: list[str]
    attr: tuple[int, str]


def plan_rows(module: nn.Module, chains: dict[tuple[int, str], list[SchemeStep]]) -> list[RowPlan]:
    """One row per distinct Parameter, in ``init_report``'s order, from the meta model."""
    owners: dict[int, tuple[nn.Module, str]] = {}
    for m in module.modules():
        for pname, p in m._parameters.items():
            if p is not None:
                owners.setdefault(id(p), (m, pname))
    by_param: dict[int, list[SchemeStep]] = {}
    for m in module.modules():
        for pname, p in m._parameters.items():
            if p is not None and (id(m), pname) in chains:
                by_param[id(p)] = chains[(id(m), pname)]
    rows = []
    for name, p, others in iter_unique_params(module):
        owner, pname = owners[id(p)]
        chain = by_param.get(id(p))
        exp = expected_std(chain, p, owner, pname) if chain else None
        scheme = None
        if chain:
            scheme = chain[0].text if len(chain) == 1 else "[" + ", ".join(s.text for s in chain) + "]"
        rows.append(RowPlan(name, shape_of(p), scheme, exp, others, (id(owner), pname)))
    return rows


def finish_rows(plans: list[RowPlan], stats: list[TensorStats]) -> list[InitRow]:
    return [
        InitRow(r.name, r.shape, r.scheme, st.mean, st.std, st.min, st.max, st.zero_fraction, r.expected_std, r.shared_with)
        for r, st in zip(plans, stats, strict=True)
    ]
