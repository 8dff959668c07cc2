"""Two tensor tables compared (a model's state_dict or a checkpoint on either side): keys only in a,
only in b, keys whose shape or dtype differ, and with values the largest absolute difference per key.
Hints name the usual reasons a checkpoint does not load into a model. Nothing here prints."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .tables import TensorInfo, TensorTable

#: Elements compared at a time (float64 copies of both sides are made per chunk).
CHUNK = 1 << 22


@dataclass(slots=True)
class Change:
    key: str
    a: TensorInfo
    b: TensorInfo
    max_abs_diff: float | None = None


@dataclass
class Diff:
    a: str
    b: str
    a_format: str
    b_format: str
    only_a: list[TensorInfo]
    only_b: list[TensorInfo]
    changed: list[Change]
    same: int
    values: bool = False
    atol: float = 0.0
    hints: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (self.only_a or self.only_b or self.changed)


def compare(a: TensorTable, b: TensorTable, *, names: tuple[str, str], values: bool = False, atol: float = 0.0) -> Diff:
    """Compare key by key (``values``: both tables must have values; a key differs when some element
    differs by more than ``atol``, NaN matching NaN)."""
    ka, kb = a.by_key(), b.by_key()
    only_a = [e for e in a.entries if e.key not in kb]
    only_b = [e for e in b.entries if e.key not in ka]
    changed: list[Change] = []
    same = 0
    for ea in a.entries:
        eb = kb.get(ea.key)
        if eb is None:
            continue
        diff = None
        if values and ea.shape == eb.shape:
            diff = max_abs_diff(a.values(ea.key), b.values(eb.key))
        if (ea.shape, ea.dtype) != (eb.shape, eb.dtype) or (diff is not None and not diff <= atol):
            changed.append(Change(ea.key, ea, eb, diff))
        else:
            same += 1
    d = Diff(names[0], names[1], a.format, b.format, only_a, only_b, changed, same, values, atol)
    d.hints = hints(a, b, d)
    return d


def max_abs_diff(x: Any, y: Any) -> float:
    """max |x - y| over all elements, in float64 (complex128 for complex); NaN against NaN and equal
    infinities count as 0, NaN against a number as infinity."""
    import torch

    wide = torch.complex128 if x.is_complex() or y.is_complex() else torch.float64
    worst = 0.0
    for cx, cy in zip(x.detach().reshape(-1).split(CHUNK), y.detach().reshape(-1).split(CHUNK), strict=True):
        u, v = cx.to(wide), cy.to(wide)
        d = (u - v).abs()
        d = torch.where((u == v) | (u.isnan() & v.isnan()), torch.zeros((), dtype=d.dtype), d)
        d = torch.nan_to_num(d, nan=math.inf)
        if d.numel():
            worst = max(worst, float(d.max()))
    return worst


# --- hints --------------------------------------------------------------------------------------


def hints(a: TensorTable, b: TensorTable, d: Diff) -> list[str]:
    out: list[str] = []
    for x, y, ox, oy in (("a", "b", d.only_a, d.only_b), ("b", "a", d.only_b, d.only_a)):
        text = _prefix(x, y, ox, oy)
        if text:
            out.append(text)
    for x, y, tx, ty, ox in (("a", "b", a, b, d.only_a), ("b", "a", b, a, d.only_b)):
        text = _stored_once(x, y, tx, ty, ox)
        if text:
            out.append(text)
    if not out:
        text = _renamed(d)
        if text:
            out.append(text)
    transposed = [c for c in d.changed if len(c.a.shape) == 2 and c.a.shape == c.b.shape[::-1] and c.a.shape != c.b.shape]
    if transposed:
        c = transposed[0]
        out.append(
            f"{_count(transposed, 'key')} transposed (e.g. '{c.key}': {list(c.a.shape)} in a, {list(c.b.shape)} in b): "
            "GPT-2's Conv1D stores [in, out] where Linear stores [out, in]; transpose them when converting"
        )
    dtyped = [c for c in d.changed if c.a.shape == c.b.shape and c.a.dtype != c.b.dtype]
    if dtyped:
        c = dtyped[0]
        text = f"{_count(dtyped, 'key')} only a dtype change (e.g. '{c.key}': {c.a.dtype} in a, {c.b.dtype} in b)"
        text += ": load_state_dict copies values into the model's dtype"
        targets = {c.b.dtype if a.format == "model" else c.a.dtype for c in dtyped}
        if len(targets) == 1 and "model" in (a.format, b.format):
            text += f"; --dtype {targets.pop()} builds the model in the file's dtype"
        out.append(text)
    verdict = _loads(a, b, d)
    if verdict:
        out.append(verdict)
    return out


def _count(items: list[Any], what: str) -> str:
    return f"{len(items):,} {what}" + (" is" if len(items) == 1 else "s are")


def _prefix(x: str, y: str, ox: list[TensorInfo], oy: list[TensorInfo]) -> str | None:
    """Keys only in x that are keys only in y with a leading ``P.`` (``model.``, ``module.``, ``_orig_mod.``)."""
    in_y = {e.key for e in oy}
    firsts = Counter(e.key.split(".", 1)[0] for e in ox if "." in e.key)
    for p, _ in firsts.most_common(3):
        matched = [e.key for e in ox if e.key.startswith(p + ".") and e.key[len(p) + 1 :] in in_y]
        if matched and len(matched) * 2 >= len(oy):
            k = matched[0]
            every = "every key" if len(matched) == len(ox) else f"{len(matched):,} keys"
            why = "; DataParallel, DistributedDataParallel and torch.compile add one" if p in ("module", "_orig_mod") else ""
            return f"{every} only in {x} is a key of {y} with the prefix '{p}.' (e.g. '{k}'{why}): strip it from the keys of {x}"
    return None


def _stored_once(x: str, y: str, tx: TensorTable, ty: TensorTable, ox: list[TensorInfo]) -> str | None:
    """Keys only in x that are one tensor with a key that y has: a tie saved once."""
    groups = tx.groups()
    in_y = ty.by_key()
    found = []
    for e in ox:
        others = [k for k in groups[e.stored] if k != e.key and k in in_y and (in_y[k].shape, in_y[k].dtype) == (e.shape, e.dtype)]
        if others:
            found.append((e.key, others[0]))
    if not found:
        return None
    k, other = found[0]
    if len(found) == 1:
        what = f"'{k}', only in {x}, is one tensor with '{other}' there, which {y} has"
    else:
        what = f"{len(found):,} keys only in {x} are one tensor with a key {y} has (e.g. '{k}' with '{other}')"
    return f"{what}: a tied weight stored once; load with strict=False, then tie again"


def _renamed(d: Diff) -> str | None:
    """Keys only in a and only in b that pair one for one by shape and dtype: the same tensors renamed."""
    if not d.only_a or len(d.only_a) != len(d.only_b):
        return None

    def sig(e: TensorInfo) -> tuple[tuple[int, ...], str]:
        return e.shape, e.dtype

    if Counter(map(sig, d.only_a)) != Counter(map(sig, d.only_b)):
        return None
    first = d.only_a[0]
    same = [e.key for e in d.only_b if sig(e) == sig(first)]
    words = set(re.split(r"[._]", first.key))
    match = max(same, key=lambda k: len(words & set(re.split(r"[._]", k))))  # the likeliest new name: most words in common
    return (
        f"the {len(d.only_a):,} keys only in a and the {len(d.only_b):,} only in b pair one for one by shape and dtype "
        f"(e.g. '{first.key}' and '{match}'): the same tensors under other names?"
    )


def _loads(a: TensorTable, b: TensorTable, d: Diff) -> str | None:
    """For a model and a checkpoint: what ``model.load_state_dict(checkpoint)`` (strict) would say."""
    if (a.format == "model") == (b.format == "model"):
        return None
    model, ckpt = ("a", "b") if a.format == "model" else ("b", "a")
    missing = len(d.only_a if model == "a" else d.only_b)
    unexpected = len(d.only_b if model == "a" else d.only_a)
    sizes = sum(1 for c in d.changed if c.a.shape != c.b.shape)
    if not (missing or unexpected or sizes):
        return f"load_state_dict(strict=True) of {ckpt} into the model {model} would succeed"
    parts = [f"{n:,} {what}" for n, what in ((missing, "missing"), (unexpected, "unexpected"), (sizes, "size mismatches")) if n]
    return f"load_state_dict(strict=True) of {ckpt} into the model {model} would fail: " + ", ".join(parts)
