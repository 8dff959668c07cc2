"""Walks over a module tree without PyTorch's recursive generators (deep and wide trees stay cheap)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn


def unique_modules(root: nn.Module) -> list[nn.Module]:
    """``root.modules()`` (each module once, pre-order) without its generator stack."""
    out: list[nn.Module] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append(m)
        stack.extend(reversed([c for c in m._modules.values() if c is not None]))
    return out


def all_named_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """``root.named_modules(remove_duplicate=False)`` as a list, without its recursive generators
    (a module reachable by several paths appears once per path)."""
    out: list[tuple[str, nn.Module]] = []
    stack: list[tuple[str, nn.Module]] = [("", root)]
    while stack:
        path, m = stack.pop()
        out.append((path, m))
        children = m._modules
        if children:
            prefix = path + "." if path else ""
            stack.extend(reversed([(prefix + name, c) for name, c in children.items() if c is not None]))
    return out


def param_paths(root: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every parameter path (``named_parameters(remove_duplicate=False)``) → (owning module, attribute)."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for mpath, m in all_named_modules(root):
        for pname in m._parameters:
            if m._parameters[pname] is not None:
                out[f"{mpath}.{pname}" if mpath else pname] = (m, pname)
    return out


def postorder(m: nn.Module) -> Iterator[nn.Module]:
    """Submodules before their parent, in the order their constructors finish."""
    for child in m.children():
        yield from postorder(child)
    yield m


def unique_bytes(root: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (a tied or reused tensor once)."""
    seen: set[int] = set()
    total = 0
    for m in unique_modules(root):
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
    return total
