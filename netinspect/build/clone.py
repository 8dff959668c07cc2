"""Copies of a constructed module's state that stand in for further equal constructions on meta.

A meta build has no values, so a second ``Linear(16, 16)`` is exactly a copy of the first one's
state: fresh containers, fresh Parameter/buffer objects of the same shape, dtype, device and
``requires_grad``. ``cloneable`` says when that holds (plain state only); ``Recipe`` makes copies.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from netinspect.spec import Leaf

_PLAIN_TYPES = (type(None), bool, int, float, complex, str, torch.dtype, torch.device, types.BuiltinFunctionType)
_TENSOR_STORES = ("_parameters", "_buffers", "_modules")
_CONTAINERS = (dict, OrderedDict, set, list)


def _plain(value: Any, top: bool = True) -> bool:
    """Immutable (or, at the top of an attribute, a list that ``Recipe`` copies) all the way down."""
    if isinstance(value, types.FunctionType):
        return value.__closure__ is None  # a closure may hold the instance it was made for
    if isinstance(value, _PLAIN_TYPES):
        return True
    if type(value) in (tuple, torch.Size) or (top and type(value) is list):
        return all(_plain(v, False) for v in value)
    return False


def cloneable(m: nn.Module) -> bool:
    """True when ``m``'s whole state is its ``__dict__`` of plain values, standard containers and
    plain parameters/buffers, none of them reachable twice, so a copy of that state is what a
    second ``cls(*args)`` would build."""
    seen: set[int] = set()

    def ok(m: nn.Module) -> bool:
        cls = type(m)
        if not cls.__module__.startswith("torch.nn") or any("__slots__" in vars(k) for k in cls.__mro__[:-1]):
            return False
        for key, value in m.__dict__.items():
            if key in _TENSOR_STORES:
                continue
            if type(value) in (dict, OrderedDict):
                if not all(_plain(k, False) and _plain(v, False) for k, v in value.items()):
                    return False
            elif type(value) is set:
                if not all(_plain(k, False) for k in value):
                    return False
            elif not _plain(value):
                return False
        for store, kind in ((m._parameters, nn.Parameter), (m._buffers, torch.Tensor)):
            for t in store.values():
                if t is None:
                    continue
                if type(t) is not kind or t.__dict__ or id(t) in seen:
                    return False
                seen.add(id(t))
        for sub in m._modules.values():
            if sub is None:
                continue
            if id(sub) in seen or not ok(sub):
                return False
            seen.add(id(sub))
        return True

    return ok(m)


def call_key(decl: Leaf) -> Any:
    """What a construction depends on besides the class: the arguments, each with its type (``1``,
    ``1.0`` and ``True`` are equal in Python but not as constructor arguments); None if unhashable."""
    key = (_typed(decl.args), _typed(decl.kwargs))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _typed(value: Any) -> Any:
    """``value`` with the type of every part alongside it, lists and dicts as tuples (hashable)."""
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _typed(v)) for k, v in value.items()))
    if isinstance(value, float):
        return (float, repr(value))  # -0.0 == 0.0, and nan != nan
    return (type(value), value)


class Recipe:
    """How to make copies of a cloneable module (see ``cloneable``) without running its ``__init__``:
    a fresh container for each container in its state, a fresh Parameter/buffer object for each of
    its tensors (same shape, dtype, device and requires_grad), a copy of each submodule."""

    __slots__ = ("cls", "base", "containers", "params", "buffers", "modules")

    def __init__(self, proto: nn.Module) -> None:
        self.cls = type(proto)
        self.base = proto.__dict__.copy()  # every key, in order; make() replaces the containers
        self.containers = [
            (k, type(v), v.copy() if v else None) for k, v in proto.__dict__.items() if type(v) in _CONTAINERS and k not in _TENSOR_STORES
        ]
        self.params = [(n, p, p is not None and p.requires_grad) for n, p in proto._parameters.items()]
        self.buffers = list(proto._buffers.items())
        self.modules = [(n, None if m is None else Recipe(m)) for n, m in proto._modules.items()]

    def make(self) -> nn.Module:
        state = self.base.copy()
        for key, kind, value in self.containers:
            state[key] = kind() if value is None else value.copy()  # OrderedDict.copy() is slow
        state["_parameters"] = {n: None if p is None else nn.Parameter(p, rg) for n, p, rg in self.params}
        state["_buffers"] = {n: None if b is None else b.detach() for n, b in self.buffers}
        state["_modules"] = {n: None if r is None else r.make() for n, r in self.modules}
        m: nn.Module = object.__new__(self.cls)
        object.__setattr__(m, "__dict__", state)  # not Module.__setattr__'s checks
        return m
