"""One training-mode forward (and the backward of the sum of its outputs) with FLOPs counted,
the storages autograd saves recorded, and each module call attributed to its path.

FLOPs are counted as ``torch.utils.flop_counter.FlopCounterMode`` counts them: a dispatch mode
that decomposes what the registry lacks (``func.decompose``) and applies the registry's own
formulas (imported, not copied) to the rest, so the figures are equal by construction. Saved
bytes are what ``torch.autograd.graph.saved_tensors_hooks`` sees, each storage once, parameters'
and buffers' storages left out. Backward FLOPs are attributed to the module call that created the
autograd node running them (by the node's sequence number, which falls in the call's range).

Repeated blocks are run once (``cache.py``): a later call of a module with the same structure on
inputs of the same metadata gets fresh outputs of the cached metadata through an autograd
``Function``, and the first call's records (module calls, forward steps, saved storages, FLOPs)
are replayed under the new call's path. Where a replay cannot be proven equal to running the
call (see ``Run.make_entry``), the call simply runs.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from netinspect import tracing
from netinspect.build.walk import unique_modules
from netinspect.records import shape_tree

from . import cache
from .cache import Entry

aten = torch.ops.aten

#: metadata queries FlopCounterMode leaves to the default handling (returns NotImplemented)
_PASS = {
    aten.sym_is_contiguous.default,
    aten.is_contiguous.default,
    aten.is_contiguous.memory_format,
    aten.is_strides_like_format.default,
    aten.is_non_overlapping_and_dense.default,
    aten.size.default,
    aten.sym_size.default,
    aten.stride.default,
    aten.sym_stride.default,
    aten.storage_offset.default,
    aten.sym_storage_offset.default,
    aten.numel.default,
    aten.sym_numel.default,
    aten.dim.default,
    torch.ops.prim.layout.default,
}


def next_seq() -> int:
    """The sequence number the next autograd node created on this thread will get."""
    return int(torch._C._autograd._get_sequence_nr())


def _current_node() -> Any:
    return torch._C._current_autograd_node()


@dataclass(slots=True, eq=False)
class Call:
    """One module call: its path, what it returned, and what it cost (forward FLOPs inclusive
    of the calls inside it; backward FLOPs first its own, then inclusive once resolved)."""

    path: str
    type: str
    parent: Call | None
    output: Any = None
    output_bytes: int = 0
    flops: int = 0
    flops_backward: int = 0
    start: int = 0  # autograd nodes created during the call have sequence numbers in [start, end)
    end: int = 0
    source: Call | None = None  # a replayed record: the first call it repeats
    top: bool = False  # with ``source``: the call that was replayed (not one inside it)
    module: nn.Module | None = None  # the module object (calls that ran)


@dataclass(slots=True)
class StepRecord:
    """A forward step of a graph module (``tracing.Step``) with its output's metadata."""

    module: nn.Module
    name: str
    op: str
    line: int
    text: str
    output: Any  # a template: TensorMeta where the step returned tensors


@dataclass
class Failure:
    """Where a forward failed: the module that raised and its callers (innermost first), the
    failing call's path and the shapes of its arguments."""

    modules: list[nn.Module]
    path: str
    input_shapes: Any


