"""``torch.save`` files (``.pt``, ``.pth``, ``.bin``): ``torch.load(weights_only=True, mmap=True)``, so a
pickle that needs code is refused and tensor data stays on disk until read. Entries that are one
stored tensor (the same storage, offset, shape and strides: a tie as ``torch.save`` writes it) are
reported as aliases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netinspect.errors import first_line
from netinspect.tables import TensorInfo, TensorTable

from .files import fail, file_size


def load(path: str, shown: str) -> Any:
    """The unpickled object (weights_only; memory-mapped when the file is in the zip format)."""
    import pickle
    import warnings

    import torch

    if file_size(path, shown) == 0:
        raise fail(shown, "empty file: not a torch.save file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap can only be used" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        raise fail(
            shown,
            f"refused: the file holds Python objects beyond tensors ({reason(exc)})",
            "netinspect loads .pt files with weights_only=True and never unpickles code",
        ) from None
    except Exception as exc:
        raise fail(shown, f"not a readable PyTorch weights file: {reason(exc)}", "the file may be truncated or corrupt") from None


def reason(exc: BaseException) -> str:
    """The line of torch's weights_only message that names what was refused, else the first sentence."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line[:200]
    return first_line(exc).split(". ")[0]


def state_mapping(obj: Any) -> dict[str, Any] | None:
    """A mapping of names to tensors: the object itself, or its ``state_dict``/``model``/``model_state_dict``."""
    import torch

    def tensors(m: Any) -> bool:
        return isinstance(m, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in m.items())

    if not isinstance(obj, Mapping):
        return None
    if obj and tensors(obj):
        return dict(obj)
    for key in ("state_dict", "model", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and tensors(inner):
            return dict(inner)
    return {} if not obj else None


def _place(t: Any) -> tuple[Any, ...] | None:
    """Where a tensor's elements are: storage, offset, shape, strides, dtype (None when unknown)."""
    import torch

    if t.numel() == 0 or t.device.type == "meta" or t.layout != torch.strided:
        return None
    try:
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
    except (RuntimeError, NotImplementedError):
        return None


def table(path: str, shown: str | None = None) -> TensorTable:
    """A torch.save file as a tensor table, in the file's order."""
    import torch

    shown = shown or path
    obj = load(path, shown)
    sd = state_mapping(obj)
    if sd is None:
        raise fail(
            shown, f"the file holds a {type(obj).__name__}, not a state_dict", "save model.state_dict() (a mapping of names to tensors)"
        )
    entries: list[TensorInfo] = []
    first: dict[tuple[Any, ...], str] = {}
    for key, t in sd.items():
        place = _place(t)
        stored = first.setdefault(place, key) if place is not None else key
        param = isinstance(t, torch.nn.Parameter)
        entries.append(
            TensorInfo(
                key,
                tuple(int(d) for d in t.shape),
                str(t.dtype).removeprefix("torch."),
                t.numel(),
                t.numel() * t.element_size(),
                stored,
                "storage" if stored != key else None,
                "parameter" if param else None,
                bool(t.requires_grad) if param else None,
            )
        )

    def read(key: str) -> Any:
        return sd[key].detach()

    return TensorTable(shown, "torch.save", entries, [shown], read)
