"""Mixed precision as ``torch.autocast`` runs it: fp32 parameters, each op in autocast's dtype.

On a real device the forward simply runs under ``torch.autocast(device_type, dtype)``. Autocast
does not act on meta tensors (a meta tensor is never "eligible"), so on meta the model's
parameters and the inputs become ``FakeTensor``s that report the CPU as their device, which makes
CPU autocast apply to them exactly as to CPU tensors (same casts, same weight-cast cache, so the
same saved tensors), while every op still runs on meta kernels and nothing is allocated. There
``scaled_dot_product_attention`` is held to its math backend, the path it takes on meta without
autocast, so that mixed and full precision count attention the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from netinspect.build.walk import unique_modules


def _fake_cpu(mode: Any, t: torch.Tensor) -> torch.Tensor:
    from torch._subclasses.fake_tensor import FakeTensor

    return FakeTensor(mode, t.detach() if t.requires_grad else t, torch.device("cpu"))


@contextlib.contextmanager
def autocast(root: nn.Module, inputs: list[torch.Tensor], dtype: torch.dtype) -> Iterator[list[torch.Tensor]]:
    """Run the block as autocast to ``dtype`` would; yields the inputs to use inside it."""
    device = inputs[0].device if inputs else next(iter(root.parameters()), torch.empty(0)).device
    if device.type != "meta":
        with torch.autocast(device.type, dtype=dtype):
            yield inputs
        return
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mode = FakeTensorMode(allow_non_fake_inputs=False)
    swapped: dict[int, Any] = {}  # id(original) → its fake, so that ties stay one tensor
    restore: list[tuple[dict[str, Any], str, Any]] = []
    for m in unique_modules(root):
        for table, is_param in ((m._parameters, True), (m._buffers, False)):
            for name, t in list(table.items()):
                if t is None:
                    continue
                fake: Any = swapped.get(id(t))
                if fake is None:
                    f = _fake_cpu(mode, t)
                    fake = nn.Parameter(f, requires_grad=t.requires_grad) if is_param else f
                    swapped[id(t)] = fake
                restore.append((table, name, t))
                table[name] = fake
    try:
        fakes = [_fake_cpu(mode, t) for t in inputs]
        with mode, torch.autocast("cpu", dtype=dtype), sdpa_kernel(SDPBackend.MATH):
            yield fakes
    finally:
        for table, name, t in restore:
            table[name] = t
