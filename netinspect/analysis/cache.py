"""The module-call cache: a repeated block is run once, its later calls are replayed.

A call is replayed only where replaying it is provably the same as running it:

- the same *structure*: class (for a ``torch.fx.GraphModule`` its generated ``code``), every
  plain attribute (``training`` among them), parameters' and buffers' shapes, strides, dtypes and
  ``requires_grad`` and which of them are one tensor, the children's structures, no hooks; every
  module below it reachable by one path only (so a record's path is the call's path + its own);
- the same *inputs*: each tensor's shape, stride, offset, dtype, device and ``requires_grad``,
  which inputs are one tensor or share a storage, the same plain arguments; grad mode, inference
  mode and autocast the same;
- and the first call showed that it depends on nothing else: it mutated none of its inputs and
  none of its own attributes; it returned a tensor or a flat tuple/list of tensors that own dense
  storages of their own (no view of an input, a parameter or each other); every storage it saved
  for backward is an input's, an output's, a parameter's or buffer's, or one it created; every
  autograd edge leaving the nodes it created reaches an input or a parameter of its own subtree.

A replay runs an autograd ``Function`` whose outputs are fresh tensors of the recorded metadata
and whose backward returns gradients of the right shapes for the inputs the first call's graph
reached; the first call's records (module calls, forward steps, saved storages: an input's or
output's mapped onto the new call's tensors, the rest fresh) are appended under the new path.
After the backward, an entry is checked once more: the first call and every replay must have
received a gradient for every differentiable output (else the first call's backward FLOPs would
not be the replay's); a failed entry is banned and the analysis reruns without it.
"""

from __future__ import annotations

import enum
import functools
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netinspect import tracing
from netinspect.build.walk import unique_modules

if TYPE_CHECKING:
    from .engine import Call, Run, StepRecord

IN, OUT, OWN = 0, 1, 2

_SIMPLE = (type(None), bool, int, float, str, bytes, complex, torch.dtype, torch.device, torch.layout, torch.memory_format)
_HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


class _Unkeyable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TensorMeta:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    requires_grad: bool

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorMeta:
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype, t.device, bool(t.requires_grad))


def template(x: Any) -> Any:
    """A step's output with every tensor replaced by its metadata."""
    if isinstance(x, torch.Tensor):
        return TensorMeta.of(x)
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(template(i) for i in x)
    if isinstance(x, list):
        return [template(i) for i in x]
    if isinstance(x, dict):
        return {k: template(v) for k, v in x.items()}
    return x


def rebuild(x: Any) -> Any:
    """A template back to values: fresh meta tensors of the recorded metadata."""
    if isinstance(x, TensorMeta):
        return torch.empty_strided(x.shape, x.stride, dtype=x.dtype, device="meta")
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(rebuild(i) for i in x)
    if isinstance(x, list):
        return [rebuild(i) for i in x]
    if isinstance(x, dict):
        return {k: rebuild(v) for k, v in x.items()}
    return x


def global_hooks() -> bool:
    """True when a global module hook is registered (a replay would skip it)."""
    mod = torch.nn.modules.module
    return any(bool(getattr(mod, name, None)) for name in _GLOBAL_HOOKS)


def global_state() -> tuple[Any, ...]:
    state: list[Any] = [torch.is_grad_enabled(), torch.is_inference_mode_enabled()]
    for device in ("cpu", "cuda"):
        try:
            enabled = torch.is_autocast_enabled(device)
            state.append((device, enabled, torch.get_autocast_dtype(device) if enabled else None))
        except (TypeError, RuntimeError):  # torch < 2.4 has no per-device queries
            state.append((device, None, None))
    return tuple(state)


def _value_key(v: Any, depth: int = 0) -> Any:
    """A hashable stand-in for an attribute's value: equal only where the values are equal (or
    are one object)."""
    if isinstance(v, _SIMPLE) or isinstance(v, enum.Enum):
        return (type(v), v)
    if isinstance(v, torch.Size):
        return (torch.Size, tuple(v))
    if isinstance(v, torch.Tensor):
        return ("tensor", type(v), tuple(v.shape), tuple(v.stride()), v.dtype, v.device, v.requires_grad)
    if isinstance(v, (tuple, list)) and depth < 4:
        return (type(v), tuple(_value_key(x, depth + 1) for x in v))
    if isinstance(v, (set, frozenset)) and all(isinstance(x, _SIMPLE) for x in v):
        return (type(v), frozenset(v))
    if isinstance(v, dict) and depth < 4 and all(isinstance(k, str) for k in v):
        return (dict, tuple((k, _value_key(x, depth + 1)) for k, x in v.items()))
    return ("object", id(v))


def _tensor_key(t: torch.Tensor | None) -> Any:
    if t is None:
        return None
    return (type(t), tuple(t.shape), tuple(t.stride()), t.dtype, t.device, bool(t.requires_grad))


