"""Module-class lookup: names → ``nn.Module`` classes (torch.nn allow-list and ``--allow`` grants).

Arguments are checked against the constructor's signature before anything is built.
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .errors import Pos, Problem, UsageError, did_you_mean
from .spec import CONTAINERS

FACTORY_KWARGS = {"device", "dtype"}


@lru_cache(maxsize=1)
def nn_classes() -> dict[str, type[nn.Module]]:
    """Public ``torch.nn`` module classes by name (containers and the base class excluded)."""
    out: dict[str, type[nn.Module]] = {}
    for name in dir(nn):
        if name.startswith("_") or name in CONTAINERS or name == "Module":
            continue
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            out[name] = obj
    return out


def parse_allow(grants: list[str] | tuple[str, ...], functions: frozenset[str] = frozenset()) -> dict[str, type[nn.Module]]:
    """``--allow pkg.mod:Class`` → {"Class": cls, "pkg.mod.Class": cls}; bad grants are usage errors.
    ``functions``: the grants that a forward of the model calls as functions (those may name a function)."""
    allowed: dict[str, type[nn.Module]] = {}
    for grant in grants:
        mod_name, sep, cls_name = grant.partition(":")
        if not sep or not mod_name or not cls_name.isidentifier():
            raise UsageError.at(None, f"--allow {grant!r} is not of the form pkg.mod:Class", "e.g. --allow mypkg.layers:MyBlock")
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:  # the user asked for this import; any failure is theirs to see
            raise UsageError.at(None, f"--allow {grant!r}: cannot import {mod_name!r}: {exc}") from exc
        cls = getattr(module, cls_name, None)
        if grant in functions and callable(cls) and not isinstance(cls, type):
            continue  # a function a forward calls (resolved when its graph is compiled)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            why = "no forward of this model calls it" if callable(cls) else "it is not a function either"
            raise UsageError.at(None, f"--allow {grant!r}: {cls_name!r} is not an nn.Module subclass in {mod_name} ({why})")
        allowed[cls_name] = cls
        allowed[f"{mod_name}.{cls_name}"] = cls
    return allowed


def resolve(name: str, allowed: dict[str, type[nn.Module]], pos: Pos | None, blocks: tuple[str, ...] = ()) -> type[nn.Module] | Problem:
    """Look a class name up: torch.nn first, then the ``--allow`` grants."""
    classes = nn_classes()
    short = name
    for prefix in ("torch.nn.", "nn."):
        if name.startswith(prefix):
            short = name[len(prefix) :]
            break
    if "." not in short and short in classes:
        return classes[short]
    if name in allowed:
        return allowed[name]
    if "." in name and short == name:
        return Problem(
            f"module type '{name}' is not allowed",
            pos,
            f"classes outside torch.nn need a grant on the command line: --allow {name.rpartition('.')[0]}:{name.rpartition('.')[2]}",
        )
    hint = did_you_mean(short, list(blocks) + list(classes) + [k for k in allowed if "." not in k])
    return Problem(f"unknown module type '{name}'", pos, hint or "a torch.nn class, a block, or a class granted with --allow pkg.mod:Class")


_SIGNATURES: dict[type[nn.Module], inspect.Signature | None] = {}


def _signature(cls: type[nn.Module]) -> inspect.Signature | None:
    if cls not in _SIGNATURES:
        try:
            _SIGNATURES[cls] = inspect.signature(cls)
        except (TypeError, ValueError):
            _SIGNATURES[cls] = None
    return _SIGNATURES[cls]


def check_args(cls: type[nn.Module], args: tuple[Any, ...], kwargs: dict[str, Any], pos: Pos | None) -> Problem | None:
    """Bind the arguments to the constructor's signature; a mismatch is a located problem."""
    for key in kwargs:
        if key in FACTORY_KWARGS:
            what = "--device" if key == "device" else "the file's dtype: or --dtype"
            return Problem(f"{cls.__name__}: '{key}=' is set by netinspect", pos, f"remove it and use {what}")
    sig = _signature(cls)
    if sig is None:
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        params = [p for p in sig.parameters.values() if p.name not in FACTORY_KWARGS]
        shown = ", ".join(str(p) for p in params)
        hint = f"{cls.__name__}({shown})"
        unknown = [k for k in kwargs if k not in sig.parameters]
        if unknown:
            near = did_you_mean(unknown[0], [p.name for p in params])
            if near:
                hint = f"{near} signature: {hint}"
        return Problem(f"{cls.__name__}: {exc}", pos, hint)
    return None


def call_text(cls: type[nn.Module], args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]
    return f"{cls.__name__}({', '.join(parts)})"


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
