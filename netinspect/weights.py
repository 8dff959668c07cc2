"""Weights in and out: ``--weights`` loading (a weights file or checkpoint in any form MODEL accepts, read
by ``netinspect.sources``), ``--set`` edits, and ``--save`` written atomically (a temporary file beside
the target, renamed when complete)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .build import Built
from .errors import Pos, Problem, SpecError, UsageError, did_you_mean
from .expr import ExprError, parse_expr
from .files import atomic_write
from .sources.safetensors import ALIASES_KEY

_OPS = {"=": "fill_", "+=": "add_", "-=": "sub_", "*=": "mul_", "/=": "div_"}
_EDIT = re.compile(r"\s*([A-Za-z0-9_.]+)\s*(\[[^\]]*\])?\s*(=|\+=|-=|\*=|/=)\s*(.+?)\s*\Z", re.S)


# --- --set edits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    text: str
    path: str
    index: tuple[Any, ...] | None
    op: str
    value: float | int | bool


def _index_part(part: str, text: str) -> Any:
    part = part.strip()
    if part == "...":
        return Ellipsis
    if ":" in part:
        bits = part.split(":")
        if len(bits) > 3:
            raise UsageError.at(None, f"--set {text!r}: bad slice {part!r}")
        return slice(*[int(b) if b.strip() else None for b in bits])
    return int(part)


def parse_edit(text: str) -> Edit:
    """``PATH[IDX] OP VALUE`` with OP one of = += -= *= /= (D2L's ``net[0].weight.data[0, 0] = 42``)."""
    m = _EDIT.match(text)
    if not m:
        raise UsageError.at(None, f"--set {text!r} is not PATH[INDEX]=VALUE", 'e.g. --set "0.weight[0,0]=42" or --set "0.weight[:]+=1"')
    path, idx, op, value_text = m.groups()
    index = None
    try:
        if idx is not None:
            inner = idx[1:-1].strip()
            index = tuple(_index_part(p, text) for p in inner.split(",")) if inner else ()
        value = parse_expr(value_text).evaluate({})
    except ValueError:
        raise UsageError.at(None, f"--set {text!r}: indices are integers or slices", "e.g. [0,0], [:2], [1:3, 0]") from None
    except ExprError as exc:
        raise UsageError.at(None, f"--set {text!r}: {exc.message}", exc.hint) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError.at(None, f"--set {text!r}: the value must be a number")
    return Edit(text, path, index, op, value)


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.state_dict(keep_vars=True))


def apply_edits(built: Built, edits: list[Edit]) -> None:
    if not edits:
        return
    tensors = _tensors(built.module)
    with torch.no_grad():
        for e in edits:
            t = tensors.get(e.path)
            if t is None:
                raise UsageError.at(
                    None,
                    f"--set {e.text!r}: no parameter or buffer '{e.path}'",
                    did_you_mean(e.path, tensors) or "paths: " + ", ".join(list(tensors)[:8]),
                )
            try:
                # basic indexing (ints and slices) gives a view, so the in-place op writes into the parameter
                view = t[e.index] if e.index else t
                getattr(view, _OPS[e.op])(e.value)
            except (IndexError, RuntimeError, TypeError) as exc:
                raise UsageError.at(None, f"--set {e.text!r}: {exc}", f"'{e.path}' has shape {list(t.shape)}") from None


# --- save ---------------------------------------------------------------------------------------


def stored_keys(keys: Iterable[tuple[str, object]]) -> tuple[list[str], dict[str, str]]:
    """For (state_dict key, tensor identity) in order: the keys a ``.safetensors`` stores (each
    tensor once, under its first key) and every other key → that first key (``netinspect.aliases``)."""
    first: dict[object, str] = {}
    stored: list[str] = []
    aliases: dict[str, str] = {}
    for k, ident in keys:
        if ident in first:
            aliases[k] = first[ident]
            continue
        first[ident] = k
        stored.append(k)
    return stored, aliases


def save_state(built: Built, target: Path) -> None:
    """``.pt``: every key (tied keys share storage, as torch.save does). ``.safetensors``: each tied
    tensor once under its first path, the other paths recorded in the metadata."""
    sd = built.module.state_dict(keep_vars=True)
    if target.suffix in (".pt", ".pth"):
        plain = {k: v.detach() for k, v in sd.items()}
        atomic_write(target, lambda tmp: torch.save(plain, tmp))
        return
    from safetensors.torch import save_file

    stored, aliases = stored_keys((k, id(v)) for k, v in sd.items())
    tensors = {k: sd[k].detach().to("cpu").contiguous().clone() for k in stored}
    meta = {"format": "pt", ALIASES_KEY: json.dumps(aliases)}
    atomic_write(target, lambda tmp: save_file(tensors, tmp, metadata=meta))


# --- load ---------------------------------------------------------------------------------------


def load_weights(built: Built, path: str, *, partial: bool, progress: Callable[[str, int, int], None] | None = None) -> list[Problem]:
    """Load a weights file (or checkpoint, in any form ``netinspect.sources`` reads; a bad one raises
    SpecError) into the built model; missing, unexpected and mismatched keys are named from the
    file's shapes before any value is read: an error, or with ``partial`` the problems returned (the
    caller reports them as warnings). Then each tensor is read as it is copied in."""
    from .sources import open_checkpoint

    where = Pos(path)
    table = open_checkpoint(path, sniff=True)
    found = {e.key: e.shape for e in table.entries if e.stored == e.key}  # key → shape
    source = {k: k for k in found}  # key → the stored key its values are read from
    for e in table.entries:
        if e.stored != e.key and e.stored in found:
            found[e.key] = found[e.stored]
            source[e.key] = e.stored
    values = built.device.type != "meta"
    model = _tensors(built.module)
    groups: dict[int, list[str]] = {}
    for k, t in model.items():
        groups.setdefault(id(t), []).append(k)
    problems: list[Problem] = []
    load: list[tuple[str, str]] = []
    done: set[int] = set()
    for k, t in model.items():
        group = groups[id(t)]
        present = [g for g in group if g in found]
        if not present:
            problems.append(Problem(f"missing key '{k}' (shape {list(t.shape)})", where, "the file lacks it; --partial loads the rest"))
            continue
        src = k if k in found else present[0]
        if tuple(found[src]) != tuple(t.shape):
            problems.append(Problem(f"shape mismatch for '{k}': file {list(found[src])}, model {list(t.shape)}", where))
            continue
        if id(t) in done:
            first = source[present[0]]
            if values and k in found and source[k] != first and not torch.equal(table.values(first), table.values(source[k])):
                problems.append(Problem(f"tied paths {', '.join(group)} have different values in the file", where))
            continue
        done.add(id(t))
        load.append((k, source[src]))
    for k in found:
        if k not in model:
            problems.append(Problem(f"unexpected key '{k}'", where, did_you_mean(k, model)))
    if problems and not partial:
        raise SpecError(problems)
    if values:
        with torch.no_grad():
            for i, (k, stored) in enumerate(load):
                model[k].copy_(table.values(stored))
                if progress is not None:
                    progress("load", i + 1, len(load))
    return problems
