"""The single-process random stream, replayed on every rank while each keeps only its shards.

Each init step (PyTorch's default init of one module, then each init rule on each parameter, then
each ``--set`` edit) runs on full-size temporary tensors exactly as it runs in one process; the
rank copies its rows out and frees them. Every rank draws every random number of the model, which
is what makes the values independent of the world size; it holds its shards plus one step's tensors.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netinspect.build import InitStep, Planned, TieBinding
from netinspect.build.assemble import TensorInit
from netinspect.build.walk import unique_bytes, unique_modules
from netinspect.errors import SpecError, UsageError
from netinspect.schemes import POST_OPS, SchemeError, SchemeStep, apply_steps

from .group import Group
from .layout import Layout

#: Schemes that draw no random numbers and set each value from itself alone: they run on the shard.
ON_SHARD = frozenset(POST_OPS) | {"constant", "ones", "zeros"}
#: Schemes whose values depend on the number of intra-op threads (orthogonal's QR, in MKL or LAPACK).
THREAD_SENSITIVE = frozenset({"orthogonal"})


@functools.cache
def physical_cores() -> int:
    """Physical cores of this machine (what torch starts with when OMP_NUM_THREADS is not set)."""
    cores: set[tuple[str, str]] = set()
    for topo in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            continue
    return len(cores) or os.cpu_count() or 1


def one_process_threads(env: Mapping[str, str] | None = None) -> int:
    """The intra-op threads ``netinspect init`` uses when run in one process on this machine:
    ``NETINSPECT_THREADS`` if set; else ``OMP_NUM_THREADS``, unless it is the 1 that torchrun gives
    its workers when the launcher had none; else one per physical core, as torch does."""
    env = os.environ if env is None else env
    for var in ("NETINSPECT_THREADS", "OMP_NUM_THREADS"):
        text = env.get(var, "").strip()
        if text.isdigit() and int(text) > 0 and not (var == "OMP_NUM_THREADS" and text == "1" and "LOCAL_RANK" in env):
            return int(text)
    return physical_cores()


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def chains(plan: Sequence[Planned]) -> dict[tuple[int, str], list[SchemeStep]]:
    """The scheme chain each parameter ends up with, keyed by its first (owner id, name), as
    ``apply_plan`` records it (a drawing scheme starts the chain again, a post-operation extends it)."""
    out: dict[int, list[SchemeStep]] = {}
    first: dict[int, tuple[int, str]] = {}
    for pl in plan:
        for owner, pname in pl.targets:
            p = getattr(owner, pname)
            first.setdefault(id(p), (id(owner), pname))
            chain = out.setdefault(id(p), [])
            if pl.steps[0].name not in POST_OPS:
                chain.clear()
            chain.extend(pl.steps)
    return {first[k]: v for k, v in out.items()}


def scratch_bytes(steps: Sequence[InitStep], plan: Sequence[Planned], biggest: int) -> int:
    """The most bytes of full tensors one step holds at once (its module's subtree for a default
    init, one parameter or a reset owner's subtree for a rule, ``biggest`` for an edit)."""
    most = biggest
    for step in steps:
        most = max(most, unique_bytes(step.module))
    for pl in plan:
        for owner, pname in pl.targets:
            if any(s.name == "default" for s in pl.steps):
                most = max(most, unique_bytes(owner))
            else:
                p = getattr(owner, pname)
                most = max(most, p.numel() * p.element_size())
    return most


class Arena:
    """Temporaries carved from one reused buffer on CPU: a fresh ``torch.empty`` of a large tensor is
    new pages each time, whose first touch costs about as much as drawing its random numbers.
    (On CUDA the caching allocator already reuses memory.) Views are contiguous, 64-byte aligned."""

    ALIGN = 64

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffer: torch.Tensor | None = None
        self.used = 0
        self.wanted = 0  # the most one step asked for: the size of the next buffer

    def empty(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        if self.device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=self.device)
        n = math.prod(shape)
        start = -(-self.used // self.ALIGN) * self.ALIGN
        end = start + n * dtype.itemsize
        self.wanted = max(self.wanted, end)
        if self.buffer is None or end > self.buffer.numel():
            if self.used:  # part of the buffer is in use by this step: this tensor on its own
                return torch.empty(shape, dtype=dtype)
            self.buffer = None
            self.buffer = torch.empty(self.wanted, dtype=torch.uint8)
        self.used = end
        return self.buffer[start:end].view(dtype).view(shape)

    def reset(self) -> None:
        self.used = 0

    def release(self) -> None:
        """Give the buffer back (the replay is over; the exchanges that follow have their own)."""
        self.buffer = None
        self.used = 0


@dataclass(slots=True)
class _Slot:
    store: dict[str, Any]
    name: str
    original: Any
    index: int | None  # the shard it feeds; None: its values are dropped (an untied original, a shared module no path uses)


class Replayer:
    """Runs init steps on temporary full tensors and keeps this rank's part of each result."""

    def __init__(self, layout: Layout, group: Group) -> None:
        self.layout = layout
        self.group = group
        self.arena = Arena(group.device)

    def _install(self, modules: Sequence[nn.Module], dropped: set[tuple[int, str]], current: Callable[[nn.Module], bool]) -> list[_Slot]:
        """Give every tensor of ``modules`` a full-size temporary (one per distinct tensor); those of
        modules for which ``current`` holds start from the tensor's present values."""
        temps: dict[object, torch.Tensor] = {}
        slots: list[_Slot] = []
        fill: list[tuple[int, torch.Tensor]] = []
        try:
            for m in modules:
                stores: tuple[tuple[dict[str, Any], bool], ...] = ((m._parameters, True), (m._buffers, False))
                for store, is_param in stores:
                    for name, t in list(store.items()):
                        if t is None:
                            continue
                        key = (id(m), name)
                        index = None if key in dropped else self.layout.by_attr.get(key)
                        memo: object = index if index is not None else key
                        new = temps.get(memo)
                        if new is None:
                            data = self.arena.empty(t.shape, t.dtype)
                            new = nn.Parameter(data, requires_grad=t.requires_grad) if is_param else data
                            temps[memo] = new
                            if index is not None and current(m):
                                fill.append((index, data))
                        slots.append(_Slot(store, name, t, index))
                        store[name] = new
            for index, data in fill:
                data.copy_(self.group.all_gather(self.layout.shards[index]))
        except BaseException:
            self._restore(slots)
            raise
        return slots

    def _install_one(self, owner: nn.Module, name: str, index: int | None) -> list[_Slot]:
        """A full-size temporary for ``owner``'s own tensor ``name`` alone (its other tensors untouched)."""
        is_param = name in owner._parameters
        store: dict[str, Any] = owner._parameters if is_param else owner._buffers
        t = store[name]
        assert t is not None
        data = self.arena.empty(t.shape, t.dtype)
        store[name] = nn.Parameter(data, requires_grad=t.requires_grad) if is_param else data
        return [_Slot(store, name, t, index)]

    def _keep(self, slots: Sequence[_Slot], only: int | None = None) -> None:
        done: set[int] = set()
        for s in slots:
            if s.index is None or s.index in done or (only is not None and s.index != only):
                continue
            done.add(s.index)
            self.layout.shards[s.index].take(s.store[s.name].detach())  # the step may have replaced the object

    def _restore(self, slots: Sequence[_Slot]) -> None:
        for s in reversed(slots):
            s.store[s.name] = s.original
        self.arena.reset()

    def default_init(self, steps: Sequence[InitStep], ties: Sequence[TieBinding]) -> None:
        """PyTorch's default init, module by module: as in one process, a tied path holds its own
        (untied) Parameter while it runs, whose values are then dropped."""
        dropped = {(id(b.owner), b.attr) for b in ties}
        with torch.no_grad():
            for step in steps:
                own = step.module
                if isinstance(getattr(step.run, "__self__", None), TensorInit):  # a graph's param:/buffer: entry
                    (name,) = step.tensors
                    slots = self._install_one(own, name, self.layout.by_attr.get((id(own), name)))
                else:

                    def below(m: nn.Module, own: nn.Module = own) -> bool:
                        return m is not own  # a descendant's tensors keep their values unless the step sets them

                    slots = self._install(unique_modules(own), dropped, below)
                try:
                    step.run()
                    self._keep(slots)
                finally:
                    self._restore(slots)

    def rules(self, plan: Sequence[Planned]) -> None:
        """Each planned scheme on each parameter, in plan order (as ``apply_plan``)."""
        for pl in plan:
            for owner, pname in pl.targets:
                try:
                    self._rule(pl.steps, owner, pname)
                except SchemeError as exc:
                    kind = UsageError if pl.srule.cli else SpecError
                    raise kind.at(pl.srule.rule.pos, exc.message, exc.hint) from exc

    def _rule(self, steps: Sequence[SchemeStep], owner: nn.Module, pname: str) -> None:
        index = self.layout.by_attr[(id(owner), pname)]
        shard = self.layout.shards[index]
        if all(s.name in ON_SHARD for s in steps):
            apply_steps(steps, shard.local, owner, pname)
            return
        reset = any(s.name == "default" for s in steps)
        starts_from_values = steps[0].name in POST_OPS or steps[0].name == "default"
        if reset:
            slots = self._install(unique_modules(owner), set(), lambda m: False)
        else:
            slots = self._install_one(owner, pname, index)  # only the parameter itself
        try:
            param = owner._parameters[pname]
            assert param is not None
            if starts_from_values:
                with torch.no_grad():
                    param.copy_(self.group.all_gather(shard))
            sensitive = any(s.name in THREAD_SENSITIVE for s in steps)
            with threads(one_process_threads()) if sensitive else contextlib.nullcontext():
                apply_steps(steps, param, owner, pname)
            self._keep(slots, only=index)
        finally:
            self._restore(slots)

    def edit(self, key: str, apply: Callable[[torch.Tensor], None]) -> None:
        """An edit of state_dict entry ``key`` by global index: on the full tensor, then kept."""
        shard = self.layout.shards[self.layout.key_index()[key]]
        full = self.group.all_gather(shard)
        apply(full)
        shard.take(full)
