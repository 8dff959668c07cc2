"""The plain-PyTorch references themselves, checked against their upstream sources without netinspect.

Each reference (``bench/reference_nets.py``, ``tests/reference_models.py``) must have the published
parameter count, the upstream ``state_dict`` layout (keys, order, shapes: written out below from the
upstream source, not read from the reference), a forward pass of the expected shape, and the
behaviour its docstring claims (residuals, causal attention, grouped-query heads, rotary tables,
ties, init). The configs are checked against these references elsewhere (tests/test_configs.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import reference_models as R
import reference_nets as RN
import torch
import torch.nn.functional as F
from conftest import assert_state_equal, unique_numel
from torch import Tensor, nn

Layout = list[tuple[str, tuple[int, ...]]]


def layout(module: nn.Module) -> Layout:
    return [(k, tuple(v.shape)) for k, v in module.state_dict(keep_vars=True).items()]


def meta(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return build()


# --------------------------------------------------------------------------- expected layouts (upstream)


def _bn(prefix: str, c: int) -> Layout:
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def torchvision_resnet_layout(bottleneck: bool, blocks: list[int]) -> Layout:
    """torchvision/models/resnet.py: ResNet.__init__ registers conv1, bn1, layer1..4, fc; _make_layer
    puts the downsample (1x1 conv, BN) on a stage's first block when the stride or width changes."""
    exp = 4 if bottleneck else 1
    out: Layout = [("conv1.weight", (64, 3, 7, 7)), *_bn("bn1", 64)]
    inplanes = 64
    for stage, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks, strict=True), start=1):
        for j in range(n):
            p = f"layer{stage}.{j}"
            stride = 2 if stage > 1 and j == 0 else 1
            if bottleneck:
                out += [(f"{p}.conv1.weight", (planes, inplanes, 1, 1)), *_bn(f"{p}.bn1", planes)]
                out += [(f"{p}.conv2.weight", (planes, planes, 3, 3)), *_bn(f"{p}.bn2", planes)]
                out += [(f"{p}.conv3.weight", (planes * exp, planes, 1, 1)), *_bn(f"{p}.bn3", planes * exp)]
            else:
                out += [(f"{p}.conv1.weight", (planes, inplanes, 3, 3)), *_bn(f"{p}.bn1", planes)]
                out += [(f"{p}.conv2.weight", (planes, planes, 3, 3)), *_bn(f"{p}.bn2", planes)]
            if j == 0 and (stride != 1 or inplanes != planes * exp):
                out += [(f"{p}.downsample.0.weight", (planes * exp, inplanes, 1, 1)), *_bn(f"{p}.downsample.1", planes * exp)]
            inplanes = planes * exp
    return [*out, ("fc.weight", (1000, 512 * exp)), ("fc.bias", (1000,))]


def torchvision_vit_b_16_layout() -> Layout:
    """torchvision/models/vision_transformer.py: the root's own class_token first, then conv_proj,
    encoder (pos_embedding, layers.encoder_layer_{i}, ln), heads.head; MultiheadAttention's packed
    in_proj and out_proj; the MLP's Linear layers at indices 0 and 3."""
    d, mlp, seq = 768, 3072, (224 // 16) ** 2 + 1
    out: Layout = [("class_token", (1, 1, d)), ("conv_proj.weight", (d, 3, 16, 16)), ("conv_proj.bias", (d,))]
    out.append(("encoder.pos_embedding", (1, seq, d)))
    for i in range(12):
        p = f"encoder.layers.encoder_layer_{i}"
        out += [(f"{p}.ln_1.weight", (d,)), (f"{p}.ln_1.bias", (d,))]
        out += [(f"{p}.self_attention.in_proj_weight", (3 * d, d)), (f"{p}.self_attention.in_proj_bias", (3 * d,))]
        out += [(f"{p}.self_attention.out_proj.weight", (d, d)), (f"{p}.self_attention.out_proj.bias", (d,))]
        out += [(f"{p}.ln_2.weight", (d,)), (f"{p}.ln_2.bias", (d,))]
        out += [(f"{p}.mlp.0.weight", (mlp, d)), (f"{p}.mlp.0.bias", (mlp,)), (f"{p}.mlp.3.weight", (d, mlp)), (f"{p}.mlp.3.bias", (d,))]
    out += [("encoder.ln.weight", (d,)), ("encoder.ln.bias", (d,)), ("heads.head.weight", (1000, d)), ("heads.head.bias", (1000,))]
    return out


def hf_llama_layout(vocab: int, d: int, ffn: int, n_layers: int, n_heads: int, n_kv_heads: int, **_: object) -> Layout:
    """transformers/models/llama/modeling_llama.py: LlamaForCausalLM.model (embed_tokens, layers.{i}
    with self_attn q/k/v/o, mlp gate/up/down, input_layernorm, post_attention_layernorm; norm;
    rotary_emb has no persistent tensor), lm_head; no biases."""
    hd = d // n_heads
    out: Layout = [("model.embed_tokens.weight", (vocab, d))]
    for i in range(n_layers):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.self_attn.q_proj.weight", (n_heads * hd, d)),
            (f"{p}.self_attn.k_proj.weight", (n_kv_heads * hd, d)),
            (f"{p}.self_attn.v_proj.weight", (n_kv_heads * hd, d)),
            (f"{p}.self_attn.o_proj.weight", (d, n_heads * hd)),
            (f"{p}.mlp.gate_proj.weight", (ffn, d)),
            (f"{p}.mlp.up_proj.weight", (ffn, d)),
            (f"{p}.mlp.down_proj.weight", (d, ffn)),
            (f"{p}.input_layernorm.weight", (d,)),
            (f"{p}.post_attention_layernorm.weight", (d,)),
        ]
    return [*out, ("model.norm.weight", (d,)), ("lm_head.weight", (vocab, d))]


