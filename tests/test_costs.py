"""The cost engine against the references that define its figures.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on the same module and input (forward, and
the backward of the summed outputs; per module as its ``ModuleTracker`` names them). Saved bytes:
``torch.autograd.graph.saved_tensors_hooks`` in a training-mode forward on CPU, each storage once
(by its data pointer), parameters' and buffers' storages left out. The module-call cache must give
exactly the uncached figures and records; on meta and under autocast the same holds.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import reference_nets as RN
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netinspect import forward_pass, session, tracing
from netinspect.analysis import Costs, ForwardFailed, analyse
from netinspect.session import BuildOptions

# --- references ---------------------------------------------------------------------------------


def leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for i in x for t in leaves(i)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in leaves(v)]
    return []


@dataclass
class FlopRef:
    forward: int
    backward: int
    per_module: dict[str, int]  # ModuleTracker name → forward FLOPs


def flop_reference(model: nn.Module, inputs: list[torch.Tensor], autocast: torch.dtype | None = None) -> FlopRef:
    """FlopCounterMode around the forward and the backward of the sum of the outputs."""
    grads = {id(p): p.grad for p in model.parameters()}
    amp = torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter:
        with amp:
            out = model(*inputs)
        forward = counter.get_total_flops()
        per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        roots = [t for t in leaves(out) if t.requires_grad]
        if roots:
            torch.autograd.backward([t.sum() for t in roots])
        total = counter.get_total_flops()
    for p in model.parameters():
        p.grad = grads[id(p)]
    return FlopRef(forward, total - forward, per_module)


def saved_reference(model: nn.Module, inputs: list[torch.Tensor], autocast: torch.dtype | None = None) -> int:
    """Bytes of the storages autograd saves in the forward (CPU), each once, parameters and
    buffers left out."""
    skip = {t.untyped_storage().data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    seen: dict[int, int] = {}
    keep: list[Any] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        keep.append(s)
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    amp = torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
        model(*inputs)
    return sum(seen.values())


def tracker_name(root: nn.Module, path: str) -> str:
    """The name FlopCounterMode's ModuleTracker gives the module at ``path``."""
    return f"{type(root).__name__}.{path}" if path else type(root).__name__


def single_path_modules(root: nn.Module) -> dict[str, nn.Module]:
    paths: dict[int, list[str]] = {}
    for p, m in root.named_modules(remove_duplicate=False):
        paths.setdefault(id(m), []).append(p)
    return {p: m for p, m in root.named_modules(remove_duplicate=False) if len(paths[id(m)]) == 1}


def check_against_references(model: nn.Module, inputs: list[torch.Tensor], costs: Costs, *, saved: bool = True) -> None:
    ref = flop_reference(model, inputs)
    assert (costs.flops_forward, costs.flops_backward) == (ref.forward, ref.backward)
    for path in single_path_modules(model):
        got = costs.modules[path].flops if path in costs.modules else 0
        assert got == ref.per_module.get(tracker_name(model, path), 0), path
    if saved:
        assert costs.saved_bytes == saved_reference(model, inputs)


def records(costs: Costs) -> list[tuple[Any, ...]]:
    return [(c.path, c.type, c.calls, repr(c.output_shape), c.output_bytes, c.flops, c.flops_backward) for c in costs.modules.values()]


def same_figures(a: Costs, b: Costs) -> None:
    assert (a.flops_forward, a.flops_backward, a.saved_bytes, a.output_bytes) == (
        b.flops_forward,
        b.flops_backward,
        b.saved_bytes,
        b.output_bytes,
    )
    assert sorted(records(a)) == sorted(records(b))


# --- the built-in configs -----------------------------------------------------------------------


def configs_with_input() -> list[str]:
    out = []
    for name in session.config_names():
        if session.load_spec(name).inputs:
            out.append(name)
    return out


#: on CPU (allocated, never initialised) up to this many bytes of parameters; all of them on meta
CPU_BYTES = 64 << 20


