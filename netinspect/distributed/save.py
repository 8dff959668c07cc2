"""Writing a sharded model: a torch.distributed.checkpoint directory, or safetensors shards with
``model.safetensors.index.json``, or one ``.safetensors`` file; all complete or not at all.

Everything is written under a temporary name beside the target (``.NAME.tmp-XXXX``), which rank 0
renames to the target once every rank has said it finished; on any failure rank 0 removes it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from netinspect.errors import Problem, UsageError
from netinspect.files import existing_folder
from netinspect.sources.safetensors import ALIASES_KEY
from netinspect.weights import stored_keys

from .group import Failure, Group

INDEX_NAME = "model.safetensors.index.json"

#: torch dtype → safetensors dtype code
DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """A tensor as a file stores it: its key, shape and dtype, and its index among the model's tensors."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    index: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass(slots=True)
class FilePlan:
    """One safetensors file: its name, the entries it holds in order, and the rank that writes it."""

    name: str
    entries: list[Entry]
    owner: int
    aliases: dict[str, str] = field(default_factory=dict)


def entries_of(
    keys: Sequence[tuple[str, int]], shapes: Sequence[tuple[tuple[int, ...], torch.dtype]]
) -> tuple[list[Entry], dict[str, str]]:
    """The stored entries (each tensor once, under its first key) and the aliases of the others."""
    stored, aliases = stored_keys(keys)
    index = dict(keys)
    return [Entry(k, *shapes[index[k]], index[k]) for k in stored], aliases


def plan_files(entries: Sequence[Entry], aliases: dict[str, str], world: int) -> list[FilePlan]:
    """Deal the entries, largest first, round-robin into at most ``world`` files (a tensor is never
    split), named as Hugging Face names shards; file k is written by rank k. The files come out about
    equal in bytes, and each round of the delivery carries tensors of about one size, so that no
    rank waits on a much larger write."""
    order = sorted(entries, key=lambda e: -e.nbytes)
    groups: list[list[Entry]] = [order[k::world] for k in range(world)]
    kept = [g for g in groups if g] or [[]]
    n = len(kept)
    plans = [FilePlan(f"model-{i + 1:05d}-of-{n:05d}.safetensors", g, i) for i, g in enumerate(kept)]
    where = {e.key: p for p in plans for e in p.entries}
    for alias, key in aliases.items():
        where[key].aliases[alias] = key
    return plans


def header_bytes(entries: Sequence[Entry], metadata: dict[str, str]) -> bytes:
    """The safetensors header: 8-byte little-endian length, then JSON padded with spaces to 8 bytes."""
    head: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for e in entries:
        if e.dtype not in DTYPE_CODES:
            dtype = str(e.dtype).removeprefix("torch.")
            raise UsageError.at(None, f"safetensors cannot store '{e.key}' of dtype {dtype}", "use --format dcp")
        head[e.key] = {"dtype": DTYPE_CODES[e.dtype], "shape": list(e.shape), "data_offsets": [offset, offset + e.nbytes]}
        offset += e.nbytes
    text = json.dumps(head, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


class StreamWriter:
    """A safetensors file written as its tensors arrive: the header first (every offset is known
    from shapes and dtypes), then each tensor's bytes in header order; memory stays one tensor."""

    def __init__(self, path: Path, entries: Sequence[Entry], metadata: dict[str, str]) -> None:
        self.path = path
        self.entries = list(entries)
        self.next = 0
        self.f: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.f.write(header_bytes(self.entries, metadata))

    def write(self, index: int, tensor: torch.Tensor) -> None:
        e = self.entries[self.next]
        if e.index != index or tuple(tensor.shape) != e.shape or tensor.dtype != e.dtype:
            raise RuntimeError(f"{self.path.name}: expected '{e.key}' {list(e.shape)}, got tensor {index} {list(tensor.shape)}")
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy()
        self.f.write(data.data)
        self.next += 1

    def close(self) -> None:
        if self.next != len(self.entries):
            raise RuntimeError(f"{self.path.name}: {len(self.entries) - self.next} tensors were not written")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()

    def abandon(self) -> None:
        self.f.close()


def check_target(target: Path, directory: bool) -> None:
    """The target's folder exists; a directory target does not exist yet (it is never overwritten)."""
    existing_folder(target)
    if directory and target.exists():
        raise UsageError.at(None, f"--save {str(target)!r} already exists", "choose a new directory name, or remove the old one first")
    if not directory and target.is_dir():
        raise UsageError.at(None, f"--save {str(target)!r} is a directory", "give a file name ending in .safetensors")


class Staging:
    """The temporary sibling every rank writes into, made by rank 0 and renamed by it at the end."""

    def __init__(self, target: Path, group: Group, directory: bool) -> None:
        self.target = target
        self.group = group
        self.directory = directory
        self.path: Path | None = None

    def open(self) -> Path:
        folder = self.target.parent if str(self.target.parent) else Path(".")
        made: str | None = None
        error: Problem | None = None
        if self.group.rank == 0:
            prefix = f".{self.target.name}.tmp-"
            try:
                stops = {signal.SIGINT, signal.SIGTERM}
                signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # made and recorded, or not made
                try:
                    if self.directory:
                        made = tempfile.mkdtemp(prefix=prefix, dir=folder)
                    else:
                        fd, made = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
                        os.close(fd)
                    self.path = Path(made)  # from now on discard() removes it
                finally:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(made, (0o777 if self.directory else 0o666) & ~umask)  # what mkdir/open give, not mkdtemp's 0700
            except OSError as exc:
                error = Problem(f"--save {str(self.target)!r}: cannot write in {str(folder)!r}: {exc.strerror or exc}")
        self.group.check(Failure(0, 1, (error,)) if error is not None else None)
        shared = self.group.broadcast(made)
        assert isinstance(shared, str)
        self.path = Path(shared)
        return self.path

    def commit(self) -> None:
        """After every rank finished writing: rank 0 renames; every rank learns whether it worked."""
        self.group.check()
        error: Failure | None = None
        if self.group.rank == 0 and self.path is not None:
            try:
                if self.directory:
                    os.rename(self.path, self.target)
                else:  # its writer flushed and synced it before this
                    os.replace(self.path, self.target)
                self.path = None
            except OSError as exc:
                why = f"cannot rename the finished {self._kind()} into place: {exc.strerror or exc}"
                error = Failure(0, 1, (Problem(f"--save {str(self.target)!r}: {why}"),))
        self.group.check(error)

    def discard(self) -> None:
        """Remove the temporary (rank 0; the others never made or renamed it)."""
        if self.group.rank == 0 and self.path is not None:
            if self.directory:
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            self.path = None

    def _kind(self) -> str:
        return "directory" if self.directory else "file"


def index_json(plans: Sequence[FilePlan], aliases: dict[str, str]) -> str:
    """``model.safetensors.index.json``: total bytes, aliases, and the file of every stored key (in
    the model's ``state_dict`` order)."""
    total = sum(e.nbytes for p in plans for e in p.entries)
    placed = sorted((e.index, e.key, p.name) for p in plans for e in p.entries)
    doc = {"metadata": {"total_size": total, ALIASES_KEY: json.dumps(aliases)}, "weight_map": {k: f for _, k, f in placed}}
    return json.dumps(doc, indent=2) + "\n"
