"""The model on meta, as every rank sees it before anything is allocated (what the default init
replays, the ties and the init plan), and the FSDP units it is sharded by."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from netinspect.build import Built, Recipe, construct
from netinspect.build.walk import all_named_modules
from netinspect.errors import UsageError
from netinspect.queries import object_paths
from netinspect.spec import ModelSpec, Rule


def meta_build(
    spec: ModelSpec,
    device: torch.device,
    *,
    dtype: str | None = None,
    seed: int | None = None,
    allowed: dict[str, type[nn.Module]] | None = None,
    extra_rules: Sequence[Rule] = (),
) -> Built:
    """``spec`` on meta exactly as ``build()`` constructs it before it materialises (the same
    assembler, ties, frozen flags and plan; ``built.constructed`` is what the replay follows).
    Refused: a model with lazy modules (its first forward needs the whole model on one device), and
    one whose default init cannot be replayed from the meta build (``Built.replayable``)."""
    recipe = Recipe.of(spec, dtype=dtype, seed=seed, allowed=allowed, extra_rules=extra_rules)
    _, built = construct(recipe, torch.device("meta"), device)
    if built.lazy:
        raise UsageError.at(
            None, "a model with lazy modules takes its values from a first forward of the whole model", "run it in one process"
        )
    if not built.replayable:
        raise UsageError.at(
            None,
            "classes granted with --allow may draw random numbers anywhere in their constructors, and a constructor "
            "that takes a module may copy it: their values cannot be replayed shard by shard",
            "run this model in one process (without torchrun)",
        )
    return built


def _signature(m: nn.Module, memo: dict[int, tuple[object, ...]]) -> tuple[object, ...]:
    """What makes two modules the same block: class, arguments, own tensors, children's signatures."""
    key = id(m)
    if key not in memo:
        own = tuple((n, tuple(t.shape), t.dtype) for n, t in (*m._parameters.items(), *m._buffers.items()) if t is not None)
        kids = tuple((n, _signature(c, memo)) for n, c in m._modules.items() if c is not None)
        memo[key] = (type(m).__name__, m.extra_repr(), own, kids)
    return memo[key]


def fsdp_units(root: nn.Module) -> list[nn.Module]:
    """The modules that get their own ``fully_shard``, innermost first (the root comes after them).

    A unit is a block of a repeated stack: a child holding parameters in a run of two or more
    consecutive siblings of the same signature (what ``repeat:`` makes: GPT-2's ``h.0`` … ``h.47``,
    rgnet's ``block0`` … ``block3``), as torchtitan wraps each transformer block. A candidate is left
    to its parent when one of its parameters is also reached from outside it (a ``tie:`` or a module
    reused elsewhere): a shared Parameter stays in one unit.
    """
    memo: dict[int, tuple[object, ...]] = {}
    named = all_named_modules(root)
    module_paths, paths_of_param = object_paths(root)
    units: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for path, m in named:
        children = [(n, c) for n, c in m._modules.items() if c is not None]
        sigs = [_signature(c, memo) for _, c in children]
        in_run = [(k > 0 and sigs[k - 1] == sig) or (k + 1 < len(sigs) and sigs[k + 1] == sig) for k, sig in enumerate(sigs)]
        for (name, child), repeated in zip(children, in_run, strict=True):
            if id(child) in seen or not repeated:
                continue
            seen.add(id(child))
            cpath = f"{path}.{name}" if path else name
            if len(module_paths[id(child)]) != 1:
                continue
            params = list(child.parameters())
            if not params:
                continue
            inside = cpath + "."
            if all(q.startswith(inside) for p in params for q in paths_of_param[id(p)]):
                units.append((cpath, child))
    # innermost first: a longer path is nested deeper (fully_shard wants children before parents)
    units.sort(key=lambda u: -u[0].count("."))
    return [m for _, m in units]