def hf_gpt2_layout(vocab: int = 50257, n_positions: int = 1024, d: int = 1600, n_layers: int = 48) -> Layout:
    """transformers/models/gpt2/modeling_gpt2.py: transformer (wte, wpe, h.{i}: ln_1, attn.c_attn,
    attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj; ln_f), lm_head. Conv1D weights are [in, out]."""
    out: Layout = [("transformer.wte.weight", (vocab, d)), ("transformer.wpe.weight", (n_positions, d))]
    for i in range(n_layers):
        p = f"transformer.h.{i}"
        out += [(f"{p}.ln_1.weight", (d,)), (f"{p}.ln_1.bias", (d,))]
        out += [(f"{p}.attn.c_attn.weight", (d, 3 * d)), (f"{p}.attn.c_attn.bias", (3 * d,))]
        out += [(f"{p}.attn.c_proj.weight", (d, d)), (f"{p}.attn.c_proj.bias", (d,))]
        out += [(f"{p}.ln_2.weight", (d,)), (f"{p}.ln_2.bias", (d,))]
        out += [(f"{p}.mlp.c_fc.weight", (d, 4 * d)), (f"{p}.mlp.c_fc.bias", (4 * d,))]
        out += [(f"{p}.mlp.c_proj.weight", (4 * d, d)), (f"{p}.mlp.c_proj.bias", (d,))]
    return [*out, ("transformer.ln_f.weight", (d,)), ("transformer.ln_f.bias", (d,)), ("lm_head.weight", (vocab, d))]


def torchvision_inception_layout(cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int) -> Layout:
    """torchvision/models/googlenet.py: Inception's branch1 (BasicConv2d: conv, bn), branch2 and
    branch3 (two BasicConv2d each, the second 3x3), branch4 (max-pool, BasicConv2d)."""

    def basic(prefix: str, cin: int, cout: int, k: int) -> Layout:
        return [(f"{prefix}.conv.weight", (cout, cin, k, k)), *_bn(f"{prefix}.bn", cout)]

    return [
        *basic("branch1", cin, c1, 1),
        *basic("branch2.0", cin, c3r, 1),
        *basic("branch2.1", c3r, c3, 3),
        *basic("branch3.0", cin, c5r, 1),
        *basic("branch3.1", c5r, c5, 3),
        *basic("branch4.1", cin, pool, 1),
    ]


# --------------------------------------------------------------------------- counts and layouts

BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": RN.resnet18,
    "resnet50": RN.resnet50,
    "vit-b-16": RN.vit_b_16,
    "llama-7b": lambda: RN.llama(**RN.LLAMA["llama-7b"]),  # type: ignore[arg-type]
    "llama-70b": lambda: RN.llama(**RN.LLAMA["llama-70b"]),  # type: ignore[arg-type]
    "gpt2-xl": RN.gpt2_xl,
}