class Structures:
    """Structure keys of modules (interned to ints), memoised for one run."""

    def __init__(self, root: nn.Module, mpaths: dict[int, list[str]]) -> None:
        self.root = root
        self.mpaths = mpaths
        self.ids: dict[Any, int] = {}
        self.memo: dict[int, int | None] = {}
        self.tensors_memo: dict[int, list[torch.Tensor]] = {}
        self.counts: dict[int, int] | None = None

    def key(self, m: nn.Module) -> int | None:
        k = id(m)
        if k in self.memo:
            return self.memo[k]
        raw = self.raw(m, memo=True)
        out = None if raw is None else self.ids.setdefault(raw, len(self.ids))
        self.memo[k] = out
        return out

    def unchanged(self, m: nn.Module) -> bool:
        """The structure computed afresh (no memo) is still the one the call was keyed by."""
        raw = self.raw(m, memo=False)
        return raw is not None and self.ids.get(raw) == self.memo.get(id(m))

    def raw(self, m: nn.Module, memo: bool) -> Any:
        for name in _HOOKS:
            if getattr(m, name, None):
                return None
        is_graph = isinstance(m, torch.fx.GraphModule)
        head: tuple[Any, ...] = ("graph", m._get_name(), m.code) if is_graph else (type(m),)  # type: ignore[no-untyped-call]
        attrs = []
        for name, v in m.__dict__.items():
            if name in ("_parameters", "_buffers", "_modules", "forward") or "hook" in name:
                continue
            if is_graph and not (isinstance(v, _SIMPLE) or isinstance(v, torch.Tensor)):
                continue
            attrs.append((name, _value_key(v)))
        params = tuple((name, _tensor_key(p)) for name, p in m._parameters.items())
        buffers = tuple((name, _tensor_key(b), name in m._non_persistent_buffers_set) for name, b in m._buffers.items())
        children: list[tuple[str, Any]] = []
        for name, c in m._modules.items():
            if c is None:
                children.append((name, None))
                continue
            if len(self.mpaths.get(id(c), ())) != 1:
                return None
            ck = self.key(c) if memo else self.ids.get(self.raw(c, memo=False))
            if ck is None:
                return None
            children.append((name, ck))
        first: dict[int, int] = {}
        sharing = tuple(first.setdefault(id(t), i) for i, t in enumerate(self.subtree_tensors(m)))
        return (head, tuple(attrs), params, buffers, tuple(children), sharing)

    def subtree_tensors(self, m: nn.Module) -> list[torch.Tensor]:
        """Parameters and buffers of ``m``'s subtree, repeats kept (memoised)."""
        k = id(m)
        got = self.tensors_memo.get(k)
        if got is None:
            got = [p for p in m._parameters.values() if p is not None] + [b for b in m._buffers.values() if b is not None]
            for c in m._modules.values():
                if c is not None:
                    got = got + self.subtree_tensors(c)
            self.tensors_memo[k] = got
        return got

    def subtree_params(self, m: nn.Module) -> list[torch.Tensor]:
        return [t for t in self.subtree_tensors(m) if isinstance(t, nn.Parameter)]

    def worth_recording(self, m: nn.Module) -> bool:
        """Record a first call only where a replay can follow: a leaf, or a structure that
        occurs at least twice in the model."""
        if not m._modules:
            return True
        if self.counts is None:
            counts: dict[int, int] = {}
            for mod in unique_modules(self.root):
                s = self.key(mod)
                if s is not None:
                    counts[s] = counts.get(s, 0) + 1
            self.counts = counts
        s = self.key(m)
        return s is not None and self.counts.get(s, 0) >= 2


def plain(t: torch.Tensor) -> bool:
    """A dense tensor the cache can stand in for: a Tensor, a Parameter, or a FakeTensor (the
    mixed-precision run on meta)."""
    if t.layout != torch.strided:
        return False
    if type(t) in (torch.Tensor, nn.Parameter):
        return True
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    return fake is not None and isinstance(t, fake.FakeTensor)


def describe_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[torch.Tensor]] | None:
    """(a key for the arguments, their tensors in order), or None for arguments the cache does
    not key (anything but tensors, plain values and flat tuples/lists of them)."""
    tensors: list[torch.Tensor] = []

    def d(a: Any, depth: int) -> Any:
        if isinstance(a, torch.Tensor):
            if not plain(a):
                raise _Unkeyable
            tensors.append(a)
            return ("t", len(tensors) - 1)
        if isinstance(a, _SIMPLE):
            return (type(a), a)
        if isinstance(a, (tuple, list)) and depth == 0:
            return (type(a), tuple(d(x, 1) for x in a))
        raise _Unkeyable

    try:
        shape_key = (tuple(d(a, 0) for a in args), tuple((k, d(v, 0)) for k, v in kwargs.items()))
        same: dict[int, int] = {}
        storages: dict[int, int] = {}
        metas = []
        for i, t in enumerate(tensors):
            from .engine import storage_key

            sk = storage_key(t)
            metas.append(
                (
                    _tensor_key(t),
                    t.storage_offset(),
                    same.setdefault(id(t), i),
                    storages.setdefault(sk, i),
                )
            )
    except (_Unkeyable, RuntimeError, NotImplementedError):
        return None
    return (shape_key, tuple(metas)), tensors