@pytest.mark.parametrize("name", configs_with_input())
def test_configs_match_flop_counter_and_saved_tensor_hooks(name: str) -> None:
    built = session.make(name, BuildOptions(device="meta", need="structure")).built
    built.module.train()
    inputs = forward_pass.make_inputs(built, list(built.spec.inputs))
    meta = analyse(built.module, inputs)
    check_against_references(built.module, inputs, meta, saved=False)  # FlopCounterMode on meta
    same_figures(meta, analyse(built.module, inputs, cache=False))
    if built.bytes_needed > CPU_BYTES:
        return
    built = session.make(name, BuildOptions(device="cpu", need="storage")).built
    built.module.train()
    torch.manual_seed(0)
    inputs = forward_pass.make_inputs(built, list(built.spec.inputs))
    cpu = analyse(built.module, inputs)
    check_against_references(built.module, inputs, cpu)
    fused = any("scaled_dot_product_attention" in getattr(type(m), "code", "") for m in built.module.modules())
    if not fused:  # SDPA picks a fused kernel on CPU (no FLOP formula, fewer saved bytes) and the math path on meta
        assert cpu.saved_bytes == meta.saved_bytes


# --- random models ------------------------------------------------------------------------------


class Chain(nn.Module):
    """Applies its steps in order; a step is a module or (kind, module) for written ops."""

    def __init__(self, steps: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.kinds = [k for k, _ in steps]
        self.steps = nn.ModuleList([m for _, m in steps])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, m in zip(self.kinds, self.steps, strict=True):
            if kind == "residual":
                x = x + m(x)
            elif kind == "flat":  # a view in and out
                b = x.shape[0]
                x = m(x.reshape(-1, x.shape[-1])).view(b, -1, m.out_features)
            else:
                x = m(x)
        return x


class Attention(nn.Module):
    """Heads by view/transpose, then scaled_dot_product_attention or written matmul/softmax."""

    def __init__(self, d: int, heads: int, how: str, causal: bool) -> None:
        super().__init__()
        self.heads, self.how, self.causal = heads, how, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        if self.how == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        elif self.how == "matmul":
            o = torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d), dim=-1), v)
        elif self.how == "einsum":
            a = torch.einsum("bhtd,bhsd->bhts", q, k).softmax(-1)
            o = torch.einsum("bhts,bhsd->bhtd", a, v)
        else:  # bmm over flattened heads
            qq, kk, vv = (y.reshape(b * self.heads, t, -1) for y in (q, k, v))
            o = torch.bmm(torch.bmm(qq, kk.transpose(1, 2)).softmax(-1), vv).view(b, self.heads, t, -1)
        return self.out(o.transpose(1, 2).reshape(b, t, d))


class SelfMHA(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.mha(x, x, x)
        return out


class Embed(nn.Module):
    def __init__(self, vocab: int, d: int, body: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.body = body

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.body(self.embed(ids))


class Head(nn.Module):
    def __init__(self, body: nn.Module, features: int, classes: int) -> None:
        super().__init__()
        self.body = body
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.body(x), 1))


@dataclass
class Case:
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.device], list[torch.Tensor]]
    text: str

    def __repr__(self) -> str:
        return self.text