LAYOUTS: dict[str, Callable[[], Layout]] = {
    "resnet18": lambda: torchvision_resnet_layout(False, [2, 2, 2, 2]),
    "resnet50": lambda: torchvision_resnet_layout(True, [3, 4, 6, 3]),
    "vit-b-16": torchvision_vit_b_16_layout,
    "llama-7b": lambda: hf_llama_layout(**RN.LLAMA["llama-7b"]),  # type: ignore[arg-type]
    "llama-70b": lambda: hf_llama_layout(**RN.LLAMA["llama-70b"]),  # type: ignore[arg-type]
    "gpt2-xl": hf_gpt2_layout,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_published_parameter_count(name: str) -> None:
    model = meta(BUILDERS[name])
    assert unique_numel(model) == R.EXPECTED_UNIQUE[name]
    assert unique_numel(meta(R.REFERENCES[name])) == R.EXPECTED_UNIQUE[name]  # the table's builder is the same network


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_state_dict_layout_is_upstream(name: str) -> None:
    assert layout(meta(BUILDERS[name])) == LAYOUTS[name]()


def test_state_dict_sizes_stated_upstream() -> None:
    """The figures quoted for the layouts: 723 tensors in HF's Llama-2-70B, 291 in LLaMA-7B."""
    assert len(LAYOUTS["llama-70b"]()) == 723
    assert len(LAYOUTS["llama-7b"]()) == 291
    assert sum(math.prod(s) for _, s in LAYOUTS["llama-70b"]()) == 68_976_648_192
    gpt2 = LAYOUTS["gpt2-xl"]()
    assert sum(math.prod(s) for k, s in gpt2 if k != "lm_head.weight") == 1_557_611_200


def test_big_dtypes() -> None:
    for name in ("llama-7b", "llama-70b"):
        assert {p.dtype for p in R.REFERENCES[name]().parameters()} == {R.DTYPES[name]}
    assert {p.dtype for p in R.llama_tiny().parameters()} == {torch.float32}


def test_inception_layout_and_output() -> None:
    torch.manual_seed(0)
    block = R.inception()
    assert layout(block) == torchvision_inception_layout(192, 64, 96, 128, 16, 32, 32)
    x = torch.rand(1, 192, 28, 28)
    y = block(x)
    assert y.shape == (1, 64 + 128 + 32 + 32, 28, 28)  # GoogLeNet's inception3a: 256 channels
    # the four branches, in order, along the channels
    parts = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
    assert torch.equal(y, torch.cat(parts, 1))
    assert torch.equal(block.branch1(x), F.relu(block.branch1.bn(block.branch1.conv(x))))


# --------------------------------------------------------------------------- ResNet


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("build", [RN.resnet18, RN.resnet50], ids=["resnet18", "resnet50"])
def test_resnet_values_do_not_depend_on_where_downsample_is_built(build: Callable[..., nn.Module], seed: int) -> None:
    """torchvision builds a stage's downsample before its block; a model file builds it last, in
    ``modules:`` order. The init loop overwrites every convolution, so the values are the same."""
    torch.manual_seed(seed)
    upstream = build()
    torch.manual_seed(seed)
    declared = build(declaration_order=True)
    assert str(declared) == str(upstream)
    assert_state_equal(declared.state_dict(), upstream.state_dict())


def test_resnet_init_loop() -> None:
    torch.manual_seed(0)
    model = RN.resnet50()
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias)), name
        elif isinstance(m, nn.Conv2d) and m.weight.numel() >= 100_000:
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02), name  # kaiming_normal_ fan_out, relu
    fc = model.fc.weight  # PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in))
    assert fc.abs().max().item() <= 1 / math.sqrt(2048)


@pytest.mark.parametrize("build", [RN.resnet18, RN.resnet50], ids=["resnet18", "resnet50"])
def test_resnet_blocks_add_their_shortcut(build: Callable[[], nn.Module]) -> None:
    """With its last BatchNorm zeroed a block's residual branch is 0, so it returns relu(shortcut)."""
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        for stage in (model.layer2, model.layer3):
            first, second = stage[0], stage[1]
            x = torch.randn(2, first.conv1.in_channels, 16, 16)
            last_bn = first.bn3 if isinstance(first, RN.Bottleneck) else first.bn2
            nn.init.zeros_(last_bn.weight)
            assert first.downsample is not None
            assert torch.equal(first(x), F.relu(first.downsample(x)))
            y = torch.randn(2, second.conv1.in_channels, 8, 8)
            nn.init.zeros_((second.bn3 if isinstance(second, RN.Bottleneck) else second.bn2).weight)
            assert second.downsample is None
            assert torch.equal(second(y), F.relu(y))