class ForwardFailed(Exception):
    """The model's forward raised ``cause``; ``failure`` says where (None if outside any module)."""

    def __init__(self, failure: Failure | None, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.failure = failure
        self.cause = cause


@dataclass
class Result:
    calls: list[Call]
    steps: list[StepRecord]
    output: Any
    flops_forward: int
    flops_backward: int
    saved_bytes: int
    output_bytes: int  # the outputs' storages that nothing saved
    replayed: int
    invalid: set[Any] = field(default_factory=set)


def storage_key(t: torch.Tensor) -> int:
    """Identity of a tensor's storage (on meta ``data_ptr()`` is 0; the StorageImpl address is not)."""
    return int(t.untyped_storage()._cdata)


def tensor_bytes(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (tuple, list)):
        return sum(tensor_bytes(i) for i in x)
    if isinstance(x, dict):
        return sum(tensor_bytes(v) for v in x.values())
    return 0


class _Counter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """FlopCounterMode's dispatch logic, counting into a Run."""

    def __init__(self, run: Run) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.run = run

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs if kwargs else {}
        if func in _PASS:
            return NotImplemented
        if isinstance(func, torch._ops.HigherOrderOperator):
            return NotImplemented
        if func not in flop_registry and func is not torch.ops.prim.device.default:
            with self:
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        if self.run.autocast and func is aten._to_copy.default and args:
            self.run.used_params.add(id(args[0]))  # autocast casts (and caches) a weight here
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.run.add_flops(int(formula(*args, **kwargs, out_val=out)))
        if self.run.recording:
            self.run.note_created(out)
        return out


class Run:
    """The state of one analysed forward and backward."""

    def __init__(self, root: nn.Module, *, caching: bool, banned: set[Any], listening: bool) -> None:
        from netinspect.queries import object_paths

        self.root = root
        self.mpaths, _ = object_paths(root)
        self.counts: dict[int, int] = {}
        self.stack: list[Call] = []
        self.calls: list[Call] = []
        self.steps: list[StepRecord] = []
        self.packs: list[tuple[int, int]] = []
        self.created: list[int] = []
        self.alive: dict[int, Any] = {}  # storage key → storage, kept so that no address is reused
        self.recording = 0
        self.backward = False
        self.flops_forward = 0
        self.flops_backward = 0
        self.caching = caching
        self.banned = banned
        self.listening = listening
        self.structures = cache.Structures(root, self.mpaths)
        self.entries: dict[Any, Entry | None] = {}
        self.fresh = itertools.count(1)
        self.used_params: set[int] = set()
        self.autocast = False
        self.dummy: torch.Tensor | None = None
        self.param_keys: set[int] = set()
        for t in itertools.chain(root.parameters(), root.buffers()):
            with contextlib.suppress(RuntimeError, NotImplementedError):
                self.param_keys.add(storage_key(t))
        self.intervals: list[tuple[int, int, Call]] = []
        self.starts: list[int] = []
        self.failure: Failure | None = None

    # --- counting ------------------------------------------------------------------------------

    def add_flops(self, n: int) -> None:
        if not n:
            return
        if not self.backward:
            self.flops_forward += n
            if self.stack:
                self.stack[-1].flops += n
            return
        self.flops_backward += n
        owner = self.owner_of(_current_node())
        if owner is not None:
            owner.flops_backward += n

    def owner_of(self, node: Any) -> Call | None:
        """The innermost call during which ``node`` was created."""
        if node is None:
            return None
        seq = int(node._sequence_nr())
        i = bisect.bisect_right(self.starts, seq) - 1
        if i < 0:
            return None
        c: Call | None = self.intervals[i][2]
        while c is not None and not (c.start <= seq < c.end):
            c = c.parent
        return c

    def note_created(self, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            with contextlib.suppress(RuntimeError, NotImplementedError):
                self.created.append(storage_key(out))
        elif isinstance(out, (tuple, list)):
            for o in out:
                self.note_created(o)

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        self.add_pack(t)
        return t

    def add_pack(self, t: torch.Tensor) -> None:
        try:
            s = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        k = int(s._cdata)
        if k not in self.alive:
            self.alive[k] = s
        self.packs.append((k, int(s.nbytes())))

    def on_step(self, step: tracing.Step) -> None:
        self.steps.append(StepRecord(step.module, step.name, step.op, step.line, step.text, cache.template(step.output)))

    # --- module calls --------------------------------------------------------------------------

    def next_path(self, m: nn.Module) -> str:
        paths = self.mpaths.get(id(m))
        if not paths:
            return "?"
        k = self.counts.get(id(m), 0)
        self.counts[id(m)] = k + 1
        return paths[k % len(paths)]

    def call(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = self.next_path(m)
        parent = self.stack[-1] if self.stack else None
        key: Any = None
        tensors: list[torch.Tensor] = []
        if self.caching:
            key, tensors = self.cache_key(m, args, kwargs)
            if key is not None:
                if key in self.entries:
                    entry = self.entries[key]
                    if entry is not None and key not in self.banned and self.may_replay(m):
                        return cache.replay(self, entry, m, path, parent, tensors)
                    key = None
                elif not self.structures.worth_recording(m):
                    key = None
        call = Call(path, type(m).__name__, parent, module=m)
        if self.autocast:
            self.used_params.update(id(p) for p in m._parameters.values() if p is not None)
        marks = (len(self.calls), len(self.steps), len(self.packs), len(self.created))
        versions = [t._version for t in tensors] if key is not None else []
        if key is not None:
            self.recording += 1
        self.stack.append(call)
        call.start = next_seq()
        try:
            out = forward(*args, **kwargs)
        except Exception:
            if self.failure is None:
                self.failure = Failure(
                    [m] + [c.module for c in reversed(self.stack[:-1]) if c.module is not None], path, shape_tree(list(args))
                )
            raise
        finally:
            call.end = next_seq()
            self.stack.pop()
            if key is not None:
                self.recording -= 1
        call.output = shape_tree(out)
        call.output_bytes = tensor_bytes(out)
        self.calls.append(call)
        if parent is not None:
            parent.flops += call.flops
        if key is not None:
            self.entries[key] = cache.make_entry(self, call, m, tensors, versions, out, marks)
        return out

    def may_replay(self, m: nn.Module) -> bool:
        """Under autocast the first use of a weight casts it and later uses reuse the cast: a call
        is replayed only when none of its parameters was used before in this forward."""
        if not self.autocast:
            return True
        ids = [id(p) for p in self.structures.subtree_params(m)]
        if any(i in self.used_params for i in ids):
            return False
        self.used_params.update(ids)
        return True

    def cache_key(self, m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[torch.Tensor]]:
        structure = self.structures.key(m)
        if structure is None:
            return None, []
        described = cache.describe_inputs(args, kwargs)
        if described is None:
            return None, []
        inputs_key, tensors = described
        return (structure, inputs_key, cache.global_state()), tensors

    # --- after the backward --------------------------------------------------------------------

    def index_intervals(self) -> None:
        """Calls by the start of their node range, for ``owner_of`` during the backward."""
        # non-empty ranges only: they nest (a range that starts with another one lies inside it or
        # holds it), so the last one to start at or before a node is its owner or inside its owner
        ranked = sorted(
            ((c.start, _depth(c), c) for c in self.calls if (c.source is None or c.top) and c.end > c.start), key=lambda x: (x[0], x[1])
        )
        self.intervals = [(s, c.end, c) for s, _, c in ranked]
        self.starts = [s for s, _, _ in self.intervals]

    def resolve_backward(self) -> int:
        """Backward FLOPs inclusive per call; returns what the replayed calls add to the total."""
        added = 0
        below: dict[int, int] = {}
        for c in self.calls:
            if c.source is not None:
                c.flops_backward = c.source.flops_backward
                if not c.top:
                    continue
                added += c.flops_backward
            else:
                c.flops_backward += below.pop(id(c), 0)
            if c.parent is not None:
                below[id(c.parent)] = below.get(id(c.parent), 0) + c.flops_backward
        return added

    def saved_storages(self) -> dict[int, int]:
        """Storage key → bytes of everything saved for backward, parameters and buffers left out."""
        seen: dict[int, int] = {}
        for k, nbytes in self.packs:
            if k not in self.param_keys:
                seen[k] = nbytes
        return seen

    def unsaved_output_bytes(self, output: Any, saved: dict[int, int]) -> int:
        """Bytes of the output's storages that are not among the ``saved`` ones (nor parameters')."""
        seen: dict[int, int] = {}
        for t in _leaves(output):
            with contextlib.suppress(RuntimeError, NotImplementedError):
                s = t.untyped_storage()
                k = int(s._cdata)
                if k not in saved and k not in self.param_keys:
                    seen[k] = int(s.nbytes())
        return sum(seen.values())


def _depth(c: Call) -> int:
    d = 0
    p = c.parent
    while p is not None:
        d += 1
        p = p.parent
    return d


@contextlib.contextmanager
def _patched_forwards(run: Run, root: nn.Module) -> Iterator[None]:
    """Route every module's ``forward`` through ``run.call`` (an instance attribute shadows the
    class's method; removed afterwards)."""
    patched: list[tuple[nn.Module, Any]] = []
    for m in unique_modules(root):
        had = m.__dict__.get("forward")
        original = m.forward
        m.__dict__["forward"] = _routed(run, m, original)
        patched.append((m, had))
    try:
        yield
    finally:
        for m, had in patched:
            if had is None:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = had


def _routed(run: Run, m: nn.Module, original: Callable[..., Any]) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return run.call(m, original, args, kwargs)

    return forward


def run_model(
    root: nn.Module,
    inputs: list[torch.Tensor],
    *,
    backward: bool,
    caching: bool,
    banned: set[Any],
    autocast: bool = False,
) -> Result:
    """One forward (and backward) of ``root`` on ``inputs`` under the counter."""
    listening = tracing.active()
    run = Run(root, caching=caching, banned=banned, listening=listening)
    run.autocast = autocast
    device = inputs[0].device if inputs else next(itertools.chain(root.parameters(), root.buffers()), torch.empty(0)).device
    run.dummy = torch.empty(0, device=device, requires_grad=True)
    grads = {id(p): (p, p.grad) for p in root.parameters()}
    counter = _Counter(run)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched_forwards(run, root))
        if listening:
            stack.enter_context(tracing.listen(run))
        stack.enter_context(counter)
        with torch.autograd.graph.saved_tensors_hooks(run.pack, _unpack):
            try:
                output = root(*inputs)
            except Exception as exc:
                raise ForwardFailed(run.failure, exc) from exc
        roots = [t for t in _leaves(output) if t.requires_grad]
        replay_bw = 0
        if backward and roots:
            run.index_intervals()
            run.backward = True
            torch.autograd.backward([r.sum() for r in roots])
            run.backward = False
            replay_bw = run.resolve_backward()
    for p, g in grads.values():
        p.grad = g
    invalid = cache.invalid_entries(run) if backward and roots else set()
    replayed = sum(1 for c in run.calls if c.top)
    saved = run.saved_storages()
    return Result(
        run.calls,
        run.steps,
        output,
        run.flops_forward,
        run.flops_backward + replay_bw,
        sum(saved.values()),
        run.unsaved_output_bytes(output, saved),
        replayed,
        invalid,
    )


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for i in x for t in _leaves(i)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _leaves(v)]
    return []
