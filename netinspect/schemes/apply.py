"""Applying compiled schemes to tensors, exactly as the ``torch.nn.init`` call would (torch imported when run)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from .registry import SchemeError, SchemeStep, scalar

if TYPE_CHECKING:
    import torch

_MIN_DIMS: Final[dict[str, int]] = {
    "xavier_uniform": 2,
    "xavier_normal": 2,
    "kaiming_uniform": 2,
    "kaiming_normal": 2,
    "orthogonal": 2,
}
_EXACT_DIMS: Final[dict[str, tuple[int, ...]]] = {"eye": (2,), "sparse": (2,), "dirac": (3, 4, 5)}
_NARROW_HINT = "restrict the rule with types: [Linear] or a narrower target"


def _shape_text(param: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in param.shape) + "]"


def check_step(step: SchemeStep, param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    """Refuse (SchemeError) what torch would refuse for this tensor, using only its shape: safe on meta."""
    dims = param.dim()
    where = f"'{param_name}' has shape {_shape_text(param)}"
    if step.name in _MIN_DIMS and dims < _MIN_DIMS[step.name]:
        hint = _NARROW_HINT
        if dims == 1:
            hint += "; 1-D parameters such as biases take zeros, constant(v) or normal(std=0.01)"
        why = " (it uses fan_in/fan_out)" if step.name.startswith(("xavier", "kaiming")) else ""
        raise SchemeError(f"{step.name} needs a tensor with at least 2 dimensions{why}; {where}", hint)
    if step.name in _EXACT_DIMS and dims not in _EXACT_DIMS[step.name]:
        allowed = _EXACT_DIMS[step.name]
        want = f"{allowed[0]}-D" if len(allowed) == 1 else f"{allowed[0]}- to {allowed[-1]}-D"
        hint = _NARROW_HINT
        if step.name == "eye" and dims in (3, 4, 5):
            hint = "eye fills 2-D weights (Linear); for convolution weights use dirac, or " + _NARROW_HINT
        elif step.name == "dirac" and dims == 2:
            hint = "dirac fills 3- to 5-D convolution weights; for 2-D weights use eye, or " + _NARROW_HINT
        raise SchemeError(f"{step.name} needs a {want} tensor; {where}", hint)
    if step.name == "dirac":
        groups = step.bound()["groups"]
        assert isinstance(groups, int)
        if param.shape[0] % groups:
            raise SchemeError(
                f"dirac(groups={groups}): dim 0 of '{param_name}' ({param.shape[0]}) is not divisible by groups; {where}",
                "groups is the conv layer's groups; it must divide the output channels",
            )
    if step.name == "default":
        reset_method(owner, param_name)


def reset_method(owner: torch.nn.Module, param_name: str) -> Callable[[], object]:
    for attr in ("reset_parameters", "_reset_parameters"):
        method = getattr(owner, attr, None)
        if callable(method):
            return method  # type: ignore[no-any-return]
    raise SchemeError(
        f"'default' re-runs the module's own reset_parameters(), but {type(owner).__name__} (owner of '{param_name}') has none",
        "choose an explicit scheme such as normal(std=0.01) or zeros",
    )


def apply_steps(steps: Sequence[SchemeStep], param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    """Apply a compiled chain to ``param`` in place, drawing from the global RNG, exactly as plain torch does.

    ``default`` calls ``owner``'s reset method and then restores every other tensor of
    ``owner``, so that only ``param`` changes (its values are those a full reset would give it).
    """
    import torch

    for step in steps:
        check_step(step, param, owner, param_name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
        for step in steps:
            try:
                _apply_one(step, param, owner, param_name)
            except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as exc:
                dtype = str(param.dtype).removeprefix("torch.")
                raise SchemeError(
                    f"{step.text} failed on '{param_name}' of shape {_shape_text(param)}: {exc}",
                    f"torch refused it for this {dtype} parameter on {param.device}; " + _NARROW_HINT,
                ) from exc


def _apply_one(step: SchemeStep, param: torch.Tensor, owner: torch.nn.Module, param_name: str) -> None:
    import torch

    kwargs = step.bound()
    if step.name == "mask_abs_below":
        param.mul_(param.abs() >= scalar(kwargs["t"]))  # D2L: w.data *= w.data.abs() >= t
    elif step.name == "add":
        param.add_(scalar(kwargs["v"]))
    elif step.name == "scale":
        param.mul_(scalar(kwargs["v"]))
    elif step.name == "default":
        reset = reset_method(owner, param_name)
        others = [t for t in (*owner.parameters(), *owner.buffers()) if t is not param]
        saved = [t.detach().clone() for t in others]
        reset()
        for tensor, value in zip(others, saved, strict=True):
            tensor.copy_(value)
    else:
        init: Callable[..., torch.Tensor] = getattr(torch.nn.init, f"{step.name}_")
        init(param, **kwargs)
