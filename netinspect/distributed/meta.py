"""The model on meta, as every rank sees it before anything is allocated: the modules in construction
order (what the default init replays), the shared instances, the ties and the init plan; and the
FSDP units it is sharded by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netinspect import layers
from netinspect.build import Built, ScopedRule, no_init, resolve_classes, unique_bytes
from netinspect.build.assemble import Assembler
from netinspect.build.plan import plan_rules
from netinspect.build.ties import bind_ties
from netinspect.build.walk import all_named_modules
from netinspect.errors import Problems
from netinspect.spec import ModelSpec, Rule


@dataclass(eq=False)
class MetaModel:
    """``built`` (its module on meta, ``device`` the device the values will be drawn on), the modules
    built by calling a class in construction order, and the shared instances (which draw random
    numbers when constructed even if no ``ref`` uses them)."""

    built: Built
    created: list[nn.Module]
    shared: list[nn.Module]


def meta_build(
    spec: ModelSpec,
    device: torch.device,
    *,
    dtype: str | None = None,
    seed: int | None = None,
    allowed: dict[str, type[nn.Module]] | None = None,
    extra_rules: Sequence[Rule] = (),
) -> MetaModel:
    """Construct ``spec`` on meta exactly as ``build()`` does before it materialises (the same
    assembler, ties, frozen flags and plan), keeping what the single-process replay uses."""
    allowed = allowed or {}
    tdtype = layers.DTYPES[dtype or spec.dtype or "float32"]
    seed_value = seed if seed is not None else (spec.seed if spec.seed is not None else 0)
    classes = resolve_classes(spec, allowed)
    problems = Problems()
    asm = Assembler(spec, classes, problems, clone=True)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(tdtype)
    try:
        with torch.device("meta"), no_init():
            root = asm.run()
    finally:
        torch.set_default_dtype(saved)
    problems.raise_if_any()
    assert root is not None
    ties = bind_ties(spec, root)
    for m in asm.frozen:
        m.requires_grad_(False)
    scoped = [ScopedRule(r, root, "") for r in spec.init] + asm.scoped
    scoped += [ScopedRule(r, root, "", cli=True) for r in extra_rules]
    plan = plan_rules(scoped, allowed)
    built = Built(spec, root, device, tdtype, seed_value, asm.origin, ties, plan, {}, unique_bytes(root))
    return MetaModel(built, list(asm.created), list(asm.shared.values()))


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
    paths_of_param: dict[int, list[str]] = {}
    module_paths: dict[int, list[str]] = {}
    for path, m in named:
        module_paths.setdefault(id(m), []).append(path)
        for pname, p in m._parameters.items():
            if p is not None:
                paths_of_param.setdefault(id(p), []).append(f"{path}.{pname}" if path else pname)
    units: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for path, m in named:
        children = [(n, c) for n, c in m._modules.items() if c is not None]
        sigs = [_signature(c, memo) for _, c in children]
        in_run = [
            (k > 0 and sigs[k - 1] == sig) or (k + 1 < len(sigs) and sigs[k + 1] == sig) for k, sig in enumerate(sigs)
        ]
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
