"""What a scheme should give (its theoretical std) and what a tensor holds (its statistics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .registry import SchemeStep, scalar

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, slots=True)
class _Dist:
    """What is known of the values after a step: a family, its scale, and the |w| < cut entries zeroed."""

    family: Literal["uniform", "normal", "const", "other"]
    scale: float  # uniform: half-width; normal: sigma; other: the std itself
    cut: float = 0.0

    def std(self) -> float:
        if self.family == "const":
            return 0.0
        if self.family == "other" or self.cut <= 0:
            return self.scale / math.sqrt(3.0) if self.family == "uniform" else self.scale
        if self.family == "uniform":
            c, t = self.scale, self.cut
            return 0.0 if t >= c else math.sqrt((c**3 - t**3) / (3.0 * c))
        if self.scale == 0:
            return 0.0
        u = self.cut / self.scale  # E[x^2; |x| >= t] for N(0, s^2) = 2 s^2 (u phi(u) + 1 - Phi(u))
        tail = 2.0 * (u * _phi(u) + 1.0 - _cdf(u))
        return self.scale * math.sqrt(max(tail, 0.0))


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _trunc_normal_std(mean: float, std: float, a: float, b: float) -> float | None:
    if a == b:
        return 0.0
    alpha, beta = (a - mean) / std, (b - mean) / std
    z = _cdf(beta) - _cdf(alpha)
    if z <= 1e-12:
        return None
    pa, pb = _phi(alpha), _phi(beta)
    var = std**2 * (1.0 + (alpha * pa - beta * pb) / z - ((pa - pb) / z) ** 2)
    return math.sqrt(max(var, 0.0))


def expected_std(
    steps: Sequence[SchemeStep], param: torch.Tensor, owner: torch.nn.Module | None = None, param_name: str = ""
) -> float | None:
    """The theoretical std of ``param`` after the chain, or None where theory gives none."""
    if param.numel() == 0:
        return None
    start = max((i for i, s in enumerate(steps) if s.info.kind != "post"), default=None)
    if start is None:
        return None
    try:
        first = steps[start]
        if first.name == "default":
            return None if owner is None else _default_std(owner, param_name, param)
        dist = _init_dist(first, param)
        for step in steps[start + 1 :]:
            if dist is None:
                return None
            dist = _post_dist(step, dist)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None if dist is None else dist.std()


def _init_dist(step: SchemeStep, param: torch.Tensor) -> _Dist | None:
    from torch.nn import init

    b = step.bound()
    num = {k: float(v) for k, v in b.items() if isinstance(v, (int, float))}
    name = step.name
    if name == "uniform":
        lo, hi = num["a"], num["b"]
        if lo == hi:
            return _Dist("const", 0.0)
        return _Dist("uniform", hi) if lo == -hi else _Dist("other", (hi - lo) / math.sqrt(12.0))
    if name == "normal":
        return _Dist("normal" if num["mean"] == 0 else "other", num["std"])
    if name in ("constant", "ones", "zeros"):
        return _Dist("const", 0.0)
    if name in ("xavier_uniform", "xavier_normal"):
        fan_in, fan_out = init._calculate_fan_in_and_fan_out(param)
        std = num["gain"] * math.sqrt(2.0 / float(fan_in + fan_out))
        return _Dist("uniform", math.sqrt(3.0) * std) if name == "xavier_uniform" else _Dist("normal", std)
    if name in ("kaiming_uniform", "kaiming_normal"):
        fan = init._calculate_correct_fan(param, str(b["mode"]))  # type: ignore[arg-type]
        gain = init.calculate_gain(str(b["nonlinearity"]), b["a"])  # type: ignore[arg-type]
        std = gain / math.sqrt(fan)
        return _Dist("uniform", math.sqrt(3.0) * std) if name == "kaiming_uniform" else _Dist("normal", std)
    if name == "trunc_normal":
        tstd = _trunc_normal_std(num["mean"], num["std"], num["a"], num["b"])
        return None if tstd is None else _Dist("other", tstd)
    if name == "orthogonal":
        if param.dim() < 2:
            return None
        rows = param.shape[0]
        cols = param.numel() // rows
        return _Dist("other", abs(num["gain"]) / math.sqrt(max(rows, cols)))
    if name == "sparse":
        if param.dim() != 2:
            return None
        rows = param.shape[0]
        zeros = min(math.ceil(num["sparsity"] * rows), rows)
        return _Dist("other", num["std"] * math.sqrt((rows - zeros) / rows))
    return None  # eye, dirac: fixed patterns, no distribution


def _post_dist(step: SchemeStep, dist: _Dist) -> _Dist | None:
    v = float(scalar(step.bound()[step.info.params[0].name]))
    if dist.family == "const":
        return dist
    if step.name == "scale":
        if v == 0:
            return _Dist("const", 0.0)
        return _Dist(dist.family, dist.scale * abs(v), dist.cut * abs(v))
    if step.name == "add":
        return _Dist("other", dist.std())
    if step.name == "mask_abs_below":
        if dist.family == "other":
            return None
        return _Dist(dist.family, dist.scale, max(dist.cut, v))
    return None


def _default_std(owner: torch.nn.Module, name: str, param: torch.Tensor) -> float | None:
    """The std of ``owner``'s own reset for ``name``, for the torch.nn resets whose code is known."""
    from torch import nn
    from torch.nn import init
    from torch.nn.modules import batchnorm, conv, rnn

    reset = getattr(type(owner), "reset_parameters", None)
    if reset in (nn.Linear.reset_parameters, conv._ConvNd.reset_parameters):
        # kaiming_uniform(a=sqrt(5)) on the weight and U(+-1/sqrt(fan_in)) on the bias: both 1/sqrt(3 fan_in)
        if name not in ("weight", "bias"):
            return None
        fan_in, _ = init._calculate_fan_in_and_fan_out(owner.get_parameter("weight"))
        return 1.0 / math.sqrt(3.0 * fan_in) if fan_in > 0 else 0.0
    if reset is nn.Bilinear.reset_parameters:
        if name not in ("weight", "bias"):
            return None
        return 1.0 / math.sqrt(3.0 * owner.get_parameter("weight").size(1))
    if reset in (nn.Embedding.reset_parameters, nn.EmbeddingBag.reset_parameters):
        if name != "weight":
            return None
        rows = param.shape[0]
        padded = getattr(owner, "padding_idx", None) is not None
        return math.sqrt((rows - 1) / rows) if padded else 1.0
    norms = (
        batchnorm._NormBase.reset_parameters,
        nn.LayerNorm.reset_parameters,
        nn.GroupNorm.reset_parameters,
        nn.RMSNorm.reset_parameters,
        nn.PReLU.reset_parameters,
    )
    if reset in norms:
        return 0.0 if name in ("weight", "bias") else None
    if reset in (rnn.RNNBase.reset_parameters, rnn.RNNCellBase.reset_parameters):
        hidden = int(getattr(owner, "hidden_size", 0))
        return 1.0 / math.sqrt(3.0 * hidden) if hidden > 0 else 0.0
    if reset is None and getattr(type(owner), "_reset_parameters", None) is nn.MultiheadAttention._reset_parameters:
        if name == "in_proj_bias":
            return 0.0
        if name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v"):
            fan_in, fan_out = init._calculate_fan_in_and_fan_out(param)
            return math.sqrt(2.0 / float(fan_in + fan_out))
    return None


