"""Plain-PyTorch references for the built-in model files in ``configs/``.

Each builder constructs, with ordinary PyTorch code, exactly the ``nn.Module`` that the
model file of the same name must build: the same ``print(model)`` text, the same
``state_dict()`` keys, shapes and order, and the same parameter sharing. The code is
written the way a PyTorch user writes it (the D2L notebook's cells verbatim for the D2L
nets; torchvision's AlexNet/VGG written out by hand, as a ``Sequential`` with the same
named children, since torchvision is not a dependency). The networks with a written
forward (ResNet, ViT, Inception, LLaMA, GPT-2, the tiny LM) are ``nn.Module`` classes after
the upstream source each docstring names, here and in ``bench/reference_nets.py``.

* ``REFERENCES`` maps a config name to a builder that takes no arguments.
* ``BIG`` names the configs whose builders construct on the ``meta`` device (they would
  need tens of GB otherwise): their builders enter ``torch.device("meta")`` themselves.
* ``EXPECTED_UNIQUE`` holds published parameter counts (each ``Parameter`` counted once),
  only where a number is published (D2L, torchvision, Meta / Hugging Face model cards).
* ``EXPECTED_BY_PATH`` holds counts over every parameter path (a tied weight counted at
  each of its paths), where that differs from the unique count.
* ``DTYPES`` gives a config's parameter dtype where it is not float32.

Init rules are not part of a reference: builders return the freshly constructed module
(PyTorch's default init); the docstrings of ``d2l_init`` and ``d2l_custom_init`` say
which rules the model file applies on top. Init that an upstream constructor itself
performs is part of its reference (ResNet's init loop, ViT's, HF ``Conv1D``'s), as the
model file's ``init:`` rules and ``param:`` schemes are part of the file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import reference_nets  # bench/reference_nets.py (conftest puts bench/ on the path)
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- D2L


def mlp() -> nn.Module:
    """configs/mlp.yaml — D2L "Parameter Management", the first cell."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    return net


def rgnet() -> nn.Module:
    """configs/rgnet.yaml — D2L nested blocks."""

    def block1():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

    def block2():
        net = nn.Sequential()
        for i in range(4):
            net.add_module(f"block{i}", block1())
        return net

    rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
    return rgnet


def tied() -> nn.Module:
    """configs/tied.yaml — D2L parameter tying: one module object used twice (net[2] is net[4])."""
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    return net


def d2l_init() -> nn.Module:
    """configs/d2l-init.yaml — the D2L MLP, freshly constructed.

    The model file then applies, per node (D2L "apply different init to some blocks"):
    ``net[0].apply(xavier)``  -> net[0].weight xavier_uniform_ (rule scoped to node 0, types [Linear]);
    ``net[2].apply(init_42)`` -> net[2].weight constant_(42)   (rule scoped to node 2, types [Linear]).
    Biases keep PyTorch's default init.
    """
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def d2l_custom_init() -> nn.Module:
    """configs/d2l-custom-init.yaml — the D2L MLP, freshly constructed.

    The model file then applies one top-level rule, D2L's ``net.apply(my_init)``: on every
    ``Linear`` weight ``uniform_(-10, 10)`` followed by ``mask_abs_below(5)``
    (``w *= w.abs() >= 5``). Biases keep PyTorch's default init.
    """
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def lenet() -> nn.Module:
    """configs/lenet.yaml — D2L LeNet (chapter "Convolutional Neural Networks (LeNet)")."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))  # fmt: skip
    return net


# --------------------------------------------------------------------------- torchvision layouts


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    """configs/alexnet.yaml — torchvision.models.AlexNet's children, in a named Sequential.

    ``torch.flatten(x, 1)`` in AlexNet.forward becomes the child ``flatten = nn.Flatten()``
    (start_dim=1), which has no parameters, so the state_dict keys are torchvision's.
    """
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    avgpool = nn.AdaptiveAvgPool2d((6, 6))
    classifier = nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    return nn.Sequential(OrderedDict(features=features, avgpool=avgpool, flatten=nn.Flatten(), classifier=classifier))


def vgg11(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    """configs/vgg11.yaml — torchvision.models.vgg11 (cfg "A", no batch norm), in a named Sequential."""
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:  # torchvision's make_layers(cfg, batch_norm=False)
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    features = nn.Sequential(*layers)
    avgpool = nn.AdaptiveAvgPool2d((7, 7))
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, num_classes),
    )
    return nn.Sequential(OrderedDict(features=features, avgpool=avgpool, flatten=nn.Flatten(), classifier=classifier))


# --------------------------------------------------------------------------- small models


def mlp_bn() -> nn.Module:
    """configs/mlp-bn.yaml — an MLP with BatchNorm1d (buffers) and Dropout."""
    d_in, hidden, classes, p = 20, 64, 10, 0.5
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Dropout(p=p),
        nn.Linear(hidden, hidden // 2),
        nn.BatchNorm1d(hidden // 2),
        nn.ReLU(),
        nn.Dropout(p=p),
        nn.Linear(hidden // 2, classes),
    )


# --------------------------------------------------------------------------- graph modules (written forward)


def resnet18() -> nn.Module:
    """configs/resnet18.yaml — torchvision ``resnet18()`` with its constructor's init loop (bench/reference_nets.py)."""
    return reference_nets.resnet18()