@dataclass(eq=False)
class Replay:
    """One replayed call: which of its outputs received a gradient in the backward."""

    entry: Entry
    used: list[bool] | None = None


@dataclass(eq=False)
class Entry:
    """What the first call of a key recorded, to be replayed."""

    first: Call
    calls: list[tuple[str, Call]]  # calls inside it (path relative to it), in completion order
    steps: list[tuple[str, StepRecord]]  # forward steps (path of the graph module relative to it)
    saved: list[tuple[int, int, int]]  # (IN, input index, 0) | (OUT, output index, 0) | (OWN, local id, nbytes)
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    kind: type
    reached: list[bool]  # per input: the call's graph sends it a gradient
    first_used: list[bool] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)


def _extent_bytes(t: torch.Tensor) -> int:
    if t.numel() == 0:
        return 0
    return (1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True))) * t.element_size()


def _relative(prefix: str, path: str) -> str | None:
    if not prefix:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix + "."):
        return path[len(prefix) + 1 :]
    return None


def make_entry(
    run: Run,
    call: Call,
    m: nn.Module,
    tensors: list[torch.Tensor],
    versions: list[int],
    out: Any,
    marks: tuple[int, int, int, int],
) -> Entry | None:
    """The entry for a first call, or None where replaying it could differ from running it."""
    from .engine import storage_key

    if any(t._version != v for t, v in zip(tensors, versions, strict=True)):
        return None  # it mutated an input
    if isinstance(out, torch.Tensor):
        outs = [out]
    elif isinstance(out, (tuple, list)) and type(out) in (tuple, list) and out and all(isinstance(o, torch.Tensor) for o in out):
        outs = list(out)
    else:
        return None
    if not all(plain(o) and not isinstance(o, nn.Parameter) for o in outs):
        return None
    in_keys: dict[int, int] = {}
    for i, t in enumerate(tensors):
        in_keys.setdefault(storage_key(t), i)
    out_keys: dict[int, int] = {}
    for j, o in enumerate(outs):
        k = storage_key(o)
        if k in in_keys or k in out_keys or k in run.param_keys:
            return None
        if o.storage_offset() != 0 or o.untyped_storage().nbytes() != _extent_bytes(o):
            return None
        out_keys[k] = j
    if not run.structures.unchanged(m):
        return None
    created = set(run.created[marks[3] :])
    saved: list[tuple[int, int, int]] = []
    own: dict[int, int] = {}
    for k, nbytes in run.packs[marks[2] :]:
        if k in run.param_keys:
            continue
        if k in in_keys:
            saved.append((IN, in_keys[k], 0))
        elif k in out_keys:
            saved.append((OUT, out_keys[k], 0))
        elif k in created:
            saved.append((OWN, own.setdefault(k, len(own)), nbytes))
        else:
            return None  # it saved a tensor it was not given and did not make
    reached = _reached(run, call, m, tensors, outs)
    if reached is None:
        return None
    steps: list[tuple[str, StepRecord]] = []
    for st in run.steps[marks[1] :]:
        paths = run.mpaths.get(id(st.module))
        rel = _relative(call.path, paths[0]) if paths and len(paths) == 1 else None
        if rel is None:
            return None
        steps.append((rel, st))
    calls: list[tuple[str, Call]] = []
    for c in run.calls[marks[0] : -1]:
        rel = _relative(call.path, c.path)
        if rel is None or not rel:
            return None
        calls.append((rel, c))
    entry = Entry(
        call,
        calls,
        steps,
        saved,
        [TensorMeta.of(t) for t in tensors],
        [TensorMeta.of(o) for o in outs],
        type(out),
        reached,
    )
    entry.first_used = [False] * len(outs)
    if torch.is_grad_enabled():
        for j, o in enumerate(outs):
            if o.requires_grad:
                o.register_hook(functools.partial(_mark_used, entry, j))  # type: ignore[no-untyped-call]
    return entry


def _mark_used(entry: Entry, j: int, grad: torch.Tensor) -> None:
    entry.first_used[j] = True


