"""Plain-PyTorch reference networks, shared by the benchmark (``bench/plain.py``, what a user would
write) and the tests (``tests/reference_models.py``, ``tests/test_references.py``).

Each class is written after the upstream source named in its docstring (structure, construction
order, init, forward), in torch only: torchvision and transformers are not dependencies. Every
forward uses only what a model file's ``forward:`` may write (child calls, ``torch.*``/``F.*`` from
the allow-list, tensor methods, arithmetic), so that ``configs/<name>.yaml`` can build the same
module op for op. Where the upstream module differs from what a model file can express, the
docstring says how.

* ``resnet18()``, ``resnet50()``: torchvision ``ResNet`` (``BasicBlock``, ``Bottleneck``), its init loop.
* ``vit_b_16()``: torchvision ``VisionTransformer``.
* ``llama(**LLAMA[name])``: Hugging Face ``LlamaForCausalLM`` (rotary embeddings, grouped-query attention).
* ``gpt2_xl()``: Hugging Face ``GPT2LMHeadModel`` (``Conv1D`` projections, head tied to ``wte``).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Construct parameters in ``dtype`` (``torch.set_default_dtype``, as transformers' ``torch_dtype=`` does)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


# --------------------------------------------------------------------------- ResNet
# After torchvision/models/resnet.py (pytorch/vision; the layout read at commit f50e776b, unchanged
# in structure, init loop and forward since: ResNet v1.5, the stride on the 3x3 convolution).


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


class BasicBlock(nn.Module):
    """torchvision ``BasicBlock`` (groups 1, base width 64, no dilation).

    ``downsample`` is built by the caller before the block, as torchvision's ``_make_layer`` does,
    and registered last. With ``own_downsample=True`` the block builds it itself, last: the order
    in which a model file's ``modules:`` constructs it.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, own_downsample: bool = False):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        if own_downsample and (stride != 1 or inplanes != planes * self.expansion):
            downsample = _downsample(inplanes, planes * self.expansion, stride)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ``Bottleneck`` (ResNet v1.5: stride on ``conv2``; groups 1, base width 64)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, own_downsample: bool = False):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        if own_downsample and (stride != 1 or inplanes != planes * self.expansion):
            downsample = _downsample(inplanes, planes * self.expansion, stride)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision ``ResNet``: stem, four stages, pooling, ``fc``; then the constructor's init loop
    (kaiming_normal_ fan_out/relu on every Conv2d, weight 1 and bias 0 on every BatchNorm2d).
    ``zero_init_residual`` is False, torchvision's default.

    ``declaration_order=True`` lets each block build its own downsample after its other children
    (the construction order of a model file); the values at a seed are the same either way, since
    the convolutions' default init is overwritten by the loop and BatchNorm draws nothing.
    """

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000, declaration_order: bool = False
    ):
        super().__init__()
        self.inplanes = 64
        self.declaration_order = declaration_order
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if not self.declaration_order and (stride != 1 or self.inplanes != planes * block.expansion):
            downsample = _downsample(self.inplanes, planes * block.expansion, stride)
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample, own_downsample=self.declaration_order)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(declaration_order: bool = False) -> ResNet:
    """torchvision ``resnet18()``: 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], declaration_order=declaration_order)


def resnet50(declaration_order: bool = False) -> ResNet:
    """torchvision ``resnet50()``: 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], declaration_order=declaration_order)


# --------------------------------------------------------------------------- Vision Transformer
# After torchvision/models/vision_transformer.py (pytorch/vision; the MLP as torchvision.ops.MLP,
# children 0..4, since pytorch/vision#6053).


class EncoderBlock(nn.Module):
    """torchvision ``EncoderBlock``: pre-norm self-attention (``nn.MultiheadAttention``, batch first)
    and MLP, each with a residual.

    torchvision's ``mlp`` is an ``MLPBlock``, an ``nn.Sequential`` subclass whose constructor
    re-initialises its Linear layers (xavier_uniform_ weights, normal_(std=1e-6) biases). A model
    file names the class of graph nodes only, so here it is a plain ``nn.Sequential`` with the same
    children (``0`` Linear, ``1`` GELU, ``2`` Dropout, ``3`` Linear, ``4`` Dropout) and the same
    init, drawn at the same point of construction.
    """

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, hidden_dim), nn.Dropout(dropout)
        )
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)
        h, _ = self.self_attention(h, h, h, need_weights=False)
        h = self.dropout(h)
        h = h + x
        y = self.mlp(self.ln_2(h))
        return h + y


class Encoder(nn.Module):
    """torchvision ``Encoder``: learned position embedding (normal_(std=0.02), drawn first), dropout,
    ``encoder_layer_{i}`` blocks in a named Sequential, final LayerNorm."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(num_layers):
            layers[f"encoder_layer_{i}"] = EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout)
        self.layers = nn.Sequential(layers)
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embedding
        return self.ln(self.layers(self.dropout(x)))


