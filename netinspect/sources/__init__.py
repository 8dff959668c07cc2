"""Checkpoint readers: a weights file or checkpoint → a ``TensorTable`` (see ``netinspect.tables``).

Forms: ``.safetensors`` and ``*.safetensors.index.json`` (header only, torch-free), a directory
holding one of those or a torch.distributed.checkpoint (``.metadata``), and ``.pt``/``.pth``/``.bin``
(``weights_only=True``, memory-mapped). A malformed file is one ``SpecError`` that names it.
"""

from __future__ import annotations

import os

from netinspect.tables import TensorTable

from .files import fail, file_size, inside, read_at

FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
INDEX_SUFFIX = ".index.json"
#: What a directory may hold, in the order looked for.
DIRECTORY_FILES = ("model.safetensors.index.json", "model.safetensors")


def is_checkpoint(model: str) -> bool:
    """Whether MODEL names a checkpoint (by its name, or being a directory) rather than a model file."""
    return model.endswith((*FILE_SUFFIXES, INDEX_SUFFIX, "/", os.sep)) or os.path.isdir(model)


def open_checkpoint(path: str, *, sniff: bool = False) -> TensorTable:
    """Read a checkpoint's tensor table (its headers or metadata; no tensor data). ``sniff``: a file
    with another suffix is recognised by its first bytes (``--weights`` takes any name)."""
    from . import index, safetensors, torchfile

    if len(path) > 1:
        path = path.rstrip("/" + os.sep) or path  # named as a folder or not, errors name it the same way
    if os.path.isdir(path):
        return _directory(path)
    if path.endswith(INDEX_SUFFIX):
        return index.table(path)
    if path.endswith(".safetensors"):
        return safetensors.table(path)
    if path.endswith((".pt", ".pth", ".bin")):
        return torchfile.table(path)
    size = file_size(path)  # a missing file, a link loop, a device...
    kind = _sniff(path, size) if sniff else None
    if kind == "safetensors":
        return safetensors.table(path)
    if kind == "torch":
        return torchfile.table(path)
    raise fail(path, "not a checkpoint: neither safetensors nor a torch.save file", "name it .safetensors, .pt, .pth or .bin")


def _sniff(path: str, size: int) -> str | None:
    head = bytes(read_at(path, 0, min(size, 16)))
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return None


def _directory(folder: str) -> TensorTable:
    """A directory: a torch.distributed.checkpoint (``.metadata``), else ``model.safetensors.index.json``,
    ``model.safetensors``, or its only ``*.safetensors.index.json`` or ``*.safetensors``."""
    from . import dcp, index, safetensors

    if os.path.lexists(os.path.join(folder, dcp.METADATA)):
        return dcp.table(folder)
    names = [n for n in DIRECTORY_FILES if os.path.lexists(os.path.join(folder, n))]
    if not names:
        try:
            listing = sorted(os.listdir(folder))
        except OSError as exc:
            raise fail(folder, f"cannot list the directory: {exc.strerror or exc}") from None
        for suffix in (".safetensors.index.json", ".safetensors"):
            found = [n for n in listing if n.endswith(suffix)]
            if len(found) == 1:
                names = found
                break
            if len(found) > 1:
                raise fail(folder, f"holds {len(found)} {suffix} files: {', '.join(found[:4])}", "name the one to read")
    if not names:
        raise fail(
            folder,
            "holds no checkpoint",
            "expected .metadata (torch.distributed.checkpoint), model.safetensors.index.json or model.safetensors",
        )
    path = inside(folder, names[0], folder, os.path.join(folder, names[0]), "the directory")
    shown = os.path.join(folder, names[0])
    return index.table(path, shown) if names[0].endswith(INDEX_SUFFIX) else safetensors.table(path, shown)
