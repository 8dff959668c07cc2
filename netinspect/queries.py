"""Questions about a built module → plain records (dataclasses). Nothing here prints.

Every count groups ``named_parameters(remove_duplicate=False)`` by ``id(param)``
(``data_ptr()`` is 0 on meta), so a tied or reused parameter is counted once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .build import Built, all_named_modules
from .errors import UsageError, did_you_mean
from .layers import dtype_name
from .records import ParamRow, SharedGroup, StateEntry, Totals, TreeNode
from .records import walk_tree as walk_tree  # re-exported: the CLI walks trees through queries

if TYPE_CHECKING:
    from .schemes import SchemeStep, TensorStats
from .tables import TensorInfo, TensorTable


def shape_of(t: torch.Tensor) -> list[int]:
    return [int(d) for d in t.shape]


def device_name(t: torch.Tensor | torch.device) -> str:
    return str(t.device if isinstance(t, torch.Tensor) else t)


def submodule(root: nn.Module, path: str) -> nn.Module:
    """``--module PATH`` (``0``, ``0.block1``); an unknown path is a usage error with close names."""
    if path in ("", "."):
        return root
    try:
        return root.get_submodule(path)
    except AttributeError:
        paths = [p for p, _ in root.named_modules() if p]
        raise UsageError.at(
            None, f"no module at path '{path}'", did_you_mean(path, paths) or "module paths: " + ", ".join(paths[:10])
        ) from None


# --- tree ---------------------------------------------------------------------------------------


def all_named_parameters(root: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``root.named_parameters(remove_duplicate=False)`` as a list (same paths, same order)."""
    out: list[tuple[str, nn.Parameter]] = []
    for mpath, m in all_named_modules(root):
        for pname, p in m._parameters.items():
            if p is not None:
                out.append((f"{mpath}.{pname}" if mpath else pname, p))
    return out


def object_paths(root: nn.Module) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """id(module) → every path of that module, id(param) → every path of that Parameter, in
    ``named_modules`` / ``named_parameters(remove_duplicate=False)`` order (one walk)."""
    mpaths: dict[int, list[str]] = {}
    ppaths: dict[int, list[str]] = {}
    for mpath, m in all_named_modules(root):
        mpaths.setdefault(id(m), []).append(mpath)
        for pname, p in m._parameters.items():
            if p is not None:
                ppaths.setdefault(id(p), []).append(f"{mpath}.{pname}" if mpath else pname)
    return mpaths, ppaths


def tree(built: Built) -> TreeNode:
    root = built.module
    mpaths, ppaths = object_paths(root)
    multi = {pid for pid, ps in ppaths.items() if len(ps) > 1}
    tied = built.tied_ids
    totals: dict[int, tuple[int, frozenset[int] | None]] = {}
    numel_of: dict[int, int] = {}

    def subtree_total(m: nn.Module) -> tuple[int, frozenset[int] | None]:
        # (unique count, the shared-param ids in the subtree, or None when there are none)
        key = id(m)
        if key in totals:
            return totals[key]
        count = 0
        shared: set[int] = set()
        for p in m._parameters.values():
            if p is None:
                continue
            n = numel_of.get(id(p))
            if n is None:
                n = numel_of[id(p)] = p.numel()
            if id(p) in multi:
                shared.add(id(p))
            else:
                count += n
        for child in m._modules.values():
            if child is None:
                continue
            c, s = subtree_total(child)
            count += c
            if s:
                shared |= s
        result = (count, frozenset(shared) if shared else None)
        totals[key] = result
        return result

    def build_node(name: str, path: str, m: nn.Module) -> TreeNode:
        own = 0
        tied_text: list[str] = []
        seen: set[int] = set()
        c, s = subtree_total(m)  # fills numel_of for every parameter below m
        trainable = False
        for pname, p in m._parameters.items():
            if p is None:
                continue
            trainable = trainable or p.requires_grad
            if id(p) in seen:
                continue
            seen.add(id(p))
            own += numel_of[id(p)]
            if id(p) in tied:
                mine = f"{path}.{pname}" if path else pname
                tied_text.append(" = ".join([pname] + [q for q in ppaths[id(p)] if q != mine]))
        total = c + (sum(numel_of[i] for i in s) if s else 0)
        frozen = bool(seen) and not trainable
        node = TreeNode(name, path, type(m).__name__, m.extra_repr(), own, total, [], mpaths[id(m)], tied_text, frozen)
        prefix = path + "." if path else ""
        children = node.children
        for cname, child in m._modules.items():
            if child is not None:
                children.append(build_node(cname, prefix + cname, child))
        # what the text tree folds runs of identical siblings by: structure, counts, markers, and
        # which module object a reused node is (so cells that reuse one module never fold with
        # cells that own theirs)
        reused = id(m) if len(node.paths) > 1 else None
        kids = tuple((c.name, c.signature) for c in children)
        node.signature = (node.type, node.args, own, total, frozen, tuple(tied_text), reused, kids)
        return node

    return build_node("", "", root)