def resnet50() -> nn.Module:
    """configs/resnet50.yaml — torchvision ``resnet50()`` with its constructor's init loop (bench/reference_nets.py)."""
    return reference_nets.resnet50()


def vit_b_16() -> nn.Module:
    """configs/vit-b-16.yaml — torchvision ``vit_b_16()`` (bench/reference_nets.py)."""
    return reference_nets.vit_b_16()


class BasicConv2d(nn.Module):
    """torchvision GoogLeNet's ``BasicConv2d`` (torchvision/models/googlenet.py, pytorch/vision, read at
    commit 8f19c7dc): convolution without bias, BatchNorm (eps 0.001), ``F.relu(..., inplace=True)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, kernel_size=kernel_size, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """torchvision GoogLeNet's ``Inception`` block (same file): four branches — 1x1; 1x1 then 3x3;
    1x1 then 3x3 (torchvision's 3x3 where the paper has 5x5, vision#906); 3x3 max-pool then 1x1 —
    joined by ``torch.cat`` on the channels."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_channels, pool_proj, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def inception() -> nn.Module:
    """configs/inception.yaml — GoogLeNet's ``inception3a``: ``Inception(192, 64, 96, 128, 16, 32, 32)``
    on a [1, 192, 28, 28] input, 256 output channels (PyTorch's default init: the block alone)."""
    return Inception(192, 64, 96, 128, 16, 32, 32)


def llama_tiny() -> nn.Module:
    """configs/llama-tiny.yaml — the LLaMA classes at vocab 512, width 64, 4 heads of 16, 2 key/value
    heads (grouped-query attention), SwiGLU 128, 2 layers; float32."""
    return reference_nets.llama(**reference_nets.LLAMA["llama-tiny"])  # type: ignore[arg-type]


class Block(nn.Module):
    """configs/tinylm.yaml's ``Block``: a pre-norm transformer block — causal multi-head attention
    (one ``qkv`` projection, ``F.scaled_dot_product_attention``) and a GELU MLP, each added to its input."""

    def __init__(self, d: int, n_heads: int, ffn: int):
        super().__init__()
        self.d = d
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.fc_in = nn.Linear(d, ffn)
        self.act = nn.GELU()
        self.fc_out = nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        t = x.shape[1]
        q, k, v = self.qkv(self.ln_1(x)).chunk(3, dim=-1)
        q = q.view(b, t, self.n_heads, -1).transpose(1, 2)
        k = k.view(b, t, self.n_heads, -1).transpose(1, 2)
        v = v.view(b, t, self.n_heads, -1).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, self.d))
        return x + self.fc_out(self.act(self.fc_in(self.ln_2(x))))