def _reached(run: Run, call: Call, m: nn.Module, tensors: list[torch.Tensor], outs: list[torch.Tensor]) -> list[bool] | None:
    """Per input, whether the nodes the call created send it a gradient; None when an edge leaves
    those nodes for anything but an input or a parameter of the call's own subtree."""
    edges: dict[tuple[Any, int], list[int]] = {}
    for i, t in enumerate(tensors):
        if t.requires_grad:
            e = torch.autograd.graph.get_gradient_edge(t)
            edges.setdefault((e.node, e.output_nr), []).append(i)
    allowed = {id(p) for p in run.structures.subtree_params(m)}
    allowed.add(id(run.dummy))
    reached = [False] * len(tensors)
    stack: list[Any] = []
    seen: set[Any] = set()
    for o in outs:
        if not o.requires_grad:
            continue
        fn = o.grad_fn
        if fn is None or not call.start <= fn._sequence_nr() < call.end:
            return None
        if fn not in seen:
            seen.add(fn)
            stack.append(fn)
    while stack:
        node = stack.pop()
        for nxt, nr in node.next_functions:
            if nxt is None:
                continue
            hit = edges.get((nxt, nr))
            if hit is not None:
                for i in hit:
                    reached[i] = True
                continue
            if call.start <= nxt._sequence_nr() < call.end:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
                continue
            var = getattr(nxt, "variable", None)
            if var is not None and id(var) in allowed:
                continue
            return None
    return reached


class _ReplayFn(torch.autograd.Function):
    """Fresh outputs of a cached call's metadata, connected to its inputs for the backward."""

    @staticmethod
    def forward(ctx: Any, state: Replay, dummy: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.state = state
        outs = tuple(torch.empty_strided(o.shape, o.stride, dtype=o.dtype, device=o.device) for o in state.entry.outputs)
        fixed = [o for o, meta in zip(outs, state.entry.outputs, strict=True) if not meta.requires_grad]
        if fixed:
            ctx.mark_non_differentiable(*fixed)
        return outs

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        state: Replay = ctx.state
        state.used = [g is not None for g in grads]
        entry = state.entry
        ins: list[torch.Tensor | None] = [
            torch.zeros(meta.shape, dtype=meta.dtype, device=meta.device) if reached else None
            for meta, reached in zip(entry.inputs, entry.reached, strict=True)
        ]
        return (None, None, *ins)


def replay(run: Run, entry: Entry, m: nn.Module, path: str, parent: Call | None, tensors: list[torch.Tensor]) -> Any:
    from .engine import Call, next_seq

    first = entry.first
    top = Call(path, first.type, parent, first.output, first.output_bytes, first.flops, source=first, top=True)
    state = Replay(entry)
    entry.replays.append(state)
    top.start = next_seq()
    got = _ReplayFn.apply(state, run.dummy, *tensors)  # type: ignore[no-untyped-call]
    top.end = next_seq()
    outs: tuple[torch.Tensor, ...] = (got,) if isinstance(got, torch.Tensor) else tuple(got)
    prefix = path + "." if path else ""
    for rel, src in entry.calls:
        run.calls.append(Call(prefix + rel, src.type, top, src.output, src.output_bytes, src.flops, source=src))
    run.calls.append(top)
    run.flops_forward += top.flops
    if parent is not None:
        parent.flops += top.flops
    fresh: dict[int, int] = {}
    for kind, idx, nbytes in entry.saved:
        if kind == IN:
            run.add_pack(tensors[idx])
        elif kind == OUT:
            run.add_pack(outs[idx])
        else:
            k = fresh.get(idx)
            if k is None:
                k = fresh[idx] = -next(run.fresh)
                if run.recording:
                    run.created.append(k)
            run.packs.append((k, nbytes))
    if run.listening:
        for rel, st in entry.steps:
            mod = m.get_submodule(rel) if rel else m
            tracing.emit(tracing.Step(mod, st.name, st.op, st.line, st.text, rebuild(st.output)))
    if entry.kind is torch.Tensor or issubclass(entry.kind, torch.Tensor):
        return outs[0]
    make: Any = entry.kind
    return make(outs)


def invalid_entries(run: Run) -> set[Any]:
    """Keys of entries whose replays cannot be trusted after all: an output of the first call or of
    a replay got no gradient in the backward."""
    bad: set[Any] = set()
    for key, entry in run.entries.items():
        if entry is None or not entry.replays:
            continue
        needed = [meta.requires_grad for meta in entry.outputs]
        if not (_got_all(entry.first_used, needed) and all(_got_all(r.used, needed) for r in entry.replays)):
            bad.add(key)
    return bad


def _got_all(used: list[bool] | None, needed: list[bool]) -> bool:
    """Every output that needs a gradient got one (``used`` None: the backward never reached it)."""
    if used is None:
        return not any(needed)
    return all(u or not need for u, need in zip(used, needed, strict=True))