class VisionTransformer(nn.Module):
    """torchvision ``VisionTransformer`` (no conv stem, no representation layer): patchify
    convolution, class token, encoder, ``heads.head``; then torchvision's init of the patchify stem
    (trunc_normal_(std=sqrt(1/fan_in)), bias 0) and of the head (weight and bias 0)."""

    def __init__(
        self, image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int, num_classes: int = 1000
    ):
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        seq_length += 1
        self.encoder = Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

        fan_in = self.conv_proj.in_channels * self.conv_proj.kernel_size[0] * self.conv_proj.kernel_size[1]
        nn.init.trunc_normal_(self.conv_proj.weight, std=(1 / fan_in) ** 0.5)
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        n_patches = (self.image_size // self.patch_size) ** 2
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, n_patches)
        x = x.permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.encoder(x)
        x = x[:, 0]
        return self.heads(x)


def vit_b_16() -> VisionTransformer:
    """torchvision ``vit_b_16()``: 224x224 images, 16x16 patches, 12 layers of 12 heads, width 768,
    MLP 3072; 86,567,656 parameters."""
    return VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)


# --------------------------------------------------------------------------- LLaMA
# After transformers/models/llama/modeling_llama.py (huggingface/transformers, read at commit
# 5dd4a635): LlamaForCausalLM > LlamaModel > LlamaDecoderLayer > LlamaAttention, LlamaMLP; the
# sdpa attention path without a cache or padding mask (is_causal=True).

LLAMA: dict[str, dict[str, object]] = {
    # LLaMA-7B (Llama-2-7B has the same shapes): 6,738,415,616 parameters
    "llama-7b": {"vocab": 32000, "d": 4096, "ffn": 11008, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32},
    # Llama-2-70B, grouped-query attention (8 key/value heads of 128): 68,976,648,192 parameters
    "llama-70b": {"vocab": 32000, "d": 8192, "ffn": 28672, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8},
    # the same classes at a size that runs in milliseconds on a CPU, grouped-query attention included
    "llama-tiny": {"vocab": 512, "d": 64, "ffn": 128, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "dtype": torch.float32},
}


