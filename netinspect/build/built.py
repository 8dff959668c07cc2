"""``Built``: a model and what netinspect knows of how it was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netinspect.errors import Pos
from netinspect.schemes import SchemeStep
from netinspect.spec import ModelSpec

from .plan import Planned
from .ties import TieBinding


@dataclass(slots=True)
class Built:
    """A built model: the spec, the module on its device, the seed, where each module was declared,
    the bound ties, the init plan and, after it ran, the scheme chain each parameter got."""

    spec: ModelSpec
    module: nn.Module
    device: torch.device
    dtype: torch.dtype
    seed: int
    origin: dict[int, Pos]
    ties: list[TieBinding]
    plan: list[Planned]
    applied: dict[int, list[SchemeStep]] = field(default_factory=dict)
    bytes_needed: int = 0
    #: lazy modules in the order a first forward initialised them, and the inputs it drew (SPEC §1.3)
    lazy: list[nn.Module] = field(default_factory=list)
    inputs: list[torch.Tensor] | None = None
    frozen: list[nn.Module] = field(default_factory=list)  # modules declared frozen: true
    #: what the construction did, in order (modules built by calling a class, graphs' tensor entries)
    constructed: list[Any] = field(default_factory=list)
    #: the shared: instances (constructed, and drawing their values, even where no ref uses them)
    shared: list[nn.Module] = field(default_factory=list)
    #: whether replaying ``constructed``'s default init on the meta build gives the values a real
    #: construction draws: only torch.nn classes, and no constructor took a module (it may copy it)
    replayable: bool = True

    @property
    def tied_ids(self) -> set[int]:
        """ids of the Parameters that ``tie:`` put at a second path."""
        return {id(getattr(b.owner, b.attr)) for b in self.ties}
