"""The meta model sharded as FSDP2's ``fully_shard`` shards it, with only the local shards allocated,
and a table from every module attribute to the tensor (shard) behind it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from netinspect.build import Built
from netinspect.build.walk import unique_modules
from netinspect.devices import available_bytes
from netinspect.errors import DeviceError
from netinspect.sharding import chunk_rows, padded_shard_numel
from netinspect.units import human_bytes

from .group import Group, Shard
from .meta import fsdp_units


@dataclass(eq=False)
class Layout:
    """Every distinct tensor of the model once (``shards``, in ``state_dict`` order), where each
    module attribute points (``by_attr``: (id(module), name) → index), and every ``state_dict`` key
    with its index (``keys``, a tied or reused tensor under each of its keys)."""

    module: nn.Module
    shards: list[Shard]
    by_attr: dict[tuple[int, str], int]
    keys: list[tuple[str, int]]

    def key_index(self) -> dict[str, int]:
        return dict(self.keys)


def table(module: nn.Module, group: Group) -> Layout:
    """The Layout of ``module`` as it is now: DTensor parameters are this rank's rows, anything
    else is whole on every rank."""
    from torch.distributed.tensor import DTensor

    shards: list[Shard] = []
    index_of: dict[int, int] = {}
    by_attr: dict[tuple[int, str], int] = {}

    def add(t: torch.Tensor) -> int:
        i = index_of.get(id(t))
        if i is not None:
            return i
        shape = t.shape
        rows = shape[0] if len(shape) else 0
        if isinstance(t, DTensor):
            local = t.to_local()
            split = chunk_rows(rows, group.world)
            a, b = split[group.rank]
            if tuple(local.shape) != (b - a, *shape[1:]):
                raise RuntimeError(f"unexpected local shard {list(local.shape)} of {list(shape)} on rank {group.rank}")
            shard = Shard(shape, t.dtype, local.detach(), True, (a, b), split)
        else:
            whole = [(0, rows)] * group.world
            shard = Shard(shape, t.dtype, t.detach(), False, (0, rows), whole)
        index_of[id(t)] = len(shards)
        shards.append(shard)
        return index_of[id(t)]

    sd = module.state_dict(keep_vars=True)
    keys = [(k, add(v)) for k, v in sd.items()]
    for m in unique_modules(module):
        for store in (m._parameters, m._buffers):
            for name, t in store.items():
                if t is not None:
                    by_attr[(id(m), name)] = add(t)
    return Layout(module, shards, by_attr, keys)


def rank_bytes(module: nn.Module, world: int, scratch: int) -> int:
    """What one rank allocates: padded shards of the parameters ``fully_shard`` splits, every buffer
    and 0-d parameter whole, plus ``scratch`` (the largest set of full tensors one init step needs)."""
    total = scratch
    seen: set[int] = set()
    for m in unique_modules(module):
        for store, is_param in ((m._parameters, True), (m._buffers, False)):
            for t in store.values():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                n = padded_shard_numel(list(t.shape), world) if is_param and t.dim() > 0 else t.numel()
                total += n * t.element_size()
    return total


def shard_model(built: Built, group: Group, scratch: int, local_world: int) -> Layout:
    """``fully_shard`` each unit then the root on the 1-D mesh (parameters as ``Shard(0)``
    DTensors; buffers and 0-d parameters, which it refuses, stay whole), check that this machine
    holds what its ranks allocate, then allocate the local shards on the rank's device."""
    from torch.distributed.fsdp import fully_shard

    root = built.module
    per_rank = rank_bytes(root, group.world, scratch)
    ranks_here = local_world if group.device.type == "cpu" else 1
    free = available_bytes(group.device)
    if free is not None and per_rank * ranks_here > free:
        who = f"rank {group.rank} needs {human_bytes(per_rank)}"
        if ranks_here > 1:
            who = f"{ranks_here} ranks on this machine need {human_bytes(per_rank)} each"
        raise DeviceError.at(
            None,
            f"{who} (its shards and one init step's full tensors), but {group.device} has {human_bytes(free)} available",
            "start the job on more machines (torchrun --nnodes), or use a smaller --dtype",
        )
    scalars = {p for p in root.parameters() if p.dim() == 0}
    for unit in fsdp_units(root):
        fully_shard(unit, mesh=group.mesh, ignored_params=scalars or None)
    fully_shard(root, mesh=group.mesh, ignored_params=scalars or None)
    root.to_empty(device=group.device)
    return table(root, group)
