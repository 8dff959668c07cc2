"""torch.distributed.checkpoint directories: the ``.metadata`` pickle, read with an unpickler that
constructs only the classes a checkpoint's metadata is made of (never code), then checked: every
chunk inside its tensor, the chunks covering it, each stored in a file of the directory within that
file's size. Values come from ``dcp.load`` in this one process, with this same metadata."""

from __future__ import annotations

import io
import math
import os
import pickle
from typing import Any

from netinspect.errors import exc_text
from netinspect.tables import TensorInfo, TensorTable

from .files import HEADER_CAP, fail, file_size, inside, read_at

METADATA = ".metadata"
_DCP = "torch.distributed.checkpoint"
_ALLOWED = {
    f"{_DCP}.metadata": {
        "Metadata",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "TensorProperties",
        "StorageMeta",
        "MetadataIndex",
        "_MEM_FORMAT_ENCODING",
    },
    f"{_DCP}.filesystem": {"_StorageInfo", "_StoragePrefix"},
    "torch": {"Size"},
    "torch.serialization": {"_get_layout"},
    "pathlib": {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
    "builtins": {"set", "frozenset"},
}
#: Chunks of one tensor compared pairwise for overlaps (more are checked by their volumes only).
PAIRWISE_CHUNKS = 2048


class _Refused(Exception):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")


class _Restricted(pickle.Unpickler):
    """Constructs the metadata classes, ``torch.Size``, dtypes and a few builtins; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise _Refused(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("persistent id", type(pid).__name__)


def read_metadata(folder: str, shown: str) -> Any:
    """The checkpoint's ``Metadata``, unpickled without running code and checked."""
    where = os.path.join(shown, METADATA)
    path = inside(folder, METADATA, shown, where, "the checkpoint")
    size = file_size(path, where)
    if size > HEADER_CAP:
        raise fail(where, f"{size:,} bytes, over the {HEADER_CAP:,}-byte limit for checkpoint metadata")
    data = read_at(path, 0, size, where)
    from torch.distributed.checkpoint.metadata import Metadata

    try:
        md = _Restricted(io.BytesIO(data)).load()
    except _Refused as exc:
        raise fail(
            where,
            f"refused: unpickling it needs {exc}, which is not part of a checkpoint's metadata",
            "netinspect never runs code from a pickle",
        ) from None
    except Exception as exc:
        raise fail(where, f"not a readable checkpoint metadata file: {exc_text(exc)}") from None
    if not isinstance(md, Metadata) or not isinstance(md.state_dict_metadata, dict) or not isinstance(md.storage_data, dict):
        raise fail(where, f"holds a {type(md).__name__}, not a checkpoint's Metadata with its storage data")
    return md


def _tensor(fqn: str, item: Any, storage: dict[Any, Any], sizes: dict[str, int], folder: str, shown: str) -> tuple[Any, ...]:
    """Check one tensor's metadata; returns the storage ranges of its chunks (to find aliases)."""
    import torch
    from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, MetadataIndex

    where = os.path.join(shown, METADATA)
    dtype = getattr(getattr(item, "properties", None), "dtype", None)
    size = getattr(item, "size", None)
    if not isinstance(dtype, torch.dtype):
        raise fail(where, f"tensor {fqn!r}: its dtype is not a torch dtype")
    if not isinstance(size, tuple) or not all(type(d) is int and d >= 0 for d in size):
        raise fail(where, f"tensor {fqn!r}: size {size!r} is not a list of non-negative integers")
    numel = math.prod(size)
    if numel >= 2**63:
        raise fail(where, f"tensor {fqn!r}: size {list(size)} overflows")
    chunks = item.chunks
    if not isinstance(chunks, list) or not all(isinstance(c, ChunkStorageMetadata) for c in chunks):
        raise fail(where, f"tensor {fqn!r}: chunks is not a list of chunk metadata")
    boxes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    volume = 0
    ranges: list[tuple[str, int, int]] = []
    for c in chunks:
        off, sz = c.offsets, c.sizes
        if not (isinstance(off, tuple) and isinstance(sz, tuple) and len(off) == len(sz) == len(size)):
            raise fail(where, f"tensor {fqn!r}: a chunk's offsets and sizes do not match its {len(size)} dimensions")
        if not all(type(o) is int and type(s) is int and o >= 0 and s >= 0 and o + s <= d for o, s, d in zip(off, sz, size, strict=True)):
            raise fail(where, f"tensor {fqn!r}: chunk at {list(off)} of size {list(sz)} lies outside its size {list(size)}")
        volume += math.prod(sz)
        boxes.append((tuple(off), tuple(sz)))
        info = storage.get(MetadataIndex(fqn, off))
        if info is None:
            raise fail(where, f"tensor {fqn!r}: no storage entry for its chunk at {list(off)}")
        rel, start, length = getattr(info, "relative_path", None), getattr(info, "offset", None), getattr(info, "length", None)
        if not isinstance(rel, str) or type(start) is not int or type(length) is not int or start < 0 or length < 0:
            raise fail(where, f"tensor {fqn!r}: its storage entry is malformed")
        if rel not in sizes:
            sizes[rel] = file_size(inside(folder, rel, shown, where, f"the storage of tensor {fqn!r}"), os.path.join(shown, rel))
        if start + length > sizes[rel]:
            raise fail(
                os.path.join(shown, rel),
                f"tensor {fqn!r}: bytes {start:,} to {start + length:,} lie past the end ({sizes[rel]:,} bytes)",
                "the file is truncated",
            )
        ranges.append((rel, start, length))
    if volume != numel:
        raise fail(where, f"tensor {fqn!r}: its chunks hold {volume:,} elements, its size {list(size)} has {numel:,}")
    if len(boxes) <= PAIRWISE_CHUNKS:
        for i, (a_off, a_sz) in enumerate(boxes):
            for b_off, b_sz in boxes[i + 1 :]:
                if (
                    all(ao < bo + bs and bo < ao + as_ for ao, as_, bo, bs in zip(a_off, a_sz, b_off, b_sz, strict=True))
                    and 0 not in a_sz + b_sz
                ):
                    raise fail(where, f"tensor {fqn!r}: chunks at {list(a_off)} and {list(b_off)} overlap")
    return (str(dtype), tuple(size), tuple(ranges))


def table(folder: str, shown: str | None = None) -> TensorTable:
    """A DCP directory as a tensor table, in the saved state_dict's order (non-tensor entries left out)."""
    import torch
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

    shown = shown or folder
    md = read_metadata(folder, shown)
    sizes: dict[str, int] = {}
    entries: list[TensorInfo] = []
    seen: dict[tuple[Any, ...], str] = {}
    for fqn, item in md.state_dict_metadata.items():
        if not isinstance(fqn, str):
            raise fail(os.path.join(shown, METADATA), f"a key is a {type(fqn).__name__}, not a name")
        if isinstance(item, BytesStorageMetadata):
            continue
        if not isinstance(item, TensorStorageMetadata):
            raise fail(os.path.join(shown, METADATA), f"{fqn!r}: unknown storage metadata {type(item).__name__}")
        where = _tensor(fqn, item, md.storage_data, sizes, folder, shown)
        dtype: torch.dtype = item.properties.dtype
        numel = math.prod(item.size)
        stored = seen.setdefault(where, fqn) if numel else fqn
        entries.append(
            TensorInfo(
                fqn,
                tuple(item.size),
                str(dtype).removeprefix("torch."),
                numel,
                numel * dtype.itemsize,
                stored,
                "storage" if stored != fqn else None,
            )
        )
    by_key = {e.key: e for e in entries}

    def read(key: str) -> Any:
        return load_values(folder, shown, md, by_key[key])

    return TensorTable(shown, "torch.distributed.checkpoint", entries, [shown, *sorted(sizes)], read)


def load_values(folder: str, shown: str, md: Any, info: TensorInfo) -> Any:
    """One tensor's values through ``dcp.load`` in this process, the metadata being the one checked here."""
    import warnings

    import torch
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.state_dict_loader import load

    class Reader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            return md

    target = torch.empty(info.shape, dtype=getattr(torch, info.dtype))
    from torch.distributed.checkpoint.api import CheckpointException

    from .torchfile import reason

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load({info.stored: target}, storage_reader=Reader(folder), planner=DefaultLoadPlanner(), no_dist=True)
    except (Exception, CheckpointException) as exc:
        failures = list(getattr(exc, "failures", {}).values())
        cause = failures[0][0] if failures and isinstance(failures[0], tuple) else exc
        raise fail(shown, f"cannot read the values of {info.key!r}: {reason(cause)}", "its data files may be corrupt") from None
    return target
