"""The seeded inputs of a forward: ``torch.rand`` for float inputs, ``torch.randint`` below ``high``
for integer ones, drawn from the global random stream as plain PyTorch code would draw them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from netinspect import layers
from netinspect.errors import RunFailure
from netinspect.spec import InputSpec


def input_dtype(spec: InputSpec, model_dtype: torch.dtype) -> torch.dtype:
    return layers.DTYPES[spec.dtype] if spec.dtype else model_dtype


def input_bytes(specs: Sequence[InputSpec], model_dtype: torch.dtype) -> int:
    return sum(math.prod(s.shape) * input_dtype(s, model_dtype).itemsize for s in specs)


def default_high(module: nn.Module, s: InputSpec) -> int:
    """The bound integer inputs are drawn below: the input's ``high:``, else the rows of the smallest
    Embedding (every token valid), else 2."""
    if s.high is not None:
        return s.high
    sizes = [m.num_embeddings for m in module.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    return min(sizes) if sizes else 2


def draw_inputs(module: nn.Module, specs: Sequence[InputSpec], model_dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """One tensor per input spec, drawn in order (on meta: shapes only, nothing drawn)."""
    out = []
    for s in specs:
        dt = input_dtype(s, model_dtype)
        if device.type == "meta":
            out.append(torch.empty(s.shape, dtype=dt, device=device))
        elif dt.is_floating_point:
            out.append(torch.rand(s.shape, dtype=dt, device=device))
        else:
            high = default_high(module, s)
            if high < 1:
                raise RunFailure.at(
                    s.pos, f"cannot draw integer inputs below {high}: the smallest Embedding has no rows", "give the input a 'high:'"
                )
            if dt == torch.bool:
                out.append(torch.randint(0, 2, s.shape, device=device).bool())
            else:
                out.append(torch.randint(0, high, s.shape, dtype=dt, device=device))
    return out