@st.composite
def sequence_block(draw: st.DrawFn, d: int, depth: int = 0) -> tuple[list[Callable[[], tuple[str, nn.Module]]], list[str]]:
    """Factories of steps that keep the width ``d`` (so residuals and repeats fit)."""
    steps: list[Callable[[], tuple[str, nn.Module]]] = []
    text: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["linear_relu_", "layernorm", "gelu", "attention", "mha", "flat", "residual", "repeat"]))
        if kind in ("residual", "repeat") and depth >= 2:
            kind = "layernorm"
        if kind == "linear_relu_":
            bias = draw(st.booleans())
            steps.append(lambda bias=bias: ("module", nn.Sequential(nn.Linear(d, d, bias=bias), nn.ReLU(inplace=True))))
        elif kind == "layernorm":
            steps.append(lambda: ("module", nn.LayerNorm(d)))
        elif kind == "gelu":
            steps.append(lambda: ("module", nn.GELU()))
        elif kind == "attention":
            heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
            how = draw(st.sampled_from(["sdpa", "matmul", "einsum", "bmm"]))
            causal = draw(st.booleans())
            steps.append(lambda heads=heads, how=how, causal=causal: ("module", Attention(d, heads, how, causal)))
            kind = f"attention[{how},{heads}]"
        elif kind == "mha":
            heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
            steps.append(lambda heads=heads: ("module", SelfMHA(d, heads)))
        elif kind == "flat":
            steps.append(lambda: ("flat", nn.Linear(d, d)))
        else:
            inner, inner_text = draw(sequence_block(d, depth + 1))
            n = draw(st.integers(2, 4)) if kind == "repeat" else 1

            def make(inner: list[Callable[[], tuple[str, nn.Module]]] = inner, n: int = n, kind: str = kind) -> tuple[str, nn.Module]:
                blocks = [Chain([f() for f in inner]) for _ in range(n)]
                if kind == "residual":
                    return ("residual", blocks[0])
                return ("module", nn.Sequential(*blocks))

            steps.append(make)
            kind = f"{kind}×{n}({', '.join(inner_text)})"
        text.append(kind)
    return steps, text


@st.composite
def sequence_models(draw: st.DrawFn) -> Case:
    d = draw(st.sampled_from([4, 8, 12]))
    b, t = draw(st.integers(1, 2)), draw(st.integers(1, 5))
    steps, text = draw(sequence_block(d))
    tokens = draw(st.booleans())

    def build() -> nn.Module:
        body = Chain([f() for f in steps])
        return Embed(11, d, body) if tokens else body

    def inputs(device: torch.device) -> list[torch.Tensor]:
        if tokens:
            return [torch.randint(0, 11, (b, t), device=device)]
        return [torch.rand(b, t, d, device=device)]

    return Case(build, inputs, f"seq d={d} b={b} t={t} tokens={tokens}: {text}")


@st.composite
def conv_models(draw: st.DrawFn) -> Case:
    dims = draw(st.sampled_from([1, 2]))
    conv, bn = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    c = draw(st.sampled_from([2, 4, 6]))
    size = draw(st.integers(5, 9))
    b = 2  # BatchNorm in training needs two values per channel
    plan: list[tuple[Any, ...]] = []
    channels, length = c, size
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "residual", "repeat", "pool"]))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
            out = draw(st.sampled_from([groups * k for k in (1, 2, 3)]))
            k = draw(st.integers(1, 3))
            stride = draw(st.integers(1, 2))
            pad = draw(st.integers(0, 1))
            if (length + 2 * pad - k) // stride + 1 < 1:
                continue
            plan.append(("conv", channels, out, k, stride, pad, groups, draw(st.booleans())))
            channels, length = out, (length + 2 * pad - k) // stride + 1
        elif kind == "pool":
            if length < 2:
                continue
            plan.append(("pool",))
            length //= 2
        else:
            plan.append((kind, channels, draw(st.integers(2, 3))))

    def block(ch: int) -> nn.Module:
        return nn.Sequential(conv(ch, ch, 3, padding=1, bias=False), bn(ch), nn.ReLU(inplace=True))

    def build() -> nn.Module:
        steps: list[tuple[str, nn.Module]] = []
        for p in plan:
            if p[0] == "conv":
                _, i, o, k, s, pad, g, with_bn = p
                layers: list[nn.Module] = [conv(i, o, k, stride=s, padding=pad, groups=g)]
                if with_bn:
                    layers.append(bn(o))
                layers.append(nn.ReLU(inplace=True))
                steps.append(("module", nn.Sequential(*layers)))
            elif p[0] == "pool":
                steps.append(("module", nn.MaxPool1d(2) if dims == 1 else nn.MaxPool2d(2)))
            elif p[0] == "residual":
                steps.append(("residual", block(p[1])))
            else:
                steps.append(("module", nn.Sequential(*[block(p[1]) for _ in range(p[2])])))
        return Head(Chain(steps), channels * length**dims, 3)

    def inputs(device: torch.device) -> list[torch.Tensor]:
        return [torch.rand(b, c, *([size] * dims), device=device)]

    return Case(build, inputs, f"conv{dims}d c={c} size={size} b={b}: {plan}")


