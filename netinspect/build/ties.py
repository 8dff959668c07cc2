"""``tie:`` — one Parameter at two paths, bound after construction and re-applied after every
materialisation (``to_empty`` and friends split a tie made by attribute assignment)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from netinspect.errors import Problems, did_you_mean
from netinspect.spec import ModelSpec, Tie

from .walk import param_paths


@dataclass(slots=True)
class TieBinding:
    """A bound tie: ``owner.attr`` is ``target_owner.target_attr``; ``original`` is the Parameter it replaced."""

    tie: Tie
    owner: nn.Module
    attr: str
    original: nn.Parameter
    target_owner: nn.Module
    target_attr: str


def bind_ties(spec: ModelSpec, root: nn.Module) -> list[TieBinding]:
    """Check every tie (paths exist, same shape and dtype) and apply them."""
    if not spec.tie:
        return []
    problems = Problems()
    paths = param_paths(root)
    bindings: list[TieBinding] = []
    for tie in spec.tie:
        ends = []
        for p in (tie.param, tie.to):
            if p not in paths:
                problems.add(
                    tie.pos,
                    f"tie: no parameter '{p}'",
                    did_you_mean(p, paths) or "parameter paths are as in named_parameters(), e.g. head.weight",
                )
            else:
                ends.append(paths[p])
        if len(ends) != 2:
            continue
        (owner, attr), (towner, tattr) = ends
        a, b = getattr(owner, attr), getattr(towner, tattr)
        if a.shape != b.shape:
            problems.add(
                tie.pos,
                f"tie: '{tie.param}' has shape {list(a.shape)} but '{tie.to}' has {list(b.shape)}",
                "tied parameters must have the same shape",
            )
            continue
        if a.dtype != b.dtype:
            problems.add(tie.pos, f"tie: '{tie.param}' is {a.dtype} but '{tie.to}' is {b.dtype}")
            continue
        bindings.append(TieBinding(tie, owner, attr, a, towner, tattr))
    problems.raise_if_any()
    for binding in bindings:
        setattr(binding.owner, binding.attr, getattr(binding.target_owner, binding.target_attr))
    return bindings


def untie(bindings: list[TieBinding]) -> None:
    """Give each tied path back its own (original) Parameter, as before ``bind_ties``."""
    for b in bindings:
        setattr(b.owner, b.attr, b.original)


def retie(bindings: list[TieBinding]) -> None:
    """Apply every tie again and check that it holds."""
    for b in bindings:
        target = getattr(b.target_owner, b.target_attr)
        setattr(b.owner, b.attr, target)
        if getattr(b.owner, b.attr) is not target:
            raise RuntimeError(f"tie {b.tie.param} -> {b.tie.to} did not hold after materialisation")