class TinyLM(nn.Module):
    """configs/tinylm.yaml — a tiny causal language model: token embedding plus a learned position
    embedding (a Parameter of the root, normal_(std=0.02) when constructed), two ``Block``s, final
    LayerNorm, and an output head whose weight is the embedding's (tied by attribute assignment)."""

    def __init__(self, vocab: int = 512, d: int = 64, n_heads: int = 4, ffn: int = 256, max_len: int = 16, n_blocks: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos_embed = nn.Parameter(torch.zeros(max_len, d))
        nn.init.normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*[Block(d, n_heads, ffn) for _ in range(n_blocks)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx) + self.pos_embed[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def tinylm() -> nn.Module:
    """configs/tinylm.yaml — vocab 512, width 64, 4 heads, MLP 256, 16 positions, 2 blocks; head tied to ``embed``."""
    return TinyLM()


def d2l_lazy() -> nn.Module:
    """configs/d2l-lazy.yaml — D2L "Lazy Initialization", its cells verbatim: the parameters get their
    shapes (and values, in call order) from the first forward pass on ``X = torch.rand(2, 20)``."""
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    X = torch.rand(2, 20)
    net(X)
    return net


# --------------------------------------------------------------------------- big shapes (meta)


def llama_7b() -> nn.Module:
    """configs/llama-7b.yaml — HF ``LlamaForCausalLM`` at LLaMA-7B, built on meta, bfloat16; untied head."""
    with torch.device("meta"):
        return reference_nets.llama(**reference_nets.LLAMA["llama-7b"])  # type: ignore[arg-type]


def llama_70b() -> nn.Module:
    """configs/llama-70b.yaml — HF ``LlamaForCausalLM`` at Llama-2-70B (64 heads, 8 key/value heads), built on meta, bfloat16."""
    with torch.device("meta"):
        return reference_nets.llama(**reference_nets.LLAMA["llama-70b"])  # type: ignore[arg-type]


def gpt2_xl() -> nn.Module:
    """configs/gpt2-xl.yaml — HF ``GPT2LMHeadModel`` at GPT-2 XL, built on meta, float32; ``lm_head`` tied to ``wte``."""
    with torch.device("meta"):
        return reference_nets.gpt2_xl()


# --------------------------------------------------------------------------- tables

REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "mlp": mlp,
    "rgnet": rgnet,
    "tied": tied,
    "d2l-init": d2l_init,
    "d2l-custom-init": d2l_custom_init,
    "d2l-lazy": d2l_lazy,
    "lenet": lenet,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "mlp-bn": mlp_bn,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vit-b-16": vit_b_16,
    "inception": inception,
    "tinylm": tinylm,
    "llama-tiny": llama_tiny,
    "llama-7b": llama_7b,  # meta
    "llama-70b": llama_70b,  # meta
    "gpt2-xl": gpt2_xl,  # meta
}

BIG = {"llama-7b", "llama-70b", "gpt2-xl"}

# Published figures only (each Parameter counted once).
EXPECTED_UNIQUE: dict[str, int] = {
    "mlp": 49,  # D2L "Parameter Management"
    "d2l-init": 49,  # the same D2L MLP
    "d2l-custom-init": 49,  # the same D2L MLP
    "rgnet": 309,  # D2L nested blocks
    "tied": 121,  # D2L parameter tying
    "alexnet": 61_100_840,  # torchvision AlexNet_Weights.IMAGENET1K_V1 num_params
    "vgg11": 132_863_336,  # torchvision VGG11_Weights.IMAGENET1K_V1 num_params
    "resnet18": 11_689_512,  # torchvision ResNet18_Weights.IMAGENET1K_V1 num_params
    "resnet50": 25_557_032,  # torchvision ResNet50_Weights.IMAGENET1K_V1 num_params
    "vit-b-16": 86_567_656,  # torchvision ViT_B_16_Weights.IMAGENET1K_V1 num_params
    "llama-7b": 6_738_415_616,  # LLaMA-7B
    "llama-70b": 68_976_648_192,  # LLaMA-2-70B
    "gpt2-xl": 1_557_611_200,  # GPT-2-XL (wte and lm_head one tensor)
}

# Every parameter path counted (named_parameters(remove_duplicate=False)), where it differs.
EXPECTED_BY_PATH: dict[str, int] = {
    "tied": 193,  # D2L: 121 + the shared Linear(8, 8)'s 72 a second time
    "tinylm": 133_888 + 512 * 64,  # 133,888 unique (embed 32,768 + pos_embed 1,024 + 2 blocks of 49,984 + ln_f 128) + head = embed
    "gpt2-xl": 1_557_611_200 + 50257 * 1600,
}

# D2L's tied net: 8 state_dict() entries, 6 named_parameters() (the second path hidden).
EXPECTED_STATE_DICT_LEN: dict[str, int] = {"tied": 8}
EXPECTED_NAMED_PARAMETERS_LEN: dict[str, int] = {"tied": 6}

# Parameter dtype of a config where it is not float32 (the builders already use it).
DTYPES: dict[str, torch.dtype] = {"llama-7b": torch.bfloat16, "llama-70b": torch.bfloat16}