def check_cached_and_on_meta(model: nn.Module, inputs: list[torch.Tensor]) -> Any:
    """The analysis of ``model`` with and without the cache equals FlopCounterMode and the
    saved-tensor hooks, on CPU and (FLOPs only: nothing is saved on meta) on meta; the cached result."""
    cached = analyse(model, inputs)
    check_against_references(model, inputs, cached)
    same_figures(cached, analyse(model, inputs, cache=False))
    meta = model.to("meta")
    meta_inputs = [t.to("meta") for t in inputs]
    on_meta = analyse(meta, meta_inputs)
    check_against_references(meta, meta_inputs, on_meta, saved=False)
    same_figures(on_meta, analyse(meta, meta_inputs, cache=False))
    return cached


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=st.one_of(sequence_models(), conv_models()))
def test_random_models_match_references_cached_or_not(case: Case) -> None:
    torch.manual_seed(0)
    check_cached_and_on_meta(case.build().train(), case.inputs(torch.device("cpu")))


# --- the cache on purpose-built models ----------------------------------------------------------


def resnet_like() -> nn.Module:
    """torchvision's BasicBlocks (in-place ReLU called twice, a residual, one downsample), repeated."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        *[RN.BasicBlock(8, 8) for _ in range(4)],
        RN.BasicBlock(8, 16, stride=2, own_downsample=True),
        *[RN.BasicBlock(16, 16) for _ in range(3)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


class Rotary(nn.Module):
    """A decoder block fed shared tensors (cos/sin) besides its input, as LLaMA's are."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d)
        self.attn = Attention(d, 2, "sdpa", True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = self.norm(x) * cos + self.norm(x).flip(-1) * sin
        x = x + self.attn(h)
        return x + self.mlp(self.norm(x))


class Decoder(nn.Module):
    def __init__(self, d: int = 8, layers: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, d)
        self.layers = nn.ModuleList([Rotary(d) for _ in range(layers)])
        self.shared = nn.Linear(d, d)  # one module called after every layer
        self.head = nn.Linear(d, 20, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        angle = torch.arange(t, device=ids.device)[:, None] * torch.ones(1, self.embed.embedding_dim, device=ids.device)
        cos, sin = angle.cos(), angle.sin()
        x = self.embed(ids)
        for layer in self.layers:
            x = self.shared(layer(x, cos, sin))
        return self.head(x)


class ViewOut(nn.Module):
    """Returns a view of its result (not replayable) and mutates nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)[:, :3]


class TwoOut(nn.Module):
    """Two outputs, the second ignored by its caller (its backward differs from a full one)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.b(x)


class UsesFirst(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.parts = nn.ModuleList([TwoOut() for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.parts:
            x, _ = p(x)
        return x


class Views(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.parts = nn.ModuleList([ViewOut() for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], dim=1)


CACHE_MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], list[torch.Tensor]]]] = {
    "resnet-like": (resnet_like, lambda: [torch.rand(2, 3, 12, 12)]),
    "decoder": (Decoder, lambda: [torch.randint(0, 20, (2, 6))]),
    "in-place chain": (
        lambda: nn.Sequential(*[nn.Sequential(nn.Linear(6, 6), nn.ReLU(inplace=True), nn.Dropout(0.0)) for _ in range(5)]),
        lambda: [torch.rand(3, 6)],
    ),
    "unused outputs": (lambda: UsesFirst(4), lambda: [torch.rand(3, 6)]),
    "view outputs": (lambda: Views(4), lambda: [torch.rand(3, 6)]),
}


@pytest.mark.parametrize("name", list(CACHE_MODELS))
def test_cache_gives_the_uncached_figures(name: str) -> None:
    build, make_inputs = CACHE_MODELS[name]
    torch.manual_seed(0)
    cached = check_cached_and_on_meta(build().train(), make_inputs())
    if name in ("resnet-like", "decoder", "in-place chain"):
        assert cached.replayed > 0
    if name == "unused outputs":
        assert cached.reruns == 1  # the replays were found out after the backward and run again


def test_repeated_blocks_are_run_once() -> None:
    """Replays skip the block's forward: it runs once per distinct input (the first block's input
    needs no gradient, the others' do)."""
    calls = []

    class Counted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return torch.relu(self.fc(x)) + x

    model = nn.Sequential(*[Counted() for _ in range(10)]).to("meta")
    costs = analyse(model, [torch.rand(2, 4, device="meta")])
    assert len(calls) == 2 and costs.replayed == 8
    assert [c.path for c in costs.modules.values() if c.type == "Counted"] == [str(i) for i in range(10)]


# --- forward steps of graph modules -------------------------------------------------------------


class Stepping(nn.Module):
    """Reports each step of its forward while someone listens, as graph modules do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if tracing.active():
            tracing.emit(tracing.Step(self, "h", "fc", 1, "h = fc(x)", h))
        out = torch.cat([h, x], dim=-1)[..., :4] + 1
        if tracing.active():
            tracing.emit(tracing.Step(self, "out", "torch.cat", 2, "out = ...", out))
        return out


class Listener:
    def __init__(self, root: nn.Module) -> None:
        self.names = {id(m): p for p, m in root.named_modules()}
        self.seen: list[tuple[str, str, str, list[int]]] = []

    def on_step(self, step: tracing.Step) -> None:
        self.seen.append((self.names[id(step.module)], step.name, step.op, list(step.output.shape)))


def steps_seen(model: nn.Module, x: torch.Tensor, cache: bool) -> tuple[list[Any], Costs]:
    listener = Listener(model)
    with tracing.listen(listener):
        costs = analyse(model, [x], cache=cache, backward=False)
    return listener.seen, costs


def test_steps_of_replayed_blocks_are_replayed() -> None:
    model = nn.Sequential(*[Stepping() for _ in range(6)]).to("meta")
    x = torch.rand(2, 4, device="meta")
    cached, costs = steps_seen(model, x, cache=True)
    uncached, _ = steps_seen(model, x, cache=False)
    assert costs.replayed == 4  # the first block's input needs no gradient, the second's does
    assert cached == uncached
    assert [s[0] for s in cached] == [str(i) for i in range(6) for _ in range(2)]
    assert [(s.name, s.op) for s in costs.steps] == [("h", "fc"), ("out", "torch.cat")] * 6


# --- mixed precision ----------------------------------------------------------------------------


def saved_low_precision_weights(model: nn.Module, inputs: list[torch.Tensor], dtype: torch.dtype) -> int:
    """How many of the tensors autocast's forward saves are low-precision copies of 2-d weights."""
    shapes = {tuple(p.shape) for n, p in model.named_parameters() if p.dim() == 2}
    found: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.dtype == dtype and (tuple(t.shape) in shapes or tuple(t.t().shape) in shapes if t.dim() == 2 else False):
            found.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=dtype):
        model(*inputs)
    return len(found)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["tinylm", "mlp-bn", "lenet", "decoder"])
