"""``analyse``: one forward and backward of a module, its figures per module path and in total."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .cache import global_hooks
from .engine import Call, StepRecord, run_model
from .standins import without_heavy_imports


@dataclass(frozen=True, slots=True)
class ModuleCost:
    """The calls at one module path: how many, the first one's output shape, and their output
    bytes, forward FLOPs and backward FLOPs (inclusive of the calls inside them) summed."""

    path: str
    type: str
    calls: int
    output_shape: Any
    output_bytes: int
    flops: int
    flops_backward: int


@dataclass
class Costs:
    modules: dict[str, ModuleCost]  # by path, in the order the calls ended
    calls: list[Call]
    steps: list[StepRecord]
    output: Any
    flops_forward: int
    flops_backward: int  # 0 when the backward was not run
    saved_bytes: int  # each storage autograd saved once, parameters and buffers left out
    output_bytes: int  # the outputs' storages that nothing saved
    replayed: int  # calls answered from the cache
    reruns: int  # runs repeated because a cached entry failed its check after the backward


def analyse(
    module: nn.Module,
    inputs: list[torch.Tensor],
    *,
    backward: bool = True,
    cache: bool = True,
    autocast: torch.dtype | None = None,
) -> Costs:
    """Run ``module(*inputs)`` in its current mode (``train()`` for training figures), then the
    backward of the sum of its outputs, counting FLOPs as ``FlopCounterMode`` does and the bytes
    ``saved_tensors_hooks`` sees; with ``autocast`` the forward runs as ``torch.autocast`` to that
    dtype runs it. Parameters' ``.grad`` are left as they were. Raises ``ForwardFailed``."""
    banned: set[Any] = set()
    reruns = 0
    with without_heavy_imports():
        while True:
            caching = cache and not global_hooks()
            if autocast is not None:
                from .autocast import autocast as mixed

                ctx: contextlib.AbstractContextManager[list[torch.Tensor]] = mixed(module, inputs, autocast)
            else:
                ctx = contextlib.nullcontext(inputs)
            with ctx as used:
                result = run_model(module, used, backward=backward, caching=caching, banned=banned, autocast=autocast is not None)
            if not result.invalid:
                break
            banned |= result.invalid
            reruns += 1
    modules: dict[str, ModuleCost] = {}
    for c in result.calls:
        if c.path == "?":
            continue
        got = modules.get(c.path)
        if got is None:
            modules[c.path] = ModuleCost(c.path, c.type, 1, c.output, c.output_bytes, c.flops, c.flops_backward)
        else:
            modules[c.path] = ModuleCost(
                c.path,
                got.type,
                got.calls + 1,
                got.output_shape,
                got.output_bytes + c.output_bytes,
                got.flops + c.flops,
                got.flops_backward + c.flops_backward,
            )
    return Costs(
        modules,
        result.calls,
        result.steps,
        result.output,
        result.flops_forward,
        result.flops_backward,
        result.saved_bytes,
        result.output_bytes,
        result.replayed,
        reruns,
    )