# --- params -------------------------------------------------------------------------------------


def params(module: nn.Module) -> tuple[list[ParamRow], Totals]:
    """One row per parameter path, and totals that count each Parameter once."""
    named = all_named_parameters(module)
    paths: dict[int, list[str]] = {}
    for name, p in named:
        paths.setdefault(id(p), []).append(name)
    facts: dict[int, tuple[list[int], str, str, bool, int, str]] = {}
    rows: list[ParamRow] = []
    for name, p in named:
        f = facts.get(id(p))
        if f is None:
            grad = "none" if p.grad is None else "present"
            f = facts[id(p)] = (shape_of(p), dtype_name(p.dtype), device_name(p), bool(p.requires_grad), p.numel(), grad)
        rows.append(ParamRow(name, list(f[0]), f[1], f[2], f[3], f[4], f[5], paths[id(p)]))
    uniq = {id(p): p for _, p in named}
    bufs = {id(b): b for b in module.buffers()}
    totals = Totals(
        unique=sum(p.numel() for p in uniq.values()),
        by_path=sum(r.numel for r in rows),
        trainable=sum(p.numel() for p in uniq.values() if p.requires_grad),
        frozen=sum(p.numel() for p in uniq.values() if not p.requires_grad),
        bytes=sum(p.numel() * p.element_size() for p in uniq.values()),
        buffers=sum(b.numel() for b in bufs.values()),
        buffer_bytes=sum(b.numel() * b.element_size() for b in bufs.values()),
        tensors=len(uniq),
    )
    return rows, totals


# --- state_dict ---------------------------------------------------------------------------------


def state_dict(module: nn.Module) -> list[StateEntry]:
    sd = module.state_dict(keep_vars=True)
    return [
        StateEntry(
            k, shape_of(t), dtype_name(t.dtype), device_name(t), "parameter" if isinstance(t, nn.Parameter) else "buffer", t, t.numel()
        )
        for k, t in sd.items()
    ]


def model_table(built: Built) -> TensorTable:
    """The built model's ``state_dict()`` as a tensor table (values unless it is on meta): keys that are
    one tensor (a tie, a reused module) share their first key as ``stored``."""
    sd = built.module.state_dict(keep_vars=True)
    tied = built.tied_ids
    first: dict[int, str] = {}
    entries = []
    for k, t in sd.items():
        stored = first.setdefault(id(t), k)
        via = None if stored == k else "tie" if id(t) in tied else "module"
        param = isinstance(t, nn.Parameter)
        numel = t.numel()
        entries.append(
            TensorInfo(
                k,
                tuple(shape_of(t)),
                dtype_name(t.dtype),
                numel,
                numel * t.element_size(),
                stored,
                via,
                "parameter" if param else "buffer",
                bool(t.requires_grad) if param else None,
                device_name(t),
            )
        )

    def read(key: str) -> torch.Tensor:
        t: torch.Tensor = sd[key]
        return t.detach()

    return TensorTable(built.spec.name, "model", entries, [], None if built.device.type == "meta" else read)


def values(t: torch.Tensor) -> Any:
    """A tensor's values as nested Python lists (NaN/inf kept as floats)."""
    return t.detach().cpu().tolist()


# --- shared -------------------------------------------------------------------------------------