def test_autocast_matches_what_autocast_saves(name: str, dtype: torch.dtype) -> None:
    """Under CPU autocast the figures are those of the real autocast forward, which saves the
    low-precision copies of the weights it casts; on meta, where autocast does not act, the same
    figures come from CPU-reporting fake tensors (attention on its math path in both)."""
    if name == "decoder":
        torch.manual_seed(0)
        model = Decoder().train()
        inputs = [torch.randint(0, 20, (2, 6))]
    else:
        built = session.make(name, BuildOptions(device="cpu", need="storage")).built
        model = built.module.train()
        torch.manual_seed(0)
        inputs = forward_pass.make_inputs(built, list(built.spec.inputs))
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        cpu = analyse(model, inputs, autocast=dtype)
        uncached = analyse(model, inputs, autocast=dtype, cache=False)
        ref = flop_reference(model, inputs, autocast=dtype)
        saved = saved_reference(model, inputs, autocast=dtype)
        casts = saved_low_precision_weights(model, inputs, dtype)
    assert (cpu.flops_forward, cpu.flops_backward, cpu.saved_bytes) == (ref.forward, ref.backward, saved)
    same_figures(cpu, uncached)
    assert casts > 0  # what autocast really keeps: the weights' casts, besides the activations
    fake_saved = fake_cpu_saved_reference(model, inputs, dtype)
    meta = model.to("meta")
    meta_inputs = [t.to("meta") for t in inputs]
    on_meta = analyse(meta, meta_inputs, autocast=dtype)
    assert (on_meta.flops_forward, on_meta.flops_backward, on_meta.saved_bytes) == (cpu.flops_forward, cpu.flops_backward, fake_saved)
    same_figures(on_meta, analyse(meta, meta_inputs, autocast=dtype, cache=False))
    assert all(type(p) is nn.Parameter and p.device.type == "meta" for p in meta.parameters())  # put back


