"""A meta-built model → real storage on its device, PyTorch's default init replayed in construction
order, then the init plan applied."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netinspect.errors import SpecError, UsageError
from netinspect.schemes import POST_OPS, SchemeError, SchemeStep, apply_steps

from .assemble import Constructed, TensorInit
from .built import Built
from .inputs import draw_inputs
from .plan import Planned
from .ties import retie, untie
from .walk import postorder, unique_modules

#: Models at least this large (elements) skip the default init that init rules overwrite.
SKIP_DEFAULT_MIN_NUMEL = 1 << 30

Progress = Callable[[str, int, int], None]


def allocate(roots: Sequence[nn.Module], device: torch.device) -> None:
    """Give every parameter and buffer uninitialised storage on ``device`` (like ``to_empty``).

    Plain ``torch.empty`` per tensor: ``to_empty``'s ``empty_like`` of a meta tensor goes
    through torch's Python reference implementations, which cost a second to import.
    A Parameter reachable through several modules stays one Parameter.
    """
    memo: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    empty = torch.empty
    for root in roots:
        for m in unique_modules(root):
            if id(m) in seen:
                continue
            seen.add(id(m))
            for store, is_param in ((m._parameters, True), (m._buffers, False)):
                if not store:
                    continue
                for name, t in store.items():
                    if t is None:
                        continue
                    new = memo.get(id(t))
                    if new is None:
                        data = empty(t.shape, dtype=t.dtype, device=device)
                        new = nn.Parameter(data, t.requires_grad) if is_param else data
                        memo[id(t)] = new
                    store[name] = new  # type: ignore[assignment]
            if isinstance(m, nn.RNNBase):
                m._init_flat_weights()  # its cached list of weights, as RNNBase._apply (to_empty) does


def replayable(created: Sequence[Constructed]) -> bool:
    """True when every module is a torch.nn class whose default init we can replay exactly."""
    for m in created:
        if isinstance(m, TensorInit):
            continue
        for sub in m.modules():
            if not type(sub).__module__.startswith("torch.nn"):
                return False
    return True


def covered(plan: Sequence[Planned]) -> set[tuple[int, str]]:
    """(owner id, name) of parameters whose first rule overwrites every value."""
    first: dict[tuple[int, str], bool] = {}
    for pl in plan:
        for owner, pname in pl.targets:
            first.setdefault((id(owner), pname), pl.overwrites())
    return {k for k, v in first.items() if v}


@dataclass(frozen=True, slots=True)
class InitStep:
    """One call of the default init, in construction order: ``run()`` sets ``module``'s own
    tensors named in ``tensors`` (and nothing else) from the global random stream, unless it is
    the ``whole_model`` first forward of a model with lazy modules."""

    module: nn.Module
    run: Callable[[], object]
    tensors: tuple[str, ...]
    #: the first forward of a model with lazy modules: it may set tensors anywhere in the model
    whole_model: bool = False


def skipped_defaults(built: Built) -> set[tuple[int, str]]:
    """(owner id, name) of the parameters whose default init the build leaves out: those a rule
    overwrites whole, in models of SKIP_DEFAULT_MIN_NUMEL elements or more (none in smaller ones)."""
    if sum(p.numel() for p in built.module.parameters()) < SKIP_DEFAULT_MIN_NUMEL:
        return set()
    return covered(built.plan)


def default_init_steps(built: Built, created: Sequence[Constructed]) -> list[InitStep]:
    """The default init of what was constructed, in construction order: the modules built by calling
    a class (each submodule's before its parent's, as their constructors run it) and graphs' tensor
    entries (their scheme). A module whose every parameter a rule overwrites is left out in models
    of SKIP_DEFAULT_MIN_NUMEL elements or more."""
    skip = skipped_defaults(built)
    steps: list[InitStep] = []
    done: set[int] = {id(m) for m in built.lazy}  # lazy modules are initialised by the first forward, below
    for m in created:
        if isinstance(m, TensorInit):
            steps.append(InitStep(m.module, m.run, (m.name,)))
            continue
        for sub in postorder(m):
            if id(sub) in done:
                continue
            done.add(id(sub))
            own = [n for n, p in sub._parameters.items() if p is not None]
            if skip and own and not list(sub.buffers(recurse=False)) and all((id(sub), n) in skip for n in own):
                continue
            step = _reset_step(sub)
            if step is not None:
                steps.append(step)
    if built.lazy:  # then X is drawn and the first forward runs, initialising each lazy module when it is first called
        steps.append(InitStep(built.module, lambda: first_forward(built), (), whole_model=True))
    return steps


def first_forward(built: Built) -> None:
    """What ``X = torch.rand(...); net(X)`` does after the construction of a model with lazy modules:
    draw the inputs, run the forward (in training mode, as constructed), and give each lazy module its
    values just before its first call. Buffers the forward updates (BatchNorm statistics) and random
    numbers it draws (Dropout) are as in plain PyTorch."""
    built.inputs = draw_inputs(built.module, built.spec.inputs, built.dtype, built.device)
    pending = {id(m): m for m in built.lazy}

    def pre(m: nn.Module, args: object) -> None:
        if pending.pop(id(m), None) is not None:
            step = _reset_step(m)
            if step is not None:
                step.run()

    hook = nn.modules.module.register_module_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            built.module(*built.inputs)
    finally:
        hook.remove()


def _reset_step(m: nn.Module) -> InitStep | None:
    reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
    if not callable(reset):
        return None
    return InitStep(m, reset, tuple(n for store in (m._parameters, m._buffers) for n in store))


def materialise(built: Built, progress: Progress | None, init: bool = True) -> None:
    """Allocate the meta-built model on its device and (``init``) replay the default init of what
    it constructed, in construction order under ``torch.manual_seed(seed)``."""
    untie(built.ties)
    allocate([built.module, *built.shared], built.device)  # each module once, whichever root reaches it
    if init:
        steps = default_init_steps(built, built.constructed)
        torch.manual_seed(built.seed)
        with torch.no_grad():
            for i, step in enumerate(steps):
                step.run()
                if progress is not None:
                    progress("materialise", i + 1, len(steps))
    retie(built.ties)


def apply_plan(built: Built, progress: Progress | None) -> None:
    """Run every planned scheme on its parameters, in plan order; record each parameter's chain."""
    applied = built.applied
    total = sum(len(pl.targets) for pl in built.plan)
    done = 0
    for pl in built.plan:
        for owner, pname in pl.targets:
            p = getattr(owner, pname)
            try:
                apply_steps(pl.steps, p, owner, pname)
            except SchemeError as exc:
                kind = UsageError if pl.srule.cli else SpecError
                raise kind.at(pl.srule.rule.pos, exc.message, exc.hint) from exc
            chain: list[SchemeStep] = applied.setdefault(id(p), [])
            if pl.steps[0].name not in POST_OPS:
                chain.clear()
            chain.extend(pl.steps)
            done += 1
            if progress is not None:
                progress("init", done, total)