def test_resnet18_forward_and_flops() -> None:
    """ResNet-18 at 224x224: 3,628,146,688 FLOPs as FlopCounterMode counts them (1.81 G multiply-adds)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = RN.resnet18()
    x = torch.rand(1, 3, 224, 224)
    counter = FlopCounterMode(display=False)
    with counter:
        y = model(x)
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    assert counter.get_total_flops() == 3_628_146_688


@pytest.mark.parametrize(("name", "shape", "out"), [("resnet50", (2, 3, 224, 224), (2, 1000)), ("vit-b-16", (2, 3, 224, 224), (2, 1000))])
def test_vision_forward_on_meta(name: str, shape: tuple[int, ...], out: tuple[int, ...]) -> None:
    model = meta(BUILDERS[name])
    assert model(torch.empty(shape, device="meta")).shape == out


# --------------------------------------------------------------------------- ViT


def test_vit_init_and_token() -> None:
    torch.manual_seed(0)
    vit = RN.vit_b_16()
    assert torch.equal(vit.class_token, torch.zeros(1, 1, 768))
    assert torch.equal(vit.heads.head.weight, torch.zeros(1000, 768)) and torch.equal(vit.heads.head.bias, torch.zeros(1000))
    assert torch.equal(vit.conv_proj.bias, torch.zeros(768))
    assert vit.conv_proj.weight.abs().max().item() <= 2.0  # trunc_normal_'s absolute bounds
    assert vit.conv_proj.weight.std().item() == pytest.approx(math.sqrt(1 / 768), rel=0.05)
    assert vit.encoder.pos_embedding.std().item() == pytest.approx(0.02, rel=0.05)
    block = vit.encoder.layers.encoder_layer_0
    assert block.self_attention.batch_first
    assert block.mlp[0].bias.abs().max().item() < 1e-5  # normal_(std=1e-6)
    limit = math.sqrt(6 / (768 + 3072))  # xavier_uniform_
    assert block.mlp[0].weight.abs().max().item() <= limit and block.mlp[0].weight.abs().max().item() > 0.99 * limit
    # the classifier reads the class token's position
    x = torch.rand(1, 3, 224, 224)
    nn.init.normal_(vit.heads.head.weight)
    with torch.no_grad():
        feats = vit.encoder(torch.cat([vit.class_token, vit.conv_proj(x).flatten(2).transpose(1, 2)], dim=1))
        assert torch.allclose(vit(x), vit.heads(feats[:, 0]), atol=1e-5)


# --------------------------------------------------------------------------- LLaMA


def hf_rotary(head_dim: int, theta: float, t: int) -> tuple[Tensor, Tensor]:
    """HF's default rope: inv_freq[None, :, None] @ position_ids[:, None, :], transposed, doubled."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype=torch.float) / head_dim))
    position_ids = torch.arange(t).unsqueeze(0)
    freqs = (inv_freq[None, :, None].float() @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[0], emb.sin()[0]


def eager_llama(model: RN.LlamaForCausalLM, ids: Tensor) -> Tensor:
    """HF's eager attention path, written independently: repeat_kv by expand + reshape, rotate_half,
    an additive causal mask, softmax in float32; RMSNorm as LlamaRMSNorm computes it."""

    def rms(norm: nn.RMSNorm, x: Tensor) -> Tensor:
        assert norm.weight is not None and norm.eps is not None
        return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))

    def rotate_half(x: Tensor) -> Tensor:
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
        b, h, t, hd = x.shape
        return x[:, :, None, :, :].expand(b, h, n_rep, t, hd).reshape(b, h * n_rep, t, hd)

    inner = model.model
    x = inner.embed_tokens(ids)
    b, t, _ = x.shape
    cos, sin = hf_rotary(inner.rotary_emb.head_dim, inner.rotary_emb.theta, t)
    mask = torch.full((t, t), float("-inf")).triu(1)
    for layer in inner.layers:
        attn = layer.self_attn
        hd = attn.head_dim
        h = rms(layer.input_layernorm, x)
        q = attn.q_proj(h).view(b, t, -1, hd).transpose(1, 2)
        k = attn.k_proj(h).view(b, t, -1, hd).transpose(1, 2)
        v = attn.v_proj(h).view(b, t, -1, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        n_rep = attn.n_heads // attn.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        w = torch.softmax(q @ k.transpose(2, 3) * hd**-0.5 + mask, dim=-1, dtype=torch.float32)
        o = (w @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + attn.o_proj(o)
        m = layer.mlp
        x = x + m.down_proj(F.silu(m.gate_proj(rms(layer.post_attention_layernorm, x))) * m.up_proj(rms(layer.post_attention_layernorm, x)))
    return model.lm_head(rms(inner.norm, x))


def test_llama_tiny_is_grouped_query_attention() -> None:
    model = R.llama_tiny()
    cfg = RN.LLAMA["llama-tiny"]
    attn = model.model.layers[0].self_attn
    assert (attn.n_heads, attn.n_kv_heads, attn.head_dim) == (cfg["n_heads"], cfg["n_kv_heads"], 16)
    assert attn.k_proj.out_features == 2 * 16 and attn.q_proj.out_features == 4 * 16
    assert layout(model) == hf_llama_layout(**cfg)  # type: ignore[arg-type]
    assert [type(m).__name__ for m in model.model.children()] == ["Embedding", "Sequential", "RMSNorm", "LlamaRotaryEmbedding"]
    assert not any(True for _ in model.model.rotary_emb.buffers())


def test_llama_rotary_tables_equal_hf() -> None:
    rope = RN.LlamaRotaryEmbedding(128, 10000.0)
    cos, sin = rope(torch.zeros(1, 37, 8))
    hf_cos, hf_sin = hf_rotary(128, 10000.0, 37)
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)
    cos16, _ = rope(torch.zeros(1, 5, 8, dtype=torch.bfloat16))
    assert cos16.dtype == torch.bfloat16


def test_llama_tiny_forward_equals_hf_eager_path() -> None:
    torch.manual_seed(0)
    model = R.llama_tiny()
    ids = torch.randint(0, 512, (2, 16))
    with torch.no_grad():
        logits = model(ids)
        expected = eager_llama(model, ids)
    assert logits.shape == (2, 16, 512)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)