def fake_cpu_saved_reference(model: nn.Module, inputs: list[torch.Tensor], dtype: torch.dtype) -> int:
    """The same forward on fake CPU tensors (``FakeTensorMode.from_tensor`` of the CPU model, run
    through ``torch.func.functional_call``): CPU autocast with meta kernels. It differs from CPU
    where a meta kernel returns other dtypes than the CPU one (layer_norm's saved statistics in
    bfloat16 instead of float32)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    named = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}
    made: dict[int, torch.Tensor] = {}
    for t in named.values():
        if id(t) not in made:
            f = mode.from_tensor(t)
            made[id(t)] = nn.Parameter(f, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else f
    state = {k: made[id(t)] for k, t in named.items()}
    skip = {t.untyped_storage()._cdata for t in made.values()}
    seen: dict[int, int] = {}
    keep: list[Any] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()  # no data pointers on fake tensors: the storage's identity
        keep.append(s)
        if s._cdata not in skip:
            seen[s._cdata] = s.nbytes()
        return t

    with (
        mode,
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        torch.autocast("cpu", dtype=dtype),
        torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH),
    ):
        torch.func.functional_call(model, state, tuple(mode.from_tensor(t) for t in inputs), tie_weights=False)
    return sum(seen.values())


# --- failures and leftovers ---------------------------------------------------------------------


def test_failure_names_the_module_and_its_input() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(ForwardFailed) as info:
        analyse(model, [torch.rand(3, 4)])
    f = info.value.failure
    assert f is not None and f.path == "1.1" and f.input_shapes == [[3, 8]]
    assert f.modules[0] is model[1][1] and f.modules[1] is model[1] and f.modules[2] is model
    assert "forward" not in model[1][1].__dict__  # the routing is removed


def test_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(0)
    model = Decoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 20, (2, 6))
    analyse(model, [x])
    assert all(p.grad is None for p in model.parameters())
    assert not any("forward" in m.__dict__ for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_global_module_hooks_turn_the_cache_off() -> None:
    """A replay would skip hooks registered for every module; with one registered, nothing is replayed."""
    seen: list[str] = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
    try:
        model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)]).to("meta")
        costs = analyse(model, [torch.rand(2, 4, device="meta")])
    finally:
        handle.remove()
    assert costs.replayed == 0 and seen.count("Linear") == 5


def test_storage_identity_without_data_pointers() -> None:
    """On meta every data pointer is 0; the storage's identity holds for views and in-place results."""
    from netinspect.analysis.engine import storage_key

    a = torch.empty(4, 6, device="meta")
    b = torch.empty(4, 6, device="meta")
    assert a.data_ptr() == b.data_ptr() == 0
    assert storage_key(a) != storage_key(b)
    views = [a.view(24), a[1:], a.t(), a.unsqueeze(0), a.relu_(), a.mul_(2), a.as_strided((2,), (1,), 3)]
    assert {storage_key(v) for v in views} == {storage_key(a)}
    assert storage_key(a.clone()) != storage_key(a)