class LlamaRotaryEmbedding(nn.Module):
    """HF ``LlamaRotaryEmbedding`` (default rope type): the cos and sin tables for the positions of ``x``.

    HF keeps ``inv_freq`` as a non-persistent buffer (not in the state_dict); here it is computed
    in forward from ``torch.arange`` with HF's formula, so the module owns no tensor at all.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        inv_freq = 1.0 / self.theta ** (torch.arange(0, self.head_dim, 2, device=x.device).float() / self.head_dim)
        pos = torch.arange(x.shape[1], device=x.device).float()
        freqs = torch.outer(pos, inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        return torch.cos(emb).to(x.dtype), torch.sin(emb).to(x.dtype)


class LlamaAttention(nn.Module):
    """HF ``LlamaAttention``: q/k/v/o projections without bias, rotary embedding (``rotate_half``),
    key/value heads repeated to the query heads (HF's ``repeat_kv`` is ``repeat_interleave`` on
    dim 1), causal ``F.scaled_dot_product_attention``."""

    def __init__(self, d: int, n_heads: int, n_kv_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d // n_heads
        self.q_proj = nn.Linear(d, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        b = x.shape[0]
        t = x.shape[1]
        half = self.head_dim // 2
        q = self.q_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        q = q * cos + torch.cat([-q[:, :, :, half:], q[:, :, :, :half]], dim=-1) * sin
        k = k * cos + torch.cat([-k[:, :, :, half:], k[:, :, :, :half]], dim=-1) * sin
        if self.n_heads != self.n_kv_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    """HF ``LlamaMLP``: SwiGLU, ``down_proj(act_fn(gate_proj(x)) * up_proj(x))``, ``act_fn`` a SiLU child."""

    def __init__(self, d: int, ffn: int):
        super().__init__()
        self.gate_proj = nn.Linear(d, ffn, bias=False)
        self.up_proj = nn.Linear(d, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, d, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    """HF ``LlamaDecoderLayer``: pre-norm attention and MLP, each added to its input.
    ``LlamaRMSNorm`` is ``nn.RMSNorm`` here (same weight, same key)."""

    def __init__(self, d: int, ffn: int, n_heads: int, n_kv_heads: int, eps: float):
        super().__init__()
        self.self_attn = LlamaAttention(d, n_heads, n_kv_heads)
        self.mlp = LlamaMLP(d, ffn)
        self.input_layernorm = nn.RMSNorm(d, eps=eps)
        self.post_attention_layernorm = nn.RMSNorm(d, eps=eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    """HF ``LlamaModel``: ``embed_tokens``, ``layers`` (an ``nn.Sequential`` here: HF's is a
    ``ModuleList``, which a model file has not; the keys are the same), ``norm``, ``rotary_emb``."""

    def __init__(self, vocab: int, d: int, ffn: int, n_layers: int, n_heads: int, n_kv_heads: int, eps: float, theta: float):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.Sequential(*[LlamaDecoderLayer(d, ffn, n_heads, n_kv_heads, eps) for _ in range(n_layers)])
        self.norm = nn.RMSNorm(d, eps=eps)
        self.rotary_emb = LlamaRotaryEmbedding(d // n_heads, theta)

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary_emb(x)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    """HF ``LlamaForCausalLM``: ``model`` and an untied ``lm_head``; returns the logits."""

    def __init__(
        self, vocab: int, d: int, ffn: int, n_layers: int, n_heads: int, n_kv_heads: int, eps: float = 1e-5, theta: float = 10000.0
    ):
        super().__init__()
        self.model = LlamaModel(vocab, d, ffn, n_layers, n_heads, n_kv_heads, eps, theta)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.lm_head(self.model(input_ids))


def llama(
    vocab: int,
    d: int,
    ffn: int,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    eps: float = 1e-5,
    theta: float = 10000.0,
    dtype: torch.dtype = torch.bfloat16,
) -> LlamaForCausalLM:
    """A LLaMA causal LM constructed in ``dtype`` (bfloat16 for the big configs); ``LLAMA[name]`` holds the arguments."""
    with default_dtype(dtype):
        return LlamaForCausalLM(vocab, d, ffn, n_layers, n_heads, n_kv_heads, eps, theta)


# --------------------------------------------------------------------------- GPT-2
# After transformers/models/gpt2/modeling_gpt2.py (huggingface/transformers, read at commit c44b2d99)
# and transformers/pytorch_utils.py (Conv1D): GPT2LMHeadModel > GPT2Model > GPT2Block >
# GPT2Attention (sdpa path, no cache, no mask), GPT2MLP.


class Conv1D(nn.Module):
    """HF ``Conv1D``: a linear layer whose ``weight`` is stored [in, out] (``nx``, ``nf``); weight
    normal_(std=0.02), bias zeros, as its constructor draws them. HF computes ``addmm(bias, x, weight)``;
    here ``x @ weight + bias``, which a model file can write. (HF's ``__repr__`` prints
    ``Conv1D(nf=.., nx=..)``; a graph module prints ``Conv1D()``.)"""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf))
        nn.init.normal_(self.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias


class GPT2Attention(nn.Module):
    """HF ``GPT2Attention`` on the sdpa path: ``c_attn`` gives q, k, v; causal attention; ``c_proj``;
    ``resid_dropout``. ``attn_dropout`` is declared (HF's sdpa path reads only its ``p``, and only
    in training mode, which a forward text cannot test) and never called."""

    def __init__(self, d: int, n_head: int, pdrop: float):
        super().__init__()
        self.d = d
        self.n_head = n_head
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.attn_dropout = nn.Dropout(pdrop)
        self.resid_dropout = nn.Dropout(pdrop)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        t = x.shape[1]
        q, k, v = self.c_attn(x).split(self.d, dim=2)
        q = q.view(b, t, self.n_head, self.d // self.n_head).transpose(1, 2)
        k = k.view(b, t, self.n_head, self.d // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.d // self.n_head).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(b, t, self.d)
        return self.resid_dropout(self.c_proj(o))


class GPT2MLP(nn.Module):
    """HF ``GPT2MLP``: ``c_fc``, GELU (tanh approximation: HF's ``gelu_new``), ``c_proj``, dropout."""

    def __init__(self, d: int, pdrop: float):
        super().__init__()
        self.c_fc = Conv1D(4 * d, d)
        self.c_proj = Conv1D(d, 4 * d)
        self.act = nn.GELU(approximate="tanh")
        self.dropout = nn.Dropout(pdrop)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    """HF ``GPT2Block``: pre-norm attention and MLP, each added to its input."""

    def __init__(self, d: int, n_head: int, pdrop: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = GPT2Attention(d, n_head, pdrop)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = GPT2MLP(d, pdrop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(self.ln_1(x)) + x
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    """HF ``GPT2Model``: token and position embeddings, dropout, ``h`` (an ``nn.Sequential`` here:
    HF's is a ``ModuleList``; the keys are the same), ``ln_f``."""

    def __init__(self, vocab: int, n_positions: int, d: int, n_layers: int, n_head: int, pdrop: float):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(n_positions, d)
        self.drop = nn.Dropout(pdrop)
        self.h = nn.Sequential(*[GPT2Block(d, n_head, pdrop) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, input_ids: Tensor) -> Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    """HF ``GPT2LMHeadModel``: ``transformer`` and ``lm_head``, whose weight is ``transformer.wte.weight``."""

    def __init__(
        self, vocab: int = 50257, n_positions: int = 1024, d: int = 1600, n_layers: int = 48, n_head: int = 25, pdrop: float = 0.1
    ):
        super().__init__()
        self.transformer = GPT2Model(vocab, n_positions, d, n_layers, n_head, pdrop)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.lm_head(self.transformer(input_ids))


def gpt2_xl() -> GPT2LMHeadModel:
    """GPT-2 XL (vocab 50,257, 1,024 positions, width 1,600, 48 layers of 25 heads): 1,557,611,200
    unique parameters, ``lm_head`` tied to ``wte``."""
    return GPT2LMHeadModel(vocab=50257, n_positions=1024, d=1600, n_layers=48, n_head=25, pdrop=0.1)