def small_gpt2() -> nn.Module:
    return RN.GPT2LMHeadModel(vocab=97, n_positions=32, d=48, n_layers=2, n_head=4, pdrop=0.1)


@pytest.mark.parametrize("build", [R.llama_tiny, R.tinylm, small_gpt2], ids=["llama-tiny", "tinylm", "gpt2"])
def test_language_models_are_causal(build: Callable[[], nn.Module]) -> None:
    """Changing the last token changes no logit before it; changing the first changes later ones."""
    torch.manual_seed(0)
    model = build().eval()
    ids = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        base = model(ids)
        last = ids.clone()
        last[0, -1] = (last[0, -1] + 1) % 97
        first = ids.clone()
        first[0, 0] = (first[0, 0] + 1) % 97
        assert torch.equal(model(last)[:, :-1], base[:, :-1])
        assert not torch.allclose(model(first)[:, 1:], base[:, 1:])


@pytest.mark.parametrize("name", ["llama-7b", "llama-70b", "gpt2-xl"])
def test_big_language_models_run_on_meta(name: str) -> None:
    model = R.REFERENCES[name]()
    vocab = 50257 if name == "gpt2-xl" else 32000
    ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
    out = model(ids)
    assert out.shape == (1, 16, vocab)
    assert out.dtype == (torch.float32 if name == "gpt2-xl" else torch.bfloat16)


# --------------------------------------------------------------------------- GPT-2


def test_gpt2_conv1d_is_a_transposed_linear() -> None:
    torch.manual_seed(0)
    conv = RN.Conv1D(12, 5)
    assert conv.weight.shape == (5, 12) and torch.equal(conv.bias, torch.zeros(12))
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.5)  # normal_(std=0.02) on 60 values
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(conv(x), F.linear(x, conv.weight.t(), conv.bias))


