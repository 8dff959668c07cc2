"""``build``: ModelSpec → ``Built``. Meta first (every argument, shape, tie and rule checked, the
bytes known, nothing allocated), then, if the device holds it, materialised on the device."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netinspect import layers
from netinspect.devices import check_fits
from netinspect.errors import DeviceError, Problems, first_line
from netinspect.spec import ModelSpec, Rule

from .assemble import Assembler, ScopedRule, first_forward, no_init, resolve_classes
from .built import Built
from .inputs import draw_inputs
from .materialise import Progress, apply_plan, materialise, replayable
from .plan import plan_rules
from .ties import bind_ties
from .walk import unique_bytes


@dataclass(frozen=True, slots=True)
class Recipe:
    """What a build needs besides the spec, resolved once: the allowed classes, the dtype, the seed,
    the command line's rules, and each declaration's checked class."""

    spec: ModelSpec
    allowed: dict[str, type[nn.Module]]
    dtype: torch.dtype
    seed: int
    extra_rules: tuple[Rule, ...]
    classes: dict[int, type[nn.Module]]

    @classmethod
    def of(
        cls,
        spec: ModelSpec,
        *,
        dtype: str | None = None,
        seed: int | None = None,
        allowed: dict[str, type[nn.Module]] | None = None,
        extra_rules: Sequence[Rule] = (),
    ) -> Recipe:
        allowed = allowed or {}
        tdtype = layers.DTYPES[dtype or spec.dtype or "float32"]
        seed_value = seed if seed is not None else (spec.seed if spec.seed is not None else 0)
        return cls(spec, allowed, tdtype, seed_value, tuple(extra_rules), resolve_classes(spec, allowed))


def construct(recipe: Recipe, on: torch.device, device: torch.device) -> tuple[Assembler, Built]:
    """Construct ``recipe.spec`` on ``on`` (meta: no values; else as plain code would, at the seed
    set by the caller), as ``torch.set_default_dtype(dtype)`` would; run a lazy model's first
    forward; tie, freeze and plan the rules. ``device`` is where the values will be drawn."""
    spec = recipe.spec
    problems = Problems()
    asm = Assembler(spec, recipe.classes, problems, clone=on.type == "meta", init_now=on.type != "meta")

    def quiet() -> contextlib.AbstractContextManager[None]:
        return no_init() if on.type == "meta" else contextlib.nullcontext()

    saved = torch.get_default_dtype()
    torch.set_default_dtype(recipe.dtype)
    try:
        with torch.device(on), quiet():
            root = asm.run()
    finally:
        torch.set_default_dtype(saved)
    problems.raise_if_any()
    assert root is not None
    lazy: list[nn.Module] = []
    drawn: list[torch.Tensor] = []
    if asm.lazy:  # a first forward gives lazy modules their shapes (off meta, their values too)

        def draw() -> list[torch.Tensor]:
            drawn.extend(draw_inputs(root, spec.inputs, recipe.dtype, on))
            return drawn

        with torch.device(on), quiet():
            lazy = first_forward(root, draw, asm.origin, spec.inputs[0].pos)
    ties = bind_ties(spec, root)
    for m in asm.frozen:
        m.requires_grad_(False)
    scoped = [ScopedRule(r, root, "") for r in spec.init] + asm.scoped
    scoped += [ScopedRule(r, root, "", cli=True) for r in recipe.extra_rules]
    plan = plan_rules(scoped, recipe.allowed)
    return asm, Built(
        spec,
        root,
        device,
        recipe.dtype,
        recipe.seed,
        asm.origin,
        ties,
        plan,
        bytes_needed=unique_bytes(root),
        lazy=lazy,
        inputs=drawn if on.type != "meta" and lazy else None,
        frozen=asm.frozen,
        constructed=asm.created,
        shared=list(asm.shared.values()),
        replayable=replayable(asm.created) and not asm.passes_modules,
    )


def build(
    spec: ModelSpec,
    *,
    device: torch.device | None = None,
    dtype: str | None = None,
    seed: int | None = None,
    allowed: dict[str, type[nn.Module]] | None = None,
    extra_rules: Sequence[Rule] = (),
    progress: Progress | None = None,
    need: str = "values",
) -> Built:
    """Build ``spec`` on the meta device, check it, then materialise on ``device`` (default cpu).

    ``need`` says how far to go once the device is known to hold the model: ``"values"`` (allocate,
    default init, rules), ``"storage"`` (allocate only: for commands that never read values), or
    ``"structure"`` (keep the meta tensors: for commands that show only the module structure).
    """
    device = device or torch.device("cpu")
    recipe = Recipe.of(spec, dtype=dtype, seed=seed, allowed=allowed, extra_rules=extra_rules)
    _, built = construct(recipe, torch.device("meta"), device)
    if device.type == "meta":
        return built
    check_fits(built.bytes_needed, device)
    if need == "structure":
        return built
    try:
        if need == "storage":
            materialise(built, progress, init=False)
        elif built.replayable:
            materialise(built, progress)
            apply_plan(built, progress)
        else:
            # classes outside torch.nn may draw random numbers anywhere in __init__, and a constructor
            # that takes a module may copy it: construct for real
            torch.manual_seed(recipe.seed)
            _, built = construct(recipe, device, device)
            apply_plan(built, progress)
        return built
    except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError) and "alloc" not in str(exc):
            raise
        raise DeviceError.at(
            None, f"{device} ran out of memory while allocating the model: {first_line(exc, 160)}", "use --device meta"
        ) from None
