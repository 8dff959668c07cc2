"""The narrow tensor table that a built model and a checkpoint both provide (torch-free), and the
queries over it: parameter rows, state_dict entries, shared groups and the tree of dotted keys.

A table lists every key with its shape and dtype; keys that are one stored tensor share ``stored``
(the key the data is stored under). Values, when the source has them, come from ``read``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import UsageError, did_you_mean
from .records import ParamRow, SharedGroup, StateEntry, Totals, TreeNode


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One key: its shape, dtype (torch's name: ``float32``), element count and bytes; ``stored`` is the
    key whose data it is (itself unless it is an alias) and ``via`` says why an alias is one
    (``alias``: recorded in the metadata, ``offsets``: the same bytes, ``storage``: one torch storage,
    ``tie``/``module`` in a built model). Fields a file does not record are None."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    nbytes: int
    stored: str
    via: str | None = None
    kind: str | None = None
    requires_grad: bool | None = None
    device: str | None = None


@dataclass
class TensorTable:
    """Every key of a model's state_dict or of a checkpoint, in order. ``read(key)`` gives a key's
    values as a torch tensor (None when the source has no values); ``format`` names the source:
    ``model``, ``safetensors``, ``sharded safetensors``, ``torch.distributed.checkpoint``, ``torch.save``."""

    name: str
    format: str
    entries: list[TensorInfo]
    files: list[str] = field(default_factory=list)
    read: Callable[[str], Any] | None = None

    def by_key(self) -> dict[str, TensorInfo]:
        return {e.key: e for e in self.entries}

    def groups(self) -> dict[str, list[str]]:
        """stored key → every key of that tensor (in table order)."""
        out: dict[str, list[str]] = {}
        for e in self.entries:
            out.setdefault(e.stored, []).append(e.key)
        return out

    def values(self, key: str) -> Any:
        if self.read is None:
            raise UsageError.at(None, f"{self.name} has no values", "build the model on a real device")
        return self.read(key)


_DIGITS = re.compile(r"(\d+)")


def natural_key(key: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that puts ``layers.2`` before ``layers.10``."""
    parts = _DIGITS.split(key)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), key


def scoped(table: TensorTable, module: str) -> TensorTable:
    """``--module PATH`` on a table: the keys under ``PATH.``, named relative to it."""
    prefix = module.strip(".") + "."
    if prefix == ".":
        return table
    under = [e for e in table.entries if e.key.startswith(prefix)]
    if not under:
        prefixes = sorted({e.key.rsplit(".", 1)[0] for e in table.entries if "." in e.key}, key=natural_key)
        raise UsageError.at(
            None, f"no key under '{module}' in {table.name}", did_you_mean(module, prefixes) or "prefixes: " + ", ".join(prefixes[:10])
        )
    first: dict[str, str] = {}  # a group's first key inside the scope holds its data there
    for e in under:
        first.setdefault(e.stored, e.key[len(prefix) :])
    inner = []
    for e in under:
        rel = e.key[len(prefix) :]
        inner.append(replace(e, key=rel, stored=first[e.stored], via=e.via if first[e.stored] != rel else None))
    read = table.read

    def read_inner(key: str) -> Any:
        assert read is not None
        return read(prefix + key)

    return TensorTable(table.name, table.format, inner, table.files, read_inner if read is not None else None)


# --- queries over a table -----------------------------------------------------------------------


def params(table: TensorTable) -> tuple[list[ParamRow], Totals]:
    """One row per key; totals count each stored tensor once (trainable and buffers unknown: None)."""
    groups = table.groups()
    rows = [ParamRow(e.key, list(e.shape), e.dtype, e.device, e.requires_grad, e.numel, None, groups[e.stored]) for e in table.entries]
    stored = {e.stored: e for e in table.entries}
    totals = Totals(
        unique=sum(e.numel for e in stored.values()),
        by_path=sum(e.numel for e in table.entries),
        trainable=None,
        frozen=None,
        bytes=sum(e.nbytes for e in stored.values()),
        buffers=None,
        buffer_bytes=None,
        tensors=len(stored),
    )
    return rows, totals


def state_dict(table: TensorTable) -> list[StateEntry]:
    return [StateEntry(e.key, list(e.shape), e.dtype, e.device, e.kind, None, e.numel) for e in table.entries]


def shared(table: TensorTable) -> tuple[list[SharedGroup], int, int]:
    """Groups of keys that are one stored tensor, with why (``alias``, ``offsets``, ``storage``)."""
    by_key = table.by_key()
    out: list[SharedGroup] = []
    for stored, keys in table.groups().items():
        if len(keys) < 2:
            continue
        first = by_key[stored]
        cause = next((by_key[k].via for k in keys if by_key[k].via), None) or "alias"
        parents = [k.rsplit(".", 1)[0] if "." in k else "" for k in keys]
        out.append(SharedGroup(keys, list(first.shape), first.numel, cause, parents))
    unique = sum(by_key[s].numel for s in {e.stored for e in table.entries})
    return out, unique, sum(e.numel for e in table.entries)


def _describe(own: list[tuple[str, TensorInfo]]) -> str:
    """``weight [8, 4], bias [8] float32`` (the dtype once when all agree)."""
    dtypes = {e.dtype for _, e in own}

    def shape(dims: tuple[int, ...]) -> str:
        return "[" + ", ".join(str(d) for d in dims) + "]"

    if len(dtypes) == 1:
        return ", ".join(f"{leaf} {shape(e.shape)}" for leaf, e in own) + f" {own[0][1].dtype}"
    return ", ".join(f"{leaf} {shape(e.shape)} {e.dtype}" for leaf, e in own)


def tree(table: TensorTable) -> TreeNode:
    """The hierarchy of the dotted keys: a node per prefix (class unknown: ``-``), its own tensors as
    its arguments, counts that hold each stored tensor once (as a module tree counts a Parameter)."""
    groups = table.groups()
    root = TreeNode("", "", "-", "", 0, 0, paths=[""])
    nodes: dict[str, TreeNode] = {"": root}
    order: list[TreeNode] = [root]
    own: dict[str, list[tuple[str, TensorInfo]]] = {}
    for e in table.entries:
        parent, _, leaf = e.key.rpartition(".")
        if parent not in nodes:
            parts = parent.split(".")
            for i in range(len(parts)):
                path = ".".join(parts[: i + 1])
                if path not in nodes:
                    node = TreeNode(parts[i], path, "-", "", 0, 0, paths=[path])
                    nodes[".".join(parts[:i])].children.append(node)
                    nodes[path] = node
                    order.append(node)
        own.setdefault(parent, []).append((leaf, e))
    numel = {e.key: e.numel for e in table.entries}
    single: dict[str, int] = {}
    multi: dict[str, set[str]] = {}
    for node in reversed(order):  # children before parents
        mine = own.get(node.path, [])
        count = sum(e.numel for _, e in mine if len(groups[e.stored]) == 1)
        shared_here = {e.stored for _, e in mine if len(groups[e.stored]) > 1}
        node.params_own = count + sum(numel[s] for s in shared_here)
        for child in node.children:
            count += single[child.path]
            shared_here |= multi[child.path]
        single[node.path], multi[node.path] = count, shared_here
        node.params_total = count + sum(numel[s] for s in shared_here)
        node.args = _describe(mine) if mine else ""
        node.tied = [" = ".join([leaf] + [k for k in groups[e.stored] if k != e.key]) for leaf, e in mine if len(groups[e.stored]) > 1]
        kids = tuple((c.name, c.signature) for c in node.children)
        node.signature = (node.type, node.args, node.params_own, node.params_total, False, tuple(node.tied), None, kids)
    return root