def eager_gpt2(model: RN.GPT2LMHeadModel, ids: Tensor) -> Tensor:
    """HF GPT2Attention._attn written independently: split heads, scaled scores, causal mask filled
    with the dtype's minimum, softmax, merge heads; GELU tanh; LayerNorms; the tied head."""
    tr = model.transformer
    t = ids.shape[1]
    x = tr.wte(ids) + tr.wpe(torch.arange(t).unsqueeze(0))
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for block in tr.h:
        a = block.attn
        h = block.ln_1(x)
        qkv = h @ a.c_attn.weight + a.c_attn.bias
        q, k, v = (z.view(1, t, a.n_head, -1).permute(0, 2, 1, 3) for z in qkv.split(a.d, dim=2))
        w = (q @ k.transpose(-1, -2)) / (v.size(-1) ** 0.5)
        w = torch.where(causal, w, torch.finfo(w.dtype).min).softmax(-1)
        o = (w @ v).permute(0, 2, 1, 3).reshape(1, t, a.d)
        x = x + (o @ a.c_proj.weight + a.c_proj.bias)
        m = block.mlp
        x = x + (F.gelu(block.ln_2(x) @ m.c_fc.weight + m.c_fc.bias, approximate="tanh") @ m.c_proj.weight + m.c_proj.bias)
    return tr.ln_f(x) @ tr.wte.weight.t()


def test_gpt2_forward_equals_hf_eager_path_and_head_is_tied() -> None:
    torch.manual_seed(0)
    model = small_gpt2().eval()
    assert model.lm_head.weight is model.transformer.wte.weight
    ids = torch.randint(0, 97, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), eager_gpt2(model, ids), atol=1e-5, rtol=1e-4)
    big = R.gpt2_xl()
    assert big.lm_head.weight is big.transformer.wte.weight
    assert len(big.state_dict()) == 581 and len(list(big.named_parameters())) == 580


# --------------------------------------------------------------------------- tinylm, d2l-lazy


def test_tinylm_is_a_transformer_with_a_tied_head() -> None:
    torch.manual_seed(0)
    model = R.tinylm()
    assert model.head.weight is model.embed.weight
    assert unique_numel(model) + 512 * 64 == R.EXPECTED_BY_PATH["tinylm"]
    keys = list(model.state_dict())
    assert keys[:2] == ["pos_embed", "embed.weight"] and keys[-1] == "head.weight"
    ids = torch.randint(0, 512, (2, 16))
    out = model(ids)
    assert out.shape == (2, 16, 512)
    # each block adds to its input (residuals): with every projection out of a block zeroed, it is the identity
    block = model.blocks[0]
    with torch.no_grad():
        for lin in (block.proj, block.fc_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        x = torch.randn(2, 16, 64)
        assert torch.equal(block(x), x)


def test_d2l_lazy_draws_the_input_then_each_layer_in_call_order() -> None:
    """D2L "Lazy Initialization": nothing is drawn at construction; X is drawn, then each LazyLinear
    initialises when the forward pass reaches it: the values of seed; rand(2, 20); Linear(20, 256);
    Linear(256, 10)."""
    torch.manual_seed(0)
    net = R.d2l_lazy()
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear]
    torch.manual_seed(0)
    torch.rand(2, 20)
    eager = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    assert_state_equal(net.state_dict(), eager.state_dict())
    assert str(net) == str(eager)


def test_every_reference_table_entry_builds() -> None:
    """Every config named in the tables has a builder whose module is what the tables say."""
    for name, count in R.EXPECTED_UNIQUE.items():
        if name in BUILDERS:
            continue  # built above
        assert unique_numel(meta(R.REFERENCES[name])) == count, name


def _modules(model: nn.Module) -> Iterator[str]:
    return (type(m).__name__ for m in model.modules())


def test_class_names_are_upstream() -> None:
    """The classes print(model) shows: torchvision's and Hugging Face's names."""
    names = set(_modules(meta(RN.resnet50)))
    assert {"ResNet", "Bottleneck", "Conv2d", "BatchNorm2d"} <= names
    assert "BasicBlock" in set(_modules(meta(RN.resnet18)))
    assert {"VisionTransformer", "Encoder", "EncoderBlock", "MultiheadAttention"} <= set(_modules(meta(RN.vit_b_16)))
    assert {"LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP", "LlamaRotaryEmbedding", "RMSNorm"} <= set(
        _modules(R.llama_tiny())
    )
    small_gpt2 = RN.GPT2LMHeadModel(vocab=11, n_positions=8, d=8, n_layers=1, n_head=2)
    assert {"GPT2LMHeadModel", "GPT2Model", "GPT2Block", "GPT2Attention", "GPT2MLP", "Conv1D"} <= set(_modules(small_gpt2))