def shared(built: Built, module: nn.Module | None = None) -> tuple[list[SharedGroup], int, int]:
    """Groups of parameter paths that are one Parameter, with why: module reuse or a tie."""
    root = module if module is not None else built.module
    tied = built.tied_ids
    groups: dict[int, list[str]] = {}
    objs: dict[int, nn.Parameter] = {}
    owners: dict[int, list[str]] = {}
    by_path = 0
    for mpath, m in all_named_modules(root):
        for pname, p in m._parameters.items():
            if p is None:
                continue
            path = f"{mpath}.{pname}" if mpath else pname
            groups.setdefault(id(p), []).append(path)
            owners.setdefault(id(p), []).append(mpath)
            objs[id(p)] = p
            by_path += p.numel()
    out: list[SharedGroup] = []
    for pid, paths in groups.items():
        if len(paths) < 2:
            continue
        p = objs[pid]
        distinct_owner_objects = {id(root.get_submodule(o)) if o else id(root) for o in owners[pid]}
        cause = "tie" if pid in tied or len(distinct_owner_objects) > 1 else "module"
        out.append(SharedGroup(paths, shape_of(p), p.numel(), cause, owners[pid]))
    unique = sum(p.numel() for p in objs.values())
    return out, unique, by_path


def iter_unique_params(module: nn.Module) -> Iterator[tuple[str, nn.Parameter, list[str]]]:
    """(first path, parameter, other paths) for each distinct Parameter."""
    _, paths = object_paths(module)
    seen: set[int] = set()
    for name, p in all_named_parameters(module):
        if id(p) in seen:
            continue
        seen.add(id(p))
        yield name, p, paths[id(p)][1:]


# --- init report --------------------------------------------------------------------------------


@dataclass(slots=True)
class InitRow:
    name: str
    shape: list[int]
    scheme: str | None
    mean: float
    std: float | None
    min: float
    max: float
    zero_fraction: float
    expected_std: float | None
    shared_with: list[str]


@dataclass(frozen=True, slots=True)
class RowPlan:
    """An ``init`` row before its statistics: the parameter's first path, shape, scheme chain (text),
    expected std and other paths, and (id(owner), name) of its first owner."""

    name: str
    shape: list[int]
    scheme: str | None
    expected_std: float | None
    shared_with: list[str]
    attr: tuple[int, str]


def init_row_plans(
    module: nn.Module, chains: Mapping[int, Sequence[SchemeStep]], unique: Sequence[tuple[str, nn.Parameter, list[str]]] | None = None
) -> list[RowPlan]:
    """One row per distinct Parameter (under its first path), from its scheme chain (by id(param));
    what a row says of the scheme is known before the values exist (on meta too). ``unique``:
    ``iter_unique_params(module)`` where the caller has it already."""
    from .schemes import expected_std

    owners: dict[int, tuple[nn.Module, str]] = {}
    for m in module.modules():
        for pname, p in m._parameters.items():
            if p is not None:
                owners.setdefault(id(p), (m, pname))
    rows: list[RowPlan] = []
    for name, p, others in iter_unique_params(module) if unique is None else unique:
        owner, pname = owners[id(p)]
        chain = chains.get(id(p))
        exp = expected_std(chain, p, owner, pname) if chain else None
        scheme = None
        if chain:
            scheme = chain[0].text if len(chain) == 1 else "[" + ", ".join(s.text for s in chain) + "]"
        rows.append(RowPlan(name, shape_of(p), scheme, exp, others, (id(owner), pname)))
    return rows


def init_rows(plans: Sequence[RowPlan], stats: Sequence[TensorStats]) -> list[InitRow]:
    """The rows, with each parameter's statistics (in the plans' order)."""
    return [
        InitRow(r.name, r.shape, r.scheme, st.mean, st.std, st.min, st.max, st.zero_fraction, r.expected_std, r.shared_with)
        for r, st in zip(plans, stats, strict=True)
    ]


def init_report(built: Built) -> list[InitRow]:
    """Per-parameter statistics after every rule ran (each Parameter once, under its first path)."""
    from .schemes import tensor_stats

    unique = list(iter_unique_params(built.module))
    plans = init_row_plans(built.module, built.applied, unique)
    return init_rows(plans, [tensor_stats(p.detach()) for _, p, _ in unique])
