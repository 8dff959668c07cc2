"""What one training step holds in memory, as ``torch.optim`` and autograd allocate it.

- parameters and buffers: each tensor once (ties once), in their dtype (with mixed precision the
  model is analysed in fp32: autocast keeps fp32 weights and casts them per op);
- gradients: one per trainable parameter, in its dtype; frozen parameters have none;
- optimizer states, as ``torch.optim`` creates them at the first step: Adam and AdamW
  ``exp_avg`` and ``exp_avg_sq`` (each the parameter's size and dtype) plus a 0-d float32
  ``step`` per parameter; SGD with momentum one ``momentum_buffer``; plain SGD none;
- saved activations: what autograd saves for backward (``Costs.saved_bytes``), and the model's
  outputs that nothing saved (alive at the end of the forward, until the loss is taken);
- the optimizer step's workspace: Adam/AdamW compute ``sqrt(exp_avg_sq)`` into new tensors, all
  at once in the foreach implementation ``torch.optim`` uses on CUDA (one temporary per parameter),
  or one parameter at a time (``sqrt`` and the division alive together: twice the largest);
  SGD updates in place.

``total`` is the peak of a steady training step with ``zero_grad(set_to_none=True)``: parameters,
buffers and optimizer states are always held; at the end of the forward the saved activations and
outputs, during the optimizer step the gradients and the step's workspace. Gradients are counted
with both, since a backward produces gradients while it frees activations (a model whose last
layers hold most parameters has nearly all gradients before its first activations are freed).
What it leaves out is transient: during the backward the gradient an op receives and the one it
produces (each up to the largest activation) and the op's own temporaries; allocator rounding and
kernel workspaces on GPUs.

``--shard N`` splits parameters, gradients and optimizer states as FSDP2's ``fully_shard``
(ZeRO-3) does: every rank holds a padded ``ceil(rows / N)``-row chunk of each (``sharding.py``);
buffers are replicated; activations are those of the rank's own batch. FSDP2 also all-gathers one
unit's parameters at a time during forward and backward (not counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from netinspect.sharding import padded_shard_numel

#: --optimizer → states per trainable parameter (each the parameter's size and dtype)
OPTIMIZERS: dict[str, int] = {"adam": 2, "adamw": 2, "sgd": 0, "sgd-momentum": 1, "none": 0}


@dataclass(frozen=True, slots=True)
class Memory:
    parameters: int
    buffers: int
    gradients: int
    optimizer: int
    activations: int
    outputs: int
    workspace: int
    total: int


@dataclass(frozen=True, slots=True)
class Estimate:
    optimizer: str
    foreach: bool
    whole: Memory
    shard: int | None
    per_rank: Memory | None


def _step_bytes() -> int:
    """``torch.optim``'s 0-d ``step`` tensor: float32 unless the default dtype is float64."""
    return 8 if torch.get_default_dtype() == torch.float64 else 4


def estimate(
    module: nn.Module,
    *,
    activations: int,
    outputs: int,
    optimizer: str,
    foreach: bool,
    shard: int | None = None,
) -> Estimate:
    """The memory of one training step of ``module`` (see the module docstring)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    params = list(module.parameters())  # each Parameter once, as parameters() gives them
    buffer_bytes = sum(b.numel() * b.element_size() for b in module.buffers())
    whole = _memory(params, buffer_bytes, activations, outputs, optimizer, foreach, lambda p: p.numel())
    per_rank = None
    if shard is not None:
        world = shard
        per_rank = _memory(
            params, buffer_bytes, activations, outputs, optimizer, foreach, lambda p: padded_shard_numel(tuple(p.shape), world)
        )
    return Estimate(optimizer, foreach, whole, shard, per_rank)


def _memory(
    params: list[nn.Parameter],
    buffer_bytes: int,
    activations: int,
    outputs: int,
    optimizer: str,
    foreach: bool,
    numel: Callable[[nn.Parameter], int],
) -> Memory:
    sizes = [(numel(p) * p.element_size(), p.requires_grad, p.dtype, p.device) for p in params]
    parameters = sum(s for s, _, _, _ in sizes)
    trainable = [(s, dt, dev) for s, rg, dt, dev in sizes if rg]
    gradients = sum(s for s, _, _ in trainable)
    states = OPTIMIZERS[optimizer]
    opt = states * gradients
    workspace = 0
    if optimizer in ("adam", "adamw") and trainable:
        opt += _step_bytes() * len(trainable)
        if foreach:  # one temporary per parameter, a (device, dtype) group at a time
            groups: dict[tuple[torch.dtype, torch.device], int] = {}
            for s, dt, dev in trainable:
                groups[(dt, dev)] = groups.get((dt, dev), 0) + s
            workspace = max(groups.values())
        else:
            workspace = 2 * max(s for s, _, _ in trainable)
    total = parameters + buffer_bytes + gradients + opt + max(activations + outputs, workspace)
    return Memory(parameters, buffer_bytes, gradients, opt, activations, outputs, workspace, total)


@dataclass(frozen=True, slots=True)
class ShardRow:
    """How ``fully_shard`` over ``world`` ranks splits one parameter (each Parameter once)."""

    name: str
    shape: list[int]
    per_rank_shape: list[int]
    per_rank_bytes: int  # the padded chunk every rank allocates
    bytes: int
    ranks: list[tuple[int, int]]  # [start, stop) of dim 0 each rank keeps (torch.chunk)


def shard_params(module: nn.Module, world: int) -> list[ShardRow]:
    from netinspect.sharding import chunk_rows

    rows = []
    for name, p in module.named_parameters():
        shape = [int(d) for d in p.shape]
        per = padded_shard_numel(tuple(shape), world)
        per_shape = [-(-shape[0] // world), *shape[1:]] if shape else []
        ranks = chunk_rows(shape[0], world) if shape else [(0, 1)] + [(1, 1)] * (world - 1)
        rows.append(ShardRow(name, shape, per_shape, per * p.element_size(), p.numel() * p.element_size(), ranks))
    return rows
