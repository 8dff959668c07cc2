"""Plain-PyTorch builders of the large reference architectures, shared by the benchmark
(``bench/plain.py``, what a user would write) and the tests (``tests/reference_models.py``).

Each function constructs, with ordinary PyTorch code, the module the built-in config of the
same name builds; the caller picks the device (the tests and the benchmark use ``meta``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

LLAMA = {
    "llama-7b": {"vocab": 32000, "d": 4096, "ffn": 11008, "kv_dim": 4096, "n_layers": 32},
    "llama-70b": {"vocab": 32000, "d": 8192, "ffn": 28672, "kv_dim": 1024, "n_layers": 80},
}


def llama(vocab: int, d: int, ffn: int, kv_dim: int, n_layers: int) -> nn.Module:
    """A LLaMA-shaped stack in bfloat16 (the configs' ``dtype``)."""

    def decoder_layer() -> nn.Module:
        return nn.Sequential(
            OrderedDict(
                attn_norm=nn.RMSNorm(d, eps=1e-5),
                q_proj=nn.Linear(d, d, bias=False),
                k_proj=nn.Linear(d, kv_dim, bias=False),
                v_proj=nn.Linear(d, kv_dim, bias=False),
                o_proj=nn.Linear(d, d, bias=False),
                ffn_norm=nn.RMSNorm(d, eps=1e-5),
                gate_proj=nn.Linear(d, ffn, bias=False),
                up_proj=nn.Linear(d, ffn, bias=False),
                down_proj=nn.Linear(ffn, d, bias=False),
            )
        )

    layers = nn.Sequential()
    for i in range(n_layers):
        layers.add_module(f"layer{i}", decoder_layer())
    model = nn.Sequential(
        OrderedDict(embed=nn.Embedding(vocab, d), layers=layers, norm=nn.RMSNorm(d, eps=1e-5), head=nn.Linear(d, vocab, bias=False))
    )
    return model.to(torch.bfloat16)


def gpt2_xl() -> nn.Module:
    """A GPT-2-XL-shaped stack, its head tied to ``wte`` by attribute assignment."""
    vocab, n_positions, d, n_layers = 50257, 1024, 1600, 48

    def block() -> nn.Module:
        return nn.Sequential(
            OrderedDict(
                ln_1=nn.LayerNorm(d),
                attn_qkv=nn.Linear(d, 3 * d),
                attn_proj=nn.Linear(d, d),
                ln_2=nn.LayerNorm(d),
                mlp_fc=nn.Linear(d, 4 * d),
                act=nn.GELU(approximate="tanh"),
                mlp_proj=nn.Linear(4 * d, d),
            )
        )

    model = nn.Sequential(
        OrderedDict(
            wte=nn.Embedding(vocab, d),
            wpe=nn.Embedding(n_positions, d),
            h=nn.Sequential(*[block() for _ in range(n_layers)]),
            ln_f=nn.LayerNorm(d),
            head=nn.Linear(d, vocab, bias=False),
        )
    )
    model.head.weight = model.wte.weight
    return model