@dataclass(frozen=True, slots=True)
class TensorStats:
    """Summary statistics of a tensor's values; NaN where a figure does not exist (empty tensor)."""

    mean: float
    std: float | None
    min: float
    max: float
    zero_fraction: float


def tensor_stats(t: torch.Tensor) -> TensorStats:
    """Mean, std (correction=1; None below two elements), min, max and zero fraction, computed by torch.

    Half-precision values are summarised in float32, other floats in their own dtype,
    anything else in float64; the figures come back in one transfer.
    """
    import torch

    with torch.no_grad():
        x = t.detach()
        if x.is_floating_point():
            if x.element_size() < 4:
                x = x.to(torch.float32)
        else:
            x = x.to(torch.float64)
        n = x.numel()
        nan = float("nan")
        if n == 0:
            return TensorStats(nan, None, nan, nan, nan)
        if n == 1:
            mean = x.reshape(()).clone()
            std = torch.full((), nan, dtype=x.dtype, device=x.device)
        else:
            std, mean = torch.std_mean(x)
        lo, hi = torch.aminmax(x)
        nonzero = torch.count_nonzero(x)
        figures = torch.stack([v.to(torch.float64) for v in (mean, std, lo, hi, nonzero)]).tolist()
    mean_f, std_f, lo_f, hi_f, nonzero_f = (float(v) for v in figures)
    return TensorStats(
        mean=mean_f,
        std=None if n == 1 else std_f,
        min=lo_f,
        max=hi_f,
        zero_fraction=(n - nonzero_f) / n,
    )
